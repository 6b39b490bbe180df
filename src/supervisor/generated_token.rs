//! The panel token a pod on RunPod makes for itself when nobody set one: RunPod's proxy puts
//! every HTTP port on the public internet, so a panel without a token there is open to anyone
//! who finds the address. The token is generated once, stored on the volume (mode 0600, so
//! every pod of the volume shares it and it survives restarts) and printed to the container
//! log only when it is made. `runtime.open_panel = true` opts out.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;

/// The token file under `<volume>/.podstack/`.
pub const TOKEN_FILE: &str = "panel-token";

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredToken {
    /// Made now and written to the file.
    Made { token: String, path: PathBuf },
    /// Read from the file an earlier start made.
    Read { token: String, path: PathBuf },
}

/// A token file that cannot be made or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot keep the generated panel token in {path}: {source}")]
pub struct TokenFileError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl StoredToken {
    pub fn token(&self) -> &str {
        match self {
            Self::Made { token, .. } | Self::Read { token, .. } => token,
        }
    }
}

/// The token in `<podstack_dir>/panel-token`, made (32 random bytes, hex) when there is none.
pub fn load_or_make(podstack_dir: &Path) -> Result<StoredToken, TokenFileError> {
    let path = podstack_dir.join(TOKEN_FILE);
    let failed = |source| TokenFileError {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(podstack_dir).map_err(failed)?;
    let mut bytes = [0_u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    // create_new: two pods starting at once never overwrite each other's token.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            Ok(StoredToken::Made { token, path })
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(&path).map_err(failed)?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(failed(io::Error::other(
                    "the file is empty; delete it and restart the pod to make a new token",
                )));
            }
            Ok(StoredToken::Read { token, path })
        }
        Err(err) => Err(failed(err)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn makes_a_private_token_once_and_reads_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_make(dir.path()).unwrap();
        let StoredToken::Made { token, path } = &made else {
            panic!("{made:?}");
        };
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = load_or_make(dir.path()).unwrap();
        assert!(matches!(read, StoredToken::Read { .. }));
        assert_eq!(read.token(), made.token());
    }

    #[test]
    fn an_empty_file_is_an_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TOKEN_FILE), "\n").unwrap();
        let err = load_or_make(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("delete it and restart the pod"),
            "{err}"
        );
    }
}
