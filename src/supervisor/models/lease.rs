//! A lease on the shared volume: which pod does a job that every pod on the volume could start
//! at once (one download per model file). A lease is a file created exclusively, naming its
//! pod; the holder renews its mtime while it works, and removes it when done. A lease not
//! renewed for [`STALE_AFTER`] belonged to a pod that died: it is moved aside (a rename, which
//! only one taker wins) and taken over.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// How often the holder renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A lease not renewed for this long is taken over.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What a lease file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    pod: String,
    pid: u32,
    /// Tells this holder's file from a later one of the same pod.
    token: String,
}

/// A held lease; released (its file removed, if still ours) when dropped.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    token: String,
    renewal: Option<JoinHandle<()>>,
}

/// The outcome of asking for a lease.
#[derive(Debug)]
pub enum Acquired {
    Held(Lease),
    /// Another holder is at work (its pod id, or what its file says).
    Busy {
        holder: String,
    },
}

/// Takes the lease at `path` for `pod`, unless a live holder has it. The holder's renewal
/// runs on the current tokio runtime.
pub fn acquire(path: &Path, pod: &str) -> io::Result<Acquired> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let token = format!("{:016x}", rand::random::<u64>());
    let holder = Holder {
        pod: pod.to_owned(),
        pid: std::process::id(),
        token: token.clone(),
    };
    let content = serde_json::to_vec(&holder).map_err(io::Error::other)?;
    for _ in 0..3 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut file) => {
                file.write_all(&content)?;
                file.sync_all()?;
                let renewal = tokio::spawn(renew(path.to_owned(), token.clone()));
                return Ok(Acquired::Held(Lease {
                    path: path.to_owned(),
                    token,
                    renewal: Some(renewal),
                }));
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let stale = fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .map(|modified| {
                        SystemTime::now()
                            .duration_since(modified)
                            .is_ok_and(|age| age > STALE_AFTER)
                    });
                match stale {
                    Ok(true) => take_over(path, &token)?,
                    Ok(false) => {
                        return Ok(Acquired::Busy {
                            holder: holder_of(path),
                        })
                    }
                    // It went away between the two calls: try again.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(Acquired::Busy {
        holder: holder_of(path),
    })
}

/// Moves a stale lease aside; of several pods doing this at once, one rename succeeds and the
/// others find nothing to move.
fn take_over(path: &Path, token: &str) -> io::Result<()> {
    let aside = path.with_extension(format!("stale-{token}"));
    match fs::rename(path, &aside) {
        Ok(()) => {
            tracing::warn!("took over the stale lease {}", path.display());
            fs::remove_file(&aside)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn holder_of(path: &Path) -> String {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Holder>(&bytes).ok())
        .map_or_else(|| "another pod".to_owned(), |holder| holder.pod)
}

fn is_ours(path: &Path, token: &str) -> bool {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Holder>(&bytes).ok())
        .is_some_and(|holder| holder.token == token)
}

/// Renews the lease's mtime until the lease is dropped (or taken over).
async fn renew(path: PathBuf, token: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let path = path.clone();
        let token = token.clone();
        let renewed = tokio::task::spawn_blocking(move || {
            if !is_ours(&path, &token) {
                return false;
            }
            File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(SystemTime::now()))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if !renewed {
            return;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if is_ours(&self.path, &self.token) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases/model.lease");
        let Acquired::Held(lease) = acquire(&path, "pod-a").unwrap() else {
            panic!("the first pod gets the lease");
        };
        match acquire(&path, "pod-b").unwrap() {
            Acquired::Busy { holder } => assert_eq!(holder, "pod-a"),
            Acquired::Held(_) => panic!("two holders"),
        }
        drop(lease);
        assert!(!path.exists());
        assert!(matches!(
            acquire(&path, "pod-b").unwrap(),
            Acquired::Held(_)
        ));
    }

    #[tokio::test]
    async fn a_stale_lease_is_taken_over_and_its_old_holder_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.lease");
        let Acquired::Held(old) = acquire(&path, "pod-a").unwrap() else {
            panic!("the first pod gets the lease");
        };
        let long_ago = SystemTime::now() - STALE_AFTER - Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let Acquired::Held(new) = acquire(&path, "pod-b").unwrap() else {
            panic!("a stale lease is taken over");
        };
        drop(old);
        assert!(
            path.exists(),
            "the old holder removed the new holder's lease"
        );
        assert_eq!(holder_of(&path), "pod-b");
        drop(new);
        assert!(!path.exists());
    }
}
