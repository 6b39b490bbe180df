//! The two sides a plan compares: the project as it is now (its files, and the stack's
//! generated files as rendered in memory), and a previous rendering — a git revision of the
//! project read with real git, a previous project tree, or a folder of one stack's generated
//! files.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::PlanError;

/// Files by their path in the build context (the project root), e.g. `templates/ui/app.js`.
pub type Files = BTreeMap<String, Vec<u8>>;

/// One side of the comparison.
#[derive(Debug)]
pub enum Snapshot {
    /// The working tree, with `generated/<stack>/` as the stack renders now.
    Current { root: PathBuf, generated: Files },
    /// A commit of the project's git repository.
    Git { root: PathBuf, commit: String },
    /// A project tree on disk (a checkout, an unpacked release).
    Tree { root: PathBuf },
    /// A folder holding one stack's generated files and nothing else.
    Generated { dir: PathBuf, prefix: String },
}

impl Snapshot {
    /// `--against`: an existing folder, else a git revision of the project at `root`.
    pub fn against(root: &Path, against: &str, stack: &str) -> Result<Self, PlanError> {
        let folder = Path::new(against);
        if folder.is_dir() {
            if folder
                .join("generated")
                .join(stack)
                .join("Dockerfile")
                .is_file()
            {
                return Ok(Self::Tree {
                    root: folder.to_owned(),
                });
            }
            if folder.join("Dockerfile").is_file() {
                return Ok(Self::Generated {
                    dir: folder.to_owned(),
                    prefix: format!("generated/{stack}/"),
                });
            }
            return Err(PlanError::NotARendering {
                dir: folder.display().to_string(),
                stack: stack.to_owned(),
            });
        }
        let output = git(
            root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{against}^{{commit}}"),
            ],
        )?;
        if !output.status.success() {
            return Err(PlanError::NoRevision {
                rev: against.to_owned(),
                root: root.display().to_string(),
            });
        }
        Ok(Self::Git {
            root: root.to_owned(),
            commit: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }

    /// The files at or under `path`; `None` when this side cannot know them (a folder of
    /// generated files has nothing else). An absent path is an empty map. A `*` in the last
    /// part of the path matches as in `COPY` (`templates/*.j2`).
    pub fn files(&self, path: &str) -> Result<Option<Files>, PlanError> {
        if let Some((dir, pattern)) = path.rsplit_once('/').filter(|(_, last)| last.contains('*')) {
            return Ok(self.files(dir)?.map(|files| {
                files
                    .into_iter()
                    .filter(|(name, _)| {
                        name.strip_prefix(dir)
                            .and_then(|rest| rest.strip_prefix('/'))
                            .is_some_and(|rest| !rest.contains('/') && matches(pattern, rest))
                    })
                    .collect()
            }));
        }
        let files = self.stored(path)?;
        // A project without its own panel (one `podstack init` made) builds the panel compiled
        // into podstack, as render and context do.
        if path == crate::render::UI_DIR && files.as_ref().is_some_and(Files::is_empty) {
            return Ok(Some(
                crate::panel_files::compiled_in().into_iter().collect(),
            ));
        }
        Ok(files)
    }

    /// The files at or under `path` as this side holds them.
    fn stored(&self, path: &str) -> Result<Option<Files>, PlanError> {
        match self {
            Self::Current { root, generated } => {
                if generated.keys().any(|name| under(name, path)) {
                    return Ok(Some(
                        generated
                            .iter()
                            .filter(|(name, _)| under(name, path))
                            .map(|(name, content)| (name.clone(), content.clone()))
                            .collect(),
                    ));
                }
                disk_files(root, path).map(Some)
            }
            Self::Tree { root } => disk_files(root, path).map(Some),
            Self::Generated { dir, prefix } => {
                let Some(rest) = path.strip_prefix(prefix.as_str()) else {
                    return Ok(None);
                };
                let mut files = disk_files(dir, rest)?;
                files = files
                    .into_iter()
                    .map(|(name, content)| (format!("{prefix}{name}"), content))
                    .collect();
                Ok(Some(files))
            }
            Self::Git { root, commit } => git_files(root, commit, path).map(Some),
        }
    }

    /// One file's text, when this side has it.
    pub fn text(&self, path: &str) -> Result<Option<String>, PlanError> {
        Ok(self
            .files(path)?
            .and_then(|mut files| files.remove(path))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// How the plan names this side: `HEAD (1a2b3c4d5e6f)`, a folder.
    pub fn describe(&self, asked: &str) -> String {
        match self {
            Self::Git { commit, .. } => {
                format!("{asked} ({})", commit.get(..12).unwrap_or(commit))
            }
            _ => asked.to_owned(),
        }
    }
}

/// A file name against a pattern whose `*`s match any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn under(name: &str, path: &str) -> bool {
    name == path || name.starts_with(&format!("{}/", path.trim_end_matches('/')))
}

/// A file, or every file of a folder (Python caches skipped, as the digest skips them).
fn disk_files(root: &Path, path: &str) -> Result<Files, PlanError> {
    let full = root.join(path);
    if full.is_file() {
        let content = std::fs::read(&full).map_err(|source| PlanError::Read {
            path: full.display().to_string(),
            source,
        })?;
        return Ok(Files::from([(path.to_owned(), content)]));
    }
    if !full.is_dir() {
        return Ok(Files::new());
    }
    Ok(crate::render::read_tree(root, path)
        .map_err(|err| PlanError::Render(err.to_string()))?
        .into_iter()
        .collect())
}

fn git(root: &Path, args: &[&str]) -> Result<std::process::Output, PlanError> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PlanError::Git {
            what: format!("git {}", args.join(" ")),
            detail: source.to_string(),
        })
}

/// The blobs at or under `path` in `commit`: `ls-tree` for their ids, one `cat-file --batch`
/// for their contents.
fn git_files(root: &Path, commit: &str, path: &str) -> Result<Files, PlanError> {
    let listed = git(root, &["ls-tree", "-r", "-z", commit, "--", path])?;
    if !listed.status.success() {
        return Err(PlanError::Git {
            what: format!("git ls-tree {commit} -- {path}"),
            detail: String::from_utf8_lossy(&listed.stderr).trim().to_owned(),
        });
    }
    let mut blobs = Vec::new();
    for entry in listed.stdout.split(|&byte| byte == 0) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split_whitespace();
        if let (Some(_mode), Some("blob"), Some(id)) = (meta.next(), meta.next(), meta.next()) {
            if !name.split('/').any(|part| part == "__pycache__") {
                blobs.push((name.to_owned(), id.to_owned()));
            }
        }
    }
    let failed = |detail: String| PlanError::Git {
        what: format!("git cat-file --batch ({commit})"),
        detail,
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| failed(err.to_string()))?;
    let ids: String = blobs.iter().map(|(_, id)| format!("{id}\n")).collect();
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".into()))?;
    // Written from a thread: git answers while it reads, and a full pipe would stall both.
    let writer = std::thread::spawn(move || stdin.write_all(ids.as_bytes()));
    let mut reader = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| failed("no stdout".into()))?,
    );
    let mut files = Files::new();
    for (name, _) in &blobs {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|err| failed(err.to_string()))?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| failed(format!("unexpected answer `{}`", header.trim())))?;
        let mut content = vec![0; size + 1];
        reader
            .read_exact(&mut content)
            .map_err(|err| failed(err.to_string()))?;
        content.pop();
        files.insert(name.clone(), content);
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_copy_wildcards() {
        assert!(matches("*.j2", "Dockerfile.j2"));
        assert!(!matches("*.j2", "app.js"));
        assert!(matches("a*b*c", "a-b-c"));
        assert!(matches("exact", "exact") && !matches("exact", "exactly"));
    }
}
