//! The lock's on-disk cache of answers that do not change: a release's files and dependencies
//! (by name and version), package metadata (by the file's sha256), and the hash of what a URL
//! served (by URL and the hash it must have). Entries are written whole (a temporary file,
//! then a rename), so a cache shared by parallel runs never holds half an answer.
//!
//! The cache lives in `$PODSTACK_CACHE_DIR`, else `$XDG_CACHE_HOME/podstack`, else
//! `~/.cache/podstack`; a cache that cannot be written only makes the next run slower.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Kinds of cached answers, each a folder of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A release's files and `Requires-Dist` lines, as JSON.
    Release,
    /// A wheel's core metadata (PEP 658), as served.
    Metadata,
    /// What a URL served: `<sha256> <size>`.
    UrlHash,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Self::Release => "releases",
            Self::Metadata => "metadata",
            Self::UrlHash => "url-hashes",
        }
    }
}

/// The cache folder, or none when no home is known.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// The user's cache, from the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let dir = var("PODSTACK_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("podstack")))
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache/podstack")));
        Self { dir }
    }

    /// A cache in `dir`.
    #[cfg(test)]
    fn at(dir: &Path) -> Self {
        Self {
            dir: Some(dir.to_owned()),
        }
    }

    fn path(&self, kind: Kind, key: &str) -> Option<PathBuf> {
        let name = hex::encode(Sha256::digest(key.as_bytes()));
        Some(self.dir.as_ref()?.join(kind.folder()).join(name))
    }

    pub fn get(&self, kind: Kind, key: &str) -> Option<String> {
        std::fs::read_to_string(self.path(kind, key)?).ok()
    }

    pub fn put(&self, kind: Kind, key: &str, value: &str) {
        let Some(path) = self.path(kind, key) else {
            return;
        };
        let written = (|| {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let temporary = path.with_extension(format!(
                "{}-{:08x}.tmp",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::write(&temporary, value)?;
            std::fs::rename(&temporary, &path)
        })();
        if let Err(err) = written {
            tracing::debug!("cache entry {} not written: {err}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_by_kind_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        assert_eq!(cache.get(Kind::UrlHash, "https://a/x.whl"), None);
        cache.put(Kind::UrlHash, "https://a/x.whl", "abc 3");
        assert_eq!(
            cache.get(Kind::UrlHash, "https://a/x.whl").as_deref(),
            Some("abc 3")
        );
        assert_eq!(cache.get(Kind::Release, "https://a/x.whl"), None);
    }
}
