//! The empty-source guard (L24): a mirror pass from a folder that is missing or empty on the
//! volume (not mounted, a wrong path) would delete everything on the remote. When the remote
//! folder holds files, such a pass is refused with an error in the status and nothing is
//! deleted; the next pass checks again.

use std::path::Path;

use super::layout::excluded;

/// What the source folder holds, as far as a pass is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Missing,
    /// Nothing that would be uploaded (excluded files do not count).
    Empty,
    HasFiles,
}

impl Source {
    /// Looks for one file that a pass would upload; stops at the first.
    pub fn of(dir: &Path) -> Self {
        if !dir.is_dir() {
            return Self::Missing;
        }
        let has_files = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .any(|entry| {
                entry.file_type().is_file()
                    && entry
                        .path()
                        .strip_prefix(dir)
                        .is_ok_and(|relative| !excluded(relative))
            });
        if has_files {
            Self::HasFiles
        } else {
            Self::Empty
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Empty => "empty",
            Self::HasFiles => "not empty",
        }
    }
}

/// Why a mirror pass is refused, if it is: the source is missing or empty while the remote
/// folder holds `remote_files`.
pub fn refusal(source: Source, local: &Path, remote_files: u64) -> Option<String> {
    (source != Source::HasFiles && remote_files > 0).then(|| {
        format!(
            "{} is {} on the volume while the remote folder holds {remote_files} file(s): the mirror pass was refused and nothing was deleted",
            local.display(),
            source.word()
        )
    })
}

/// What to do about a refusal.
pub const REFUSAL_HINT: &str = "check that the network volume is mounted and holds this folder; to delete the remote copies on purpose, delete them on the remote (or set the folder's mode = \"copy\")";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_source_is_refused_only_when_the_remote_has_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("output/alice");
        assert_eq!(Source::of(&folder), Source::Missing);
        let refused = refusal(Source::of(&folder), &folder, 3).unwrap();
        assert!(
            refused.contains("is missing on the volume while the remote folder holds 3 file(s)")
        );
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("sub/half.png.partial"), "x").unwrap();
        assert_eq!(Source::of(&folder), Source::Empty);
        assert!(refusal(Source::Empty, &folder, 1).is_some());
        assert_eq!(refusal(Source::Empty, &folder, 0), None);
        std::fs::write(folder.join("sub/done.png"), "x").unwrap();
        assert_eq!(Source::of(&folder), Source::HasFiles);
        assert_eq!(refusal(Source::HasFiles, &folder, 10), None);
    }
}
