//! Why a layer is rebuilt, in the terms of its input: the lock entry that moved in a pip
//! requirements file, the key of `stack.json` that changed, the file of a folder, the words of
//! a Dockerfile instruction.

use serde_json::Value;

use super::snapshot::Files;

/// The first difference between the old and the new files of one `COPY`, or `None` when
/// they are the same.
pub fn files_change(old: &Files, new: &Files) -> Option<String> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .find_map(|name| match (old.get(name), new.get(name)) {
            (Some(a), Some(b)) if a == b => None,
            (None, Some(_)) => Some(format!("{name} is new")),
            (Some(_), None) => Some(format!("{name} was removed")),
            (Some(a), Some(b)) => Some(file_change(name, a, b)),
            (None, None) => None,
        })
}

/// What changed inside one file, as precisely as its kind allows.
fn file_change(name: &str, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    if name.ends_with(".lock.txt") || name.ends_with("constraints.txt") {
        if let Some(entry) = requirement_change(&old, &new) {
            return format!("{name}: {entry}");
        }
    }
    if name.ends_with("stack.json") {
        if let (Ok(old), Ok(new)) = (
            serde_json::from_str::<Value>(&old),
            serde_json::from_str::<Value>(&new),
        ) {
            if let Some(key) = json_change("", &old, &new) {
                return format!("{name}: {key}");
            }
        }
    }
    format!("{name} changed")
}

/// Requirement lines by name: `name==version` and the hashes that follow it.
fn requirements(text: &str) -> Vec<(String, String)> {
    let joined = text.replace("\\\n", " ");
    let mut lines: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let spec = line.split_whitespace().next().unwrap_or_default();
            let end = spec
                .find(['=', '<', '>', '!', '~', '[', ';', '@'])
                .unwrap_or(spec.len());
            let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
            (spec[..end].to_ascii_lowercase(), words)
        })
        .collect();
    lines.sort();
    lines
}

fn version_of(line: &str) -> &str {
    line.split_whitespace()
        .next()
        .and_then(|spec| spec.split_once("=="))
        .map_or(line, |(_, version)| version)
}

/// The first lock entry that was added, removed or moved to another version; else the first
/// whose hashes changed, which says when the entry lost them (a lock gone stale: its file
/// then names no hash at all).
fn requirement_change(old: &str, new: &str) -> Option<String> {
    let old = requirements(old);
    let new = requirements(new);
    let mut names: Vec<&String> = old.iter().chain(&new).map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    let find = |lines: &[(String, String)], name: &str| {
        lines
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, line)| line.clone())
    };
    let pairs: Vec<(&String, Option<String>, Option<String>)> = names
        .into_iter()
        .map(|name| (name, find(&old, name), find(&new, name)))
        .collect();
    let moved = pairs.iter().find_map(|(name, old, new)| match (old, new) {
        (None, Some(b)) => Some(format!("lock entry `{name}` {} is new", version_of(b))),
        (Some(a), None) => Some(format!("lock entry `{name}` {} was removed", version_of(a))),
        (Some(a), Some(b)) if version_of(a) != version_of(b) => Some(format!(
            "lock entry `{name}` {} -> {}",
            version_of(a),
            version_of(b)
        )),
        _ => None,
    });
    moved.or_else(|| {
        pairs.iter().find_map(|(name, old, new)| match (old, new) {
            (Some(a), Some(b)) if a != b && !b.contains("--hash=") => Some(format!(
                "lock entry `{name}`: no longer pinned by sha256 (the lock is stale: run `podstack lock`)"
            )),
            (Some(a), Some(b)) if a != b => {
                Some(format!("lock entry `{name}`: its files' hashes changed"))
            }
            _ => None,
        })
    })
}

/// The first key whose value differs, as `a.b.c: old -> new`.
fn json_change(path: &str, old: &Value, new: &Value) -> Option<String> {
    if old == new {
        return None;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = b.keys().chain(a.keys().filter(|key| !b.contains_key(*key)));
            for key in keys {
                if key == "_generated" {
                    continue;
                }
                let (old, new) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if let Some(change) = json_change(&join(key), old, new) {
                    return Some(change);
                }
            }
            None
        }
        // A list names the item it lost or gained, rather than two long lists cut alike.
        (Value::Array(a), Value::Array(b)) => {
            let gone = a.iter().find(|item| !b.contains(item));
            let added = b.iter().find(|item| !a.contains(item));
            Some(match (gone, added) {
                (Some(gone), None) => format!("{path}: - {}", short(gone)),
                (None, Some(added)) => format!("{path}: + {}", short(added)),
                (Some(gone), Some(added)) => {
                    format!("{path}: {} -> {}", short(gone), short(added))
                }
                (None, None) => format!("{path}: the same items in another order"),
            })
        }
        _ => Some(format!("{path}: {} -> {}", short(old), short(new))),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// The words an instruction gained and lost, e.g. `+ ffmpeg`.
pub fn instruction_change(old: &str, new: &str) -> String {
    let old_words: Vec<&str> = old.split_whitespace().collect();
    let new_words: Vec<&str> = new.split_whitespace().collect();
    let mut parts: Vec<String> = new_words
        .iter()
        .filter(|word| !old_words.contains(word))
        .map(|word| format!("+ {word}"))
        .collect();
    parts.extend(
        old_words
            .iter()
            .filter(|word| !new_words.contains(word))
            .map(|word| format!("- {word}")),
    );
    if parts.is_empty() {
        return "the instruction changed".to_owned();
    }
    let more = parts.len().saturating_sub(4);
    parts.truncate(4);
    let mut text = parts.join(" ");
    if more > 0 {
        text.push_str(&format!(" (+{more} more)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(name, content)| ((*name).to_owned(), content.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_package_dropped_is_named_before_the_hashes_a_stale_lock_lost() {
        let old = files(&[(
            "r.lock.txt",
            "pip==23.0.1 \\\n    --hash=sha256:aa\nsix==1.17.0 \\\n    --hash=sha256:bb\n",
        )]);
        let stale = files(&[("r.lock.txt", "pip==23.0.1\n")]);
        assert_eq!(
            files_change(&old, &stale).unwrap(),
            "r.lock.txt: lock entry `six` 1.17.0 was removed"
        );
        let unhashed = files(&[("r.lock.txt", "pip==23.0.1\nsix==1.17.0\n")]);
        assert_eq!(
            files_change(&old, &unhashed).unwrap(),
            "r.lock.txt: lock entry `pip`: no longer pinned by sha256 (the lock is stale: run `podstack lock`)"
        );
    }

    #[test]
    fn a_list_in_stack_json_names_the_item_it_lost_or_gained() {
        let json = |packages: &str| {
            files(&[(
                "stack.json",
                &format!(r#"{{"packages":[{packages}],"runtime":{{"users":["alice"]}}}}"#),
            )])
        };
        let pip = r#"{"name":"pip","version":"23.0.1"}"#;
        let six = r#"{"name":"six","version":"1.17.0"}"#;
        let both = json(&format!("{pip},{six}"));
        assert_eq!(
            files_change(&both, &json(pip)).unwrap(),
            format!("stack.json: packages: - {six}")
        );
        assert_eq!(
            files_change(&json(pip), &both).unwrap(),
            format!("stack.json: packages: + {six}")
        );
        assert_eq!(
            files_change(&both, &json(&format!("{six},{pip}"))).unwrap(),
            "stack.json: packages: the same items in another order"
        );
    }

    #[test]
    fn names_the_lock_entry_that_moved() {
        let old = files(&[(
            "r.lock.txt",
            "# x\na==1 \\\n    --hash=sha256:aa\nsix==1.17.0 \\\n    --hash=sha256:bb\n",
        )]);
        let new = files(&[(
            "r.lock.txt",
            "# x\na==1 \\\n    --hash=sha256:aa\nsix==1.16.0 \\\n    --hash=sha256:cc\n",
        )]);
        assert_eq!(
            files_change(&old, &new).unwrap(),
            "r.lock.txt: lock entry `six` 1.17.0 -> 1.16.0"
        );
        let added = files(&[(
            "r.lock.txt",
            "a==1 \\\n  --hash=sha256:aa\nb==2\nsix==1.17.0 \\\n    --hash=sha256:bb\n",
        )]);
        assert_eq!(
            files_change(&old, &added).unwrap(),
            "r.lock.txt: lock entry `b` 2 is new"
        );
    }

    #[test]
    fn names_the_stack_json_key_that_changed() {
        let old = files(&[(
            "stack.json",
            r#"{"_generated": "x", "runtime": {"a": 1, "stop_grace": "3s"}}"#,
        )]);
        let new = files(&[(
            "stack.json",
            r#"{"_generated": "y", "runtime": {"a": 1, "stop_grace": "5s"}}"#,
        )]);
        assert_eq!(
            files_change(&old, &new).unwrap(),
            r#"stack.json: runtime.stop_grace: "3s" -> "5s""#
        );
    }

    #[test]
    fn names_a_file_of_a_folder_and_nothing_when_equal() {
        let old = files(&[("ui/a.js", "1"), ("ui/b.css", "2")]);
        let new = files(&[("ui/a.js", "1"), ("ui/b.css", "3")]);
        assert_eq!(files_change(&old, &new).unwrap(), "ui/b.css changed");
        assert_eq!(files_change(&old, &old), None);
    }

    #[test]
    fn lists_the_words_an_instruction_gained() {
        assert_eq!(
            instruction_change("RUN apt-get install a b", "RUN apt-get install a b ffmpeg"),
            "+ ffmpeg"
        );
    }
}
