//! What starts a pass besides the periodic full pass: file events in the served users'
//! folders (inotify through the `notify` crate). A file closed after writing, created, changed,
//! renamed or deleted counts; reads do not. When the kernel dropped events (its queue
//! overflowed), every folder is due, since the changed ones are unknown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

/// A change somewhere in the watched folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This path changed.
    At(PathBuf),
    /// Events were lost: anything may have changed.
    Unknown,
}

/// The watches on the served users' folders.
pub struct FolderWatch {
    watcher: RecommendedWatcher,
    watching: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatch")
            .field("watching", &self.watching)
            .finish_non_exhaustive()
    }
}

impl FolderWatch {
    /// A watcher that hands every change to `changed` (from its own thread).
    pub fn new(changed: impl Fn(Change) + Send + 'static) -> notify::Result<Self> {
        let watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.need_rescan() => changed(Change::Unknown),
                Ok(event) if counts(event.kind) => {
                    for path in event.paths {
                        changed(Change::At(path));
                    }
                }
                Ok(_) => {}
                Err(_) => changed(Change::Unknown),
            })?;
        Ok(Self {
            watcher,
            watching: BTreeSet::new(),
        })
    }

    /// Watches `dir` and everything below it, once it exists; whether it is watched.
    pub fn watch(&mut self, dir: &Path) -> bool {
        if self.watching.contains(dir) {
            return true;
        }
        if !dir.is_dir() || self.watcher.watch(dir, RecursiveMode::Recursive).is_err() {
            return false;
        }
        self.watching.insert(dir.to_owned());
        true
    }

    /// Whether `dir` is watched.
    pub fn watching(&self, dir: &Path) -> bool {
        self.watching.contains(dir)
    }

    /// Forgets a watched folder that was deleted, so it is watched again once it is back.
    pub fn forget(&mut self, dir: &Path) {
        if self.watching.remove(dir) {
            let _ = self.watcher.unwatch(dir);
        }
    }
}

/// Whether an event kind can mean a file to upload or delete.
fn counts(kind: EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_written_file_is_a_change_and_a_read_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut watch = FolderWatch::new(move |change| {
            let _ = tx.send(change);
        })
        .unwrap();
        let folder = dir.path().join("alice");
        assert!(!watch.watch(&folder), "a missing folder is not watched yet");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        assert!(watch.watch(&folder));
        std::fs::write(folder.join("sub/a.png"), "png").unwrap();
        let file = folder.join("sub/a.png");
        let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(seen, Change::At(file.clone()));
        while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
        let _ = std::fs::read(&file).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(!counts(EventKind::Access(AccessKind::Read)));
    }
}
