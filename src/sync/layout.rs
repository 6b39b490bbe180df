//! Where each synced user folder lives, on the volume and on the remote (L23: one sync per
//! user folder, never the whole volume):
//!
//! ```text
//! <vol>/output/<user>                     <remote>:<root>/output/<user>
//! <vol>/input/<user>                      <remote>:<root>/input/<user>
//! <vol>/users/<user>/default/workflows    <remote>:<root>/workflows/<user>
//! mirror deletions and overwrites  ->     <remote>:<root>/.trash/<date>/<folder>/<user>
//! uploads on their way              ->     <remote>:<root>/.podstack/upload/<folder>/<user>
//! ```
//!
//! `default` is the user ComfyUI keeps its files under in its `--user-directory` when it runs
//! without `--multi-user` (`app/user_manager.py`), and `workflows/` holds the saved workflows.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::manifest::SyncFolderKind;
use crate::user::UserName;

/// ComfyUI's user when it runs without `--multi-user`.
pub const COMFYUI_SINGLE_USER: &str = "default";

/// Never uploaded: partial files (`*.partial` is what rclone and browsers write while a file is
/// on its way), temporary files, and a ComfyUI temp directory (`<temp-directory>/temp`) should
/// one be pointed inside a synced folder.
pub const EXCLUDES: [&str; 3] = ["*.tmp", "*.partial", "/temp/**"];

/// One user's folder of one kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserFolder {
    pub user: UserName,
    pub kind: SyncFolderKind,
}

impl fmt::Display for UserFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.user)
    }
}

impl UserFolder {
    /// The folder on the volume.
    pub fn local(&self, volume: &Path) -> PathBuf {
        let user = self.user.as_str();
        match self.kind {
            SyncFolderKind::Output => volume.join("output").join(user),
            SyncFolderKind::Input => volume.join("input").join(user),
            SyncFolderKind::Workflows => volume
                .join("users")
                .join(user)
                .join(COMFYUI_SINGLE_USER)
                .join("workflows"),
        }
    }

    /// The folder on the remote, under `root`.
    pub fn remote(&self, root: &str) -> String {
        format!("{root}/{self}")
    }

    /// Where a pass uploads before moving the files into place server-side: a partial
    /// upload never sits under a file's final name.
    pub fn upload(&self, root: &str) -> String {
        format!("{root}/.podstack/upload/{self}")
    }

    /// Where a mirror pass on `date` (`YYYY-MM-DD`) moves what it deletes or overwrites.
    pub fn trash(&self, root: &str, date: &str) -> String {
        format!("{root}/.trash/{date}/{self}")
    }
}

/// Whether `relative` (a path inside a synced folder) is never uploaded.
pub fn excluded(relative: &Path) -> bool {
    let name = relative
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    name.ends_with(".tmp")
        || name.ends_with(".partial")
        || relative
            .components()
            .next()
            .is_some_and(|first| first.as_os_str() == "temp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(user: &str, kind: SyncFolderKind) -> UserFolder {
        UserFolder {
            user: UserName::parse(user).unwrap(),
            kind,
        }
    }

    #[test]
    fn each_folder_maps_to_the_users_place_on_both_sides() {
        let volume = Path::new("/workspace");
        let cases = [
            (
                SyncFolderKind::Output,
                "/workspace/output/alice",
                "Out/output/alice",
            ),
            (
                SyncFolderKind::Input,
                "/workspace/input/alice",
                "Out/input/alice",
            ),
            (
                SyncFolderKind::Workflows,
                "/workspace/users/alice/default/workflows",
                "Out/workflows/alice",
            ),
        ];
        for (kind, local, remote) in cases {
            let folder = folder("alice", kind);
            assert_eq!(folder.local(volume), Path::new(local));
            assert_eq!(folder.remote("Out"), remote);
        }
        assert_eq!(
            folder("bob", SyncFolderKind::Output).trash("Out", "2026-05-01"),
            "Out/.trash/2026-05-01/output/bob"
        );
        assert_eq!(
            folder("bob", SyncFolderKind::Output).upload("Out"),
            "Out/.podstack/upload/output/bob"
        );
    }

    #[test]
    fn partial_and_temporary_files_are_excluded() {
        for path in ["a.png.tmp", "x/b.partial", "temp/preview.png"] {
            assert!(excluded(Path::new(path)), "{path}");
        }
        for path in ["a.png", "x/temp/b.png", "partial.png"] {
            assert!(!excluded(Path::new(path)), "{path}");
        }
    }
}
