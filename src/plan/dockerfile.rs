//! A rendered Dockerfile read the way BuildKit's cache sees it: its stages, and the steps of the
//! final stage in order, each with the text its cache key is made from and, for `COPY`, the
//! build-context paths whose content goes into that key.

use std::collections::BTreeMap;

/// One instruction of a stage, continuation lines joined and whitespace collapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `RUN`, `COPY`, `FROM`, ... in upper case.
    pub keyword: String,
    /// The whole instruction as one line: what the cache compares.
    pub text: String,
    /// The line of the Dockerfile it starts on (1-based).
    pub line: usize,
    /// `COPY`/`ADD` sources in the build context (flags and the destination left out).
    pub sources: Vec<String>,
    /// `COPY --from=<stage>`: the stage whose output it copies.
    pub from_stage: Option<String>,
    /// `COPY`/`ADD`: where in the image it copies to, as written.
    pub destination: Option<String>,
}

impl Step {
    /// Whether the step adds a layer to the image (the rest only set metadata).
    pub fn makes_layer(&self) -> bool {
        matches!(self.keyword.as_str(), "FROM" | "RUN" | "COPY" | "ADD")
    }

    /// Whether a change to the step invalidates the cache of the steps after it: the layer
    /// steps, and those that change what later `RUN`s see. `LABEL`, `EXPOSE`, `ENTRYPOINT` and
    /// `CMD` only annotate the image.
    pub fn keys_later_steps(&self) -> bool {
        !matches!(
            self.keyword.as_str(),
            "LABEL" | "EXPOSE" | "ENTRYPOINT" | "CMD" | "HEALTHCHECK" | "STOPSIGNAL"
        )
    }

    /// Where a `COPY` lays the build-context file `name` it takes from its `source`, as
    /// Docker does: a folder's files keep their place under the destination; a file goes into
    /// a destination folder (one ending in `/`, or any when several sources or a pattern are
    /// copied) by its own name, and else becomes the destination.
    pub fn image_path(&self, source: &str, name: &str) -> Option<String> {
        let destination = self.destination.as_deref()?;
        let folder = destination.trim_end_matches('/');
        let pattern = source.contains('*');
        if name == source || pattern {
            let into_folder = destination.ends_with('/') || self.sources.len() > 1 || pattern;
            return Some(if into_folder {
                format!("{folder}/{}", name.rsplit('/').next().unwrap_or(name))
            } else {
                destination.to_owned()
            });
        }
        let rest = name.strip_prefix(source)?.strip_prefix('/')?;
        Some(format!("{folder}/{rest}"))
    }
}

/// A `FROM ... [AS name]` stage and its steps (the `FROM` first).
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Option<String>,
    /// The image or stage it starts from, with the global `ARG` defaults filled in.
    pub from: String,
    pub steps: Vec<Step>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// Reads a Dockerfile as podstack renders it (no heredocs, no parser directives).
    pub fn parse(text: &str) -> Self {
        let mut args = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        for step in logical_lines(text) {
            if step.keyword == "FROM" {
                let words: Vec<&str> = step.text.split_whitespace().skip(1).collect();
                let image = words
                    .iter()
                    .find(|word| !word.starts_with("--"))
                    .map_or_else(String::new, |word| substitute(word, &args));
                let name = words
                    .iter()
                    .position(|word| word.eq_ignore_ascii_case("as"))
                    .and_then(|at| words.get(at + 1))
                    .map(|name| (*name).to_owned());
                stages.push(Stage {
                    name,
                    from: image,
                    steps: vec![step],
                });
            } else if let Some(stage) = stages.last_mut() {
                stage.steps.push(step);
            } else if step.keyword == "ARG" {
                for word in step.text.split_whitespace().skip(1) {
                    if let Some((name, default)) = word.split_once('=') {
                        args.insert(name.to_owned(), default.to_owned());
                    }
                }
            }
        }
        Self { stages }
    }

    /// The stage the image is: the last one.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// Every build-context path a stage reads, following `FROM <stage>` and `COPY --from`.
    pub fn stage_sources(&self, name: &str) -> Vec<String> {
        let mut sources = Vec::new();
        let mut seen = Vec::new();
        self.collect_sources(name, &mut sources, &mut seen);
        sources.sort();
        sources.dedup();
        sources
    }

    fn collect_sources(&self, name: &str, sources: &mut Vec<String>, seen: &mut Vec<String>) {
        if seen.iter().any(|done| done == name) {
            return;
        }
        seen.push(name.to_owned());
        let Some(stage) = self
            .stages
            .iter()
            .find(|stage| stage.name.as_deref() == Some(name))
        else {
            return;
        };
        let parent = stage.from.clone();
        self.collect_sources(&parent, sources, seen);
        for step in &stage.steps {
            sources.extend(step.sources.iter().cloned());
            if let Some(from) = &step.from_stage {
                self.collect_sources(from, sources, seen);
            }
        }
    }
}

/// Instructions with their continuation lines joined; comments and blank lines dropped.
fn logical_lines(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(body.trim());
        if continues {
            current = Some((start, joined));
        } else {
            steps.push(step(start, &joined));
        }
    }
    if let Some((start, joined)) = current {
        steps.push(step(start, &joined));
    }
    steps
}

fn step(line: usize, joined: &str) -> Step {
    let text = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    let keyword = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut sources = Vec::new();
    let mut from_stage = None;
    let mut destination = None;
    if matches!(keyword.as_str(), "COPY" | "ADD") {
        let mut words: Vec<&str> = Vec::new();
        for word in text.split_whitespace().skip(1) {
            match word.strip_prefix("--from=") {
                Some(stage) => from_stage = Some(stage.to_owned()),
                None if word.starts_with("--") => {}
                None => words.push(word),
            }
        }
        destination = words.pop().map(str::to_owned);
        if from_stage.is_none() {
            sources = words
                .iter()
                .map(|word| word.trim_end_matches('/').to_owned())
                .collect();
        }
    }
    Step {
        keyword,
        text,
        line,
        sources,
        from_stage,
        destination,
    }
}

/// `supervisor-${PODSTACK_SUPERVISOR}` with the ARG's default.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = word.to_owned();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ARG KIND=source
FROM rust:1 AS build-source
COPY Cargo.toml src ./
FROM scratch AS build-prebuilt
COPY prebuilt/x /x
FROM build-${KIND} AS build

FROM debian
# a comment
RUN apt-get install -y \\
       a \\
       b
COPY --from=build /x /usr/bin/x
COPY generated/s/a generated/s/b /opt/
LABEL x=1
";

    #[test]
    fn reads_the_final_stage_with_joined_lines() {
        let file = Dockerfile::parse(TEXT);
        let last = file.final_stage().unwrap();
        let texts: Vec<&str> = last.steps.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "FROM debian",
                "RUN apt-get install -y a b",
                "COPY --from=build /x /usr/bin/x",
                "COPY generated/s/a generated/s/b /opt/",
                "LABEL x=1"
            ]
        );
        assert_eq!(last.steps[1].line, 10);
        assert_eq!(last.steps[3].sources, ["generated/s/a", "generated/s/b"]);
        assert_eq!(last.steps[2].from_stage.as_deref(), Some("build"));
        assert!(!last.steps[4].makes_layer() && !last.steps[4].keys_later_steps());
    }

    #[test]
    fn lays_copied_files_where_docker_does() {
        let steps = Dockerfile::parse(
            "FROM debian\nCOPY ui /opt/p/ui\nCOPY g/c.txt /opt/p/c.txt\nCOPY g/a g/b /opt/p/\nCOPY g/d /opt/p/\nCOPY t/*.j2 /opt/p/t/\n",
        )
        .stages
        .remove(0)
        .steps;
        let at = |step: usize, source: &str, name: &str| steps[step].image_path(source, name);
        assert_eq!(
            at(1, "ui", "ui/css/x.css").as_deref(),
            Some("/opt/p/ui/css/x.css")
        );
        assert_eq!(at(1, "ui", "uix/y").as_deref(), None);
        assert_eq!(at(2, "g/c.txt", "g/c.txt").as_deref(), Some("/opt/p/c.txt"));
        assert_eq!(at(3, "g/b", "g/b").as_deref(), Some("/opt/p/b"));
        assert_eq!(at(4, "g/d", "g/d").as_deref(), Some("/opt/p/d"));
        assert_eq!(at(5, "t/*.j2", "t/a.j2").as_deref(), Some("/opt/p/t/a.j2"));
        assert_eq!(steps[0].image_path("x", "x"), None);
    }

    #[test]
    fn follows_a_stage_picked_by_an_arg_to_its_sources() {
        let file = Dockerfile::parse(TEXT);
        assert_eq!(file.stage_sources("build"), ["Cargo.toml", "src"]);
    }
}
