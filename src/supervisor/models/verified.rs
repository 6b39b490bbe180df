//! Which model files were checked against their sha256, remembered by size and mtime, so a pod
//! that starts on a volume with 100 GB of models does not read them all again: a file whose
//! size and mtime match its record is taken as verified; anything else is hashed again.
//!
//! One record per file under `<volume>/.podstack/models/verified/`, written whole (a temporary
//! file, then a rename) by whichever pod checked or downloaded the file; pods write the same
//! content for the same file, so no write can corrupt another.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    dest: String,
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

/// The records of one volume.
#[derive(Debug, Clone)]
pub struct Verified {
    dir: PathBuf,
}

/// A file's size and mtime, as recorded.
fn stamp(path: &Path) -> io::Result<(u64, u128)> {
    let meta = fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?
        .as_nanos();
    Ok((meta.len(), mtime))
}

impl Verified {
    pub fn new(podstack_dir: &Path) -> Self {
        Self {
            dir: podstack_dir.join("models").join("verified"),
        }
    }

    fn record_path(&self, dest: &str) -> PathBuf {
        let key = hex::encode(&Sha256::digest(dest.as_bytes())[..12]);
        self.dir.join(format!("{key}.json"))
    }

    /// Whether `path` (the file of `dest`) was checked to hash to `sha256` and has not
    /// changed since.
    pub fn holds(&self, dest: &str, path: &Path, sha256: &str) -> bool {
        let Ok((size, mtime_ns)) = stamp(path) else {
            return false;
        };
        let Ok(text) = fs::read(self.record_path(dest)) else {
            return false;
        };
        serde_json::from_slice::<Record>(&text).is_ok_and(|record| {
            record
                == Record {
                    dest: dest.to_owned(),
                    sha256: sha256.to_owned(),
                    size,
                    mtime_ns,
                }
        })
    }

    /// Remembers that `path` hashes to `sha256` as it is now.
    pub fn record(&self, dest: &str, path: &Path, sha256: &str) -> io::Result<()> {
        let (size, mtime_ns) = stamp(path)?;
        let record = Record {
            dest: dest.to_owned(),
            sha256: sha256.to_owned(),
            size,
            mtime_ns,
        };
        fs::create_dir_all(&self.dir)?;
        let target = self.record_path(dest);
        let temporary = target.with_extension(format!(
            "{}-{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::write(
            &temporary,
            serde_json::to_vec(&record).map_err(io::Error::other)?,
        )?;
        fs::rename(&temporary, &target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let verified = Verified::new(dir.path());
        let file = dir.path().join("model.safetensors");
        fs::write(&file, b"weights").unwrap();
        assert!(!verified.holds("checkpoints/m.safetensors", &file, "abc"));
        verified
            .record("checkpoints/m.safetensors", &file, "abc")
            .unwrap();
        assert!(verified.holds("checkpoints/m.safetensors", &file, "abc"));
        assert!(!verified.holds("checkpoints/m.safetensors", &file, "other"));
        assert!(!verified.holds("loras/m.safetensors", &file, "abc"));
        fs::write(&file, b"weights, changed").unwrap();
        assert!(!verified.holds("checkpoints/m.safetensors", &file, "abc"));
    }
}
