//! podstack's own files in the image: sealed at build time into a list of sha256, checked
//! at start so a file changed, removed or added in a running pod is named (L2).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The list's name inside the runtime folder; it does not list itself.
pub const SEAL_FILE: &str = "files.sha256";

/// How one file differs from the seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "drift", rename_all = "kebab-case")]
pub enum FileDrift {
    Changed { path: String },
    Missing { path: String },
    Extra { path: String },
}

/// Why files could not be sealed or checked.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line} is not `<sha256>  <path>`\n  hint: the seal is written by `podstack seal` at image build; rebuild the image")]
    Malformed { path: String, line: usize },
}

/// The files a seal covers: everything under the runtime folder (but the seal) and the
/// extra files named (the podstack binary), by absolute path.
fn covered(runtime_dir: &Path, extra: &[PathBuf]) -> Result<Vec<PathBuf>, SealError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(runtime_dir).sort_by_file_name() {
        let entry = entry.map_err(|err| SealError::Read {
            path: runtime_dir.display().to_string(),
            source: err.into(),
        })?;
        if entry.file_type().is_file() && entry.path() != runtime_dir.join(SEAL_FILE) {
            files.push(entry.into_path());
        }
    }
    // Absolute, so a seal made with a relative path matches the running binary's path.
    files.extend(
        extra
            .iter()
            .filter(|path| path.exists())
            .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone())),
    );
    Ok(files)
}

fn sha256_file(path: &Path) -> Result<String, SealError> {
    let read_error = |source| SealError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A line of the seal (sha256sum format): the file's sha256 in hex, two spaces, its path.
fn line(hash: &str, path: &Path) -> String {
    format!("{hash}  {}\n", path.display())
}

/// The bytes of the seal's line for `path`, whatever the file holds.
pub fn line_len(path: &Path) -> u64 {
    let hash = "0".repeat(2 * Sha256::output_size());
    line(&hash, path).len() as u64
}

/// Writes `<runtime_dir>/files.sha256` (sha256sum format) over the covered files.
pub fn seal(runtime_dir: &Path, extra: &[PathBuf]) -> Result<usize, SealError> {
    let mut text = String::new();
    let files = covered(runtime_dir, extra)?;
    for path in &files {
        text.push_str(&line(&sha256_file(path)?, path));
    }
    let seal = runtime_dir.join(SEAL_FILE);
    std::fs::write(&seal, text).map_err(|source| SealError::Write {
        path: seal.display().to_string(),
        source,
    })?;
    Ok(files.len())
}

/// Compares the covered files with the seal, file by file.
pub fn check(runtime_dir: &Path, extra: &[PathBuf]) -> Result<Vec<FileDrift>, SealError> {
    let seal = runtime_dir.join(SEAL_FILE);
    let text = std::fs::read_to_string(&seal).map_err(|source| SealError::Read {
        path: seal.display().to_string(),
        source,
    })?;
    let mut sealed = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let (hash, path) = line.split_once("  ").ok_or(SealError::Malformed {
            path: seal.display().to_string(),
            line: i + 1,
        })?;
        sealed.insert(PathBuf::from(path), hash.to_owned());
    }
    let mut drift = Vec::new();
    for path in covered(runtime_dir, extra)? {
        let shown = path.display().to_string();
        match sealed.remove(&path) {
            None => drift.push(FileDrift::Extra { path: shown }),
            Some(hash) if sha256_file(&path)? != hash => {
                drift.push(FileDrift::Changed { path: shown })
            }
            Some(_) => {}
        }
    }
    drift.extend(sealed.into_keys().map(|path| FileDrift::Missing {
        path: path.display().to_string(),
    }));
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_is_as_long_as_its_lines_say_whatever_the_files_hold() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("podstack");
        std::fs::create_dir_all(runtime.join("ui")).unwrap();
        std::fs::write(runtime.join("stack.json"), "{}").unwrap();
        std::fs::write(runtime.join("ui/index.html"), "<p>".repeat(1000)).unwrap();
        let binary = dir.path().join("podstack-bin");
        std::fs::write(&binary, "ELF").unwrap();
        seal(&runtime, std::slice::from_ref(&binary)).unwrap();
        let written = std::fs::metadata(runtime.join(SEAL_FILE)).unwrap().len();
        let predicted: u64 = [
            binary.clone(),
            runtime.join("stack.json"),
            runtime.join("ui/index.html"),
        ]
        .iter()
        .map(|path| line_len(path))
        .sum();
        assert_eq!(written, predicted);
    }

    #[test]
    fn names_changed_missing_and_extra_files() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("podstack");
        std::fs::create_dir_all(runtime.join("ui")).unwrap();
        std::fs::write(runtime.join("stack.json"), "{}").unwrap();
        std::fs::write(runtime.join("ui/index.html"), "<p>").unwrap();
        std::fs::write(runtime.join("ui/app.js"), "x").unwrap();
        let binary = dir.path().join("podstack-bin");
        std::fs::write(&binary, "ELF").unwrap();
        let extra = [binary.clone()];

        assert_eq!(seal(&runtime, &extra).unwrap(), 4);
        assert_eq!(check(&runtime, &extra).unwrap(), []);

        std::fs::write(runtime.join("ui/index.html"), "<p>patched").unwrap();
        std::fs::remove_file(runtime.join("ui/app.js")).unwrap();
        std::fs::write(runtime.join("ui/hotfix.js"), "y").unwrap();
        std::fs::write(&binary, "ELF2").unwrap();
        let shown = |p: &Path| p.display().to_string();
        assert_eq!(
            check(&runtime, &extra).unwrap(),
            [
                FileDrift::Extra {
                    path: shown(&runtime.join("ui/hotfix.js"))
                },
                FileDrift::Changed {
                    path: shown(&runtime.join("ui/index.html"))
                },
                FileDrift::Changed {
                    path: shown(&binary)
                },
                FileDrift::Missing {
                    path: shown(&runtime.join("ui/app.js"))
                },
            ]
        );
    }

    #[test]
    fn a_broken_seal_says_to_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SEAL_FILE), "not a line\n").unwrap();
        let err = check(dir.path(), &[]).unwrap_err().to_string();
        assert!(
            err.contains("line 1 is not") && err.contains("rebuild the image"),
            "{err}"
        );
    }
}
