//! Duplicates on the remote (L25): Google Drive allows two files of one name in a folder, and
//! rclone then logs `<path>: Duplicate object found in destination - ignoring` and leaves the
//! file alone on every pass. When a pass logs that, the folder gets one
//! `rclone dedupe --dedupe-mode newest` (keep the newest copy, delete the others), and the
//! status reports it. A folder that still has duplicates right after a dedupe is reported, not
//! deduped in a loop.

use std::path::Path;
use std::time::Duration;

/// A folder is not deduped again this soon after its last dedupe.
pub const AGAIN_AFTER: Duration = Duration::from_secs(600);

/// The object a "Duplicate object found" line names, relative to the synced folder.
pub fn duplicate_in(line: &str) -> Option<&str> {
    let (head, _) = line
        .split_once(": Duplicate object found")
        .or_else(|| line.split_once(": Duplicate directory found"))?;
    Some(super::log_line::message(head))
}

/// Which of the folders that are syncing now (`key`, their local folder) the duplicate
/// `object` belongs to: those that hold it, or all of them when none does (it may be gone
/// locally).
pub fn owners<K: Clone>(object: &str, syncing: &[(K, &Path)]) -> Vec<K> {
    let holding: Vec<K> = syncing
        .iter()
        .filter(|(_, local)| local.join(object).exists())
        .map(|(key, _)| key.clone())
        .collect();
    if holding.is_empty() {
        syncing.iter().map(|(key, _)| key.clone()).collect()
    } else {
        holding
    }
}

/// `rclone dedupe` arguments for the remote folder `remote` (`remote:root/output/alice`).
pub fn args(remote: &str) -> Vec<String> {
    ["dedupe", "--dedupe-mode", "newest", "--config", "", remote]
        .map(str::to_owned)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duplicate_line_names_the_object() {
        assert_eq!(
            duplicate_in("2026/05/01 10:00:00 NOTICE: shots/ComfyUI_00001_.png: Duplicate object found in destination - ignoring"),
            Some("shots/ComfyUI_00001_.png")
        );
        assert_eq!(
            duplicate_in("x.png: Duplicate object found in source - ignoring"),
            Some("x.png")
        );
        assert_eq!(
            duplicate_in("2026/05/01 10:00:00 INFO  : a.png: Copied (new)"),
            None
        );
    }

    #[test]
    fn a_duplicate_belongs_to_the_folder_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
        std::fs::create_dir_all(&alice).unwrap();
        std::fs::create_dir_all(&bob).unwrap();
        std::fs::write(bob.join("x.png"), "x").unwrap();
        let syncing = [("alice", alice.as_path()), ("bob", bob.as_path())];
        assert_eq!(owners("x.png", &syncing), ["bob"]);
        assert_eq!(owners("gone.png", &syncing), ["alice", "bob"]);
    }

    #[test]
    fn dedupe_keeps_the_newest_copy() {
        assert_eq!(
            args("gdrive:Out/output/alice"),
            [
                "dedupe",
                "--dedupe-mode",
                "newest",
                "--config",
                "",
                "gdrive:Out/output/alice"
            ]
        );
    }
}
