//! The sync ledger on the volume, so that a restarted supervisor catches up (a pod killed
//! between a change and its pass must not leave the change unsynced until the user is served
//! again): for each user folder a pod synced, `<vol>/.podstack/sync/<folder>/<user>.json`
//! (`{"pod", "synced_ms"}`) says up to when its changes are on the remote. It is written when a
//! pod starts syncing the folder and after each pass that succeeded, as a new file renamed over
//! the old one (crash-safe: a reader sees the old record or the new one). At start, every folder
//! in the ledger with a file or folder changed after `synced_ms` is synced again, served or not.
//! The entry also keeps the folder's deletions within the window (`deletions`, see `budget`),
//! booked before a pass deletes and settled after, so a restart does not renew the budget.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::budget::Deletions;
use super::layout::UserFolder;
use crate::manifest::SyncFolderKind;
use crate::user::UserName;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    pod: String,
    synced_ms: u64,
    #[serde(default)]
    deletions: Deletions,
}

/// The ledger under `<vol>/.podstack/sync`.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
    pod: String,
}

impl Ledger {
    pub fn new(dir: PathBuf, pod: &str) -> Self {
        Self {
            dir,
            pod: pod.to_owned(),
        }
    }

    fn path(&self, folder: &UserFolder) -> PathBuf {
        self.dir
            .join(folder.kind.as_str())
            .join(format!("{}.json", folder.user))
    }

    /// The folder's entry; `None` when it has none (or it cannot be read).
    fn read(&self, folder: &UserFolder) -> io::Result<Option<Entry>> {
        match fs::read(self.path(folder)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Writes the folder's entry as a new file renamed over the old one.
    fn write(&self, folder: &UserFolder, entry: &Entry) -> io::Result<()> {
        let path = self.path(folder);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let fresh = path.with_extension(format!("{}.tmp", self.pod));
        let mut file = fs::File::create(&fresh)?;
        file.write_all(&serde_json::to_vec(entry).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&fresh, &path)
    }

    /// Changes the folder's entry (a fresh one when it has none, or an unreadable one).
    fn update(&self, folder: &UserFolder, change: impl FnOnce(&mut Entry)) -> io::Result<()> {
        let mut entry = self.read(folder).ok().flatten().unwrap_or_default();
        entry.pod.clone_from(&self.pod);
        change(&mut entry);
        self.write(folder, &entry)
    }

    /// The folder's changes up to `synced_ms` are on the remote.
    pub fn record(&self, folder: &UserFolder, synced_ms: u64) -> io::Result<()> {
        self.update(folder, |entry| entry.synced_ms = synced_ms)
    }

    /// The folder joins the ledger when this pod starts syncing it; an existing record stays.
    pub fn enter(&self, folder: &UserFolder) -> io::Result<()> {
        if self.synced_ms(folder).is_some() {
            return Ok(());
        }
        self.record(folder, 0)
    }

    fn synced_ms(&self, folder: &UserFolder) -> Option<u64> {
        self.read(folder)
            .ok()
            .flatten()
            .map(|entry| entry.synced_ms)
    }

    /// The folder's deletions within the window, as last written.
    pub fn deletions(&self, folder: &UserFolder) -> io::Result<Deletions> {
        Ok(self.read(folder)?.unwrap_or_default().deletions)
    }

    /// Changes the folder's deletions (books or settles a batch).
    pub fn update_deletions(
        &self,
        folder: &UserFolder,
        change: impl FnOnce(&mut Deletions),
    ) -> io::Result<()> {
        self.update(folder, |entry| change(&mut entry.deletions))
    }

    /// Every folder in the ledger with when it was last synced; unreadable entries count as
    /// never synced.
    pub fn entries(&self) -> Vec<(UserFolder, u64)> {
        let mut found = Vec::new();
        for kind_dir in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Ok(kind) = serde_json::from_value::<SyncFolderKind>(serde_json::Value::String(
                kind_dir.file_name().to_string_lossy().into_owned(),
            )) else {
                continue;
            };
            for file in fs::read_dir(kind_dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(user) = name
                    .strip_suffix(".json")
                    .and_then(|user| UserName::parse(user).ok())
                else {
                    continue;
                };
                let folder = UserFolder { user, kind };
                let synced_ms = self.synced_ms(&folder).unwrap_or(0);
                found.push((folder, synced_ms));
            }
        }
        found.sort();
        found
    }
}

/// Whether anything under `dir` (itself included: a deletion changes its folder) was modified
/// after `since_ms`.
pub fn changed_since(dir: &Path, since_ms: u64) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .any(|entry| {
            entry
                .metadata()
                .ok()
                .and_then(|meta| meta.modified().ok())
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|at| u64::try_from(at.as_millis()).unwrap_or(u64::MAX) > since_ms)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(user: &str) -> UserFolder {
        UserFolder {
            user: UserName::parse(user).unwrap(),
            kind: SyncFolderKind::Output,
        }
    }

    #[test]
    fn entries_keep_the_last_record_and_a_new_folder_starts_at_never() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().to_owned(), "pod-a");
        ledger.enter(&output("alice")).unwrap();
        ledger.enter(&output("bob")).unwrap();
        ledger.record(&output("bob"), 1234).unwrap();
        ledger.enter(&output("bob")).unwrap();
        std::fs::write(dir.path().join("output/not a user.json"), "{}").unwrap();
        assert_eq!(
            ledger.entries(),
            [(output("alice"), 0), (output("bob"), 1234)]
        );
    }

    #[test]
    fn deletions_and_the_last_pass_are_kept_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().to_owned(), "pod-a");
        ledger
            .update_deletions(&output("alice"), |d| d.book(500, 7))
            .unwrap();
        ledger.record(&output("alice"), 1234).unwrap();
        // Another supervisor on the volume (a restart) reads what the first one wrote.
        let restarted = Ledger::new(dir.path().to_owned(), "pod-a");
        let mut deletions = restarted.deletions(&output("alice")).unwrap();
        assert_eq!(
            deletions.left(600, std::time::Duration::from_secs(60), 10),
            3
        );
        assert_eq!(restarted.entries(), [(output("alice"), 1234)]);
        assert_eq!(
            restarted.deletions(&output("bob")).unwrap(),
            Deletions::default()
        );
    }

    #[test]
    fn a_change_after_the_last_pass_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"a").unwrap();
        assert!(changed_since(dir.path(), 0));
        assert!(!changed_since(dir.path(), u64::MAX));
    }
}
