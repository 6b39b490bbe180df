//! The book (`docs/`) cannot drift from the code: the manifest reference is what the schema
//! renders, the API reference names exactly the router's routes, Troubleshooting quotes every
//! manifest problem of the malformed corpus with its hint, and every link between pages (and
//! from the README into the book) lands on a page and a heading that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::{podstack, repo};

fn book() -> PathBuf {
    repo().join("docs/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn the_manifest_reference_is_what_the_schema_renders() {
    let run = podstack(["docs", "--check"]).run();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in the panel's router.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = read(&repo().join("src/supervisor/api.rs"));
    let mut routes = BTreeSet::new();
    for call in source.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').expect("a quoted route path");
        let handlers = rest.split("))").next().unwrap_or(rest);
        for method in ["get", "post", "put", "delete", "patch"] {
            if handlers.contains(&format!(" {method}("))
                || handlers.contains(&format!(".{method}("))
            {
                routes.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

/// `(METHOD, path)` of every ``### `METHOD /path` `` heading of the API reference.
fn documented_routes() -> BTreeSet<(String, String)> {
    read(&book().join("reference/api.md"))
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|heading| heading.strip_suffix('`'))
        .filter_map(|heading| heading.split_once(' '))
        .filter(|(method, _)| method.chars().all(|c| c.is_ascii_uppercase()))
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect()
}

#[test]
fn the_api_reference_documents_exactly_the_routes_the_router_serves() {
    let served = router_routes();
    assert!(
        served.len() >= 20,
        "the router's routes were not found: {served:?}"
    );
    let documented = documented_routes();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "served but not in docs/src/reference/api.md: {undocumented:?}\n\
         in docs/src/reference/api.md but not served: {gone:?}\n\
         hint: give each route of src/supervisor/api.rs a ### `METHOD /path` section"
    );
}

#[test]
fn troubleshooting_quotes_every_manifest_problem_with_its_hint() {
    let page = read(&book().join("troubleshooting.md"));
    let mut missing = Vec::new();
    for (name, located, hint) in crate::malformed::CASES {
        let message = located.split_once(": error: ").map_or(*located, |(_, m)| m);
        if !page.contains(message) {
            missing.push(format!("{name}: error: {message}"));
        }
        if !hint.is_empty() && !page.contains(hint) {
            missing.push(format!("{name}: hint: {hint}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/src/troubleshooting.md lacks these messages of tests/it/malformed.rs:\n{}",
        missing.join("\n")
    );
}

/// The schema node at `path` (`runtime.memory.free_above_ram_percent`), through `$ref`s, the
/// items of arrays (`[[model]]`) and optional tables (`anyOf` with null); `None` when a key does
/// not exist.
fn schema_key<'a>(schema: &'a serde_json::Value, path: &[&str]) -> Option<&'a serde_json::Value> {
    let resolve = |mut node: &'a serde_json::Value| loop {
        if let Some(name) = node["$ref"].as_str() {
            node = &schema["$defs"][name.strip_prefix("#/$defs/")?];
        } else if let Some(table) = node["anyOf"]
            .as_array()
            .and_then(|variants| variants.iter().find(|v| v["type"] != "null"))
        {
            node = table;
        } else if node["items"].is_object() {
            node = &node["items"];
        } else {
            return Some(node);
        }
    };
    path.iter()
        .try_fold(schema, |node, key| resolve(node)?["properties"].get(*key))
}

/// The keys a row of the "Manifest keys in detail" table names, in full: `sync.min_age`,
/// `interval` (a sibling), `[[model]] url`, `sha256` (keys of an array of tables).
fn detail_keys(cell: &str) -> Vec<Vec<String>> {
    let mut keys = Vec::new();
    let mut parent: Vec<String> = Vec::new();
    for token in cell.split('`').skip(1).step_by(2) {
        let path: Vec<String> = if let Some(rest) = token.strip_prefix("[[") {
            let (table, key) = rest.split_once("]] ").expect("`[[table]] key`");
            vec![table.to_owned(), key.to_owned()]
        } else if token.contains('.') {
            token.split('.').map(str::to_owned).collect()
        } else {
            parent.iter().cloned().chain([token.to_owned()]).collect()
        };
        parent = path[..path.len() - 1].to_vec();
        keys.push(path);
    }
    keys
}

/// The hand-written table that says more about some keys names only keys the schema has (a
/// renamed or removed key fails here); types and defaults are the generated page's.
#[test]
fn the_manifest_details_name_only_keys_the_schema_has() {
    let schema: serde_json::Value =
        serde_json::from_str(&read(&repo().join("generated/stack.schema.json"))).unwrap();
    let page = read(&book().join("reference/manifest-details.md"));
    let mut checked = 0;
    for row in page.lines().filter(|line| line.starts_with("| `")) {
        let cell = row.split('|').nth(1).expect("a first cell");
        for key in detail_keys(cell) {
            let path: Vec<&str> = key.iter().map(String::as_str).collect();
            assert!(
                schema_key(&schema, &path).is_some(),
                "docs/src/reference/manifest-details.md names `{}`, which the manifest's schema does not have",
                key.join(".")
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} keys found in the table");
    assert!(schema_key(&schema, &["runtime", "memory", "no_such_key"]).is_none());
}

/// Every Markdown page of the book, by its path under `docs/src`.
fn pages() -> BTreeMap<PathBuf, String> {
    walkdir::WalkDir::new(book())
        .into_iter()
        .map(|entry| entry.expect("a readable docs/src"))
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "md"))
        .map(|entry| {
            let page = entry
                .path()
                .strip_prefix(book())
                .expect("a page under docs/src")
                .to_owned();
            (page, read(entry.path()))
        })
        .collect()
}

/// The text of a page outside code blocks, code spans and HTML comments (which mdBook does not
/// render: the pictures the tools half adds wait there until they exist), where links live.
fn prose(text: &str) -> String {
    let mut uncommented = String::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("<!--") {
        uncommented.push_str(before);
        rest = after.split_once("-->").map_or("", |(_, after)| after);
    }
    uncommented.push_str(rest);
    let mut out = String::new();
    let mut fenced = false;
    for line in uncommented.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Between backticks is code: every other part.
        for part in line.split('`').step_by(2) {
            out.push_str(part);
        }
        out.push('\n');
    }
    out
}

/// The anchors mdBook gives a page's headings: the heading's text without its Markdown,
/// lower case, spaces to dashes, other punctuation dropped; a repeated one gets `-1`, `-2`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let base = podstack::manifest::reference::anchor(heading);
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// The targets of `](target)` links in a page's prose.
fn links(text: &str) -> Vec<String> {
    prose(text)
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')'))
        .map(|(target, _)| target.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn every_link_between_pages_lands_on_a_page_and_a_heading() {
    let pages = pages();
    assert!(pages.contains_key(Path::new("SUMMARY.md")));
    let anchors: BTreeMap<&PathBuf, BTreeSet<String>> = pages
        .iter()
        .map(|(path, text)| (path, anchors(text)))
        .collect();
    let mut broken = Vec::new();
    for (page, text) in &pages {
        for target in links(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                normalize(&page.parent().unwrap_or(Path::new("")).join(file))
            };
            let exists = pages.contains_key(&resolved) || book().join(&resolved).is_file();
            if !exists {
                broken.push(format!("{}: {target}: no such page", page.display()));
            } else if !anchor.is_empty()
                && !anchors.get(&resolved).is_some_and(|a| a.contains(anchor))
            {
                broken.push(format!(
                    "{}: {target}: no heading #{anchor}",
                    page.display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in docs/src:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_page_is_in_the_summary() {
    let pages = pages();
    let summary = links(&pages[Path::new("SUMMARY.md")]);
    let missing: Vec<_> = pages
        .keys()
        .filter(|page| page.as_path() != Path::new("SUMMARY.md"))
        .filter(|page| !summary.iter().any(|link| Path::new(link) == page.as_path()))
        .collect();
    assert!(
        missing.is_empty(),
        "pages not in docs/src/SUMMARY.md: {missing:?}"
    );
}

/// `a/../b` as `b`, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_readme_links_land_in_the_book() {
    let readme = read(&repo().join("README.md"));
    let mut broken = Vec::new();
    for target in links(&readme) {
        if target.contains("://") || target.starts_with('#') {
            continue;
        }
        let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let path = repo().join(file);
        if !path.exists() {
            broken.push(format!("{target}: no such file"));
        } else if !anchor.is_empty() && !anchors(&read(&path)).contains(anchor) {
            broken.push(format!("{target}: no heading #{anchor}"));
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in README.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_readme_example_is_a_valid_stack() {
    let readme = read(&repo().join("README.md"));
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block in README.md");
    let project = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(project.path().join("stacks")).expect("stacks/");
    std::fs::write(project.path().join("stacks/studio.toml"), example).expect("write");
    let run = podstack(["check", "studio"])
        .current_dir(project.path())
        .run();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("stacks/studio.toml: ok (studio)"),
        "{}",
        run.stdout
    );
}
