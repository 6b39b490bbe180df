//! Leases on the shared volume: which pod syncs which user folder (L25: two pods syncing one
//! folder made the duplicates that stalled rclone on Drive). One file per user folder,
//! `<vol>/.podstack/leases/<folder>/<user>.json`, holding the pod and when it last renewed.
//!
//! - claiming creates the file with `O_EXCL`, so of two pods only one succeeds;
//! - the holder renews it every heartbeat by writing a new file beside it and renaming it over
//!   the old one, so a reader never sees a half-written lease;
//! - a lease not renewed for [`TAKEOVER_AFTER`] of its holder's heartbeats is stale: the pod
//!   that takes it over removes it under a takeover lock (`<user>.takeover`, `O_EXCL` too)
//!   only if it is still the stale lease it read, then claims it with `O_EXCL` like a free one;
//! - a pod that stops releases its leases, so another can take over at once;
//! - each claim is stamped with when it was made (`claimed_ms`, kept by renewals): the fencing
//!   token of the passes run under it. Before a pass changes the final folder on the remote it
//!   checks that the lease still holds its token, so a holder that was frozen and lost the
//!   lease meanwhile cannot write where the new holder does.
//!
//! Times are wall-clock milliseconds of the pods, which share the volume and NTP.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::layout::UserFolder;

/// Missed heartbeats after which another pod may take a lease over.
pub const TAKEOVER_AFTER: u32 = 3;

/// What a lease file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    pod: String,
    renewed_ms: u64,
    heartbeat_ms: u64,
    /// When this pod claimed the lease; renewals keep it.
    #[serde(default)]
    claimed_ms: u64,
}

/// Who syncs a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This pod.
    Mine,
    /// Another pod, which renewed its lease at `renewed_ms` (`None` while it writes it).
    HeldBy {
        pod: String,
        renewed_ms: Option<u64>,
    },
}

/// A lease file as read: its bytes (to tell whether it changed) and what they say.
#[derive(Debug)]
struct Seen {
    bytes: Vec<u8>,
    record: Option<LeaseRecord>,
    modified_ms: u64,
}

/// This pod's view of the lease folder.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
    pod: String,
    heartbeat: Duration,
}

impl Leases {
    /// Leases under `dir` (`<vol>/.podstack/leases`) for `pod`, renewed every `heartbeat`.
    pub fn new(dir: PathBuf, pod: &str, heartbeat: Duration) -> Self {
        Self {
            dir,
            pod: pod.to_owned(),
            heartbeat,
        }
    }

    fn path(&self, folder: &UserFolder) -> PathBuf {
        self.dir
            .join(folder.kind.as_str())
            .join(format!("{}.json", folder.user))
    }

    /// Takes the folder's lease when it is free, already ours, or stale.
    pub fn claim(&self, folder: &UserFolder, now_ms: u64) -> io::Result<Claim> {
        let path = self.path(folder);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        // A round lost to another pod's claim or takeover goes round again.
        for _ in 0..4 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(&self.record_bytes(now_ms, now_ms)?)?;
                    file.sync_all()?;
                    return Ok(Claim::Mine);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
            let Some(seen) = read(&path)? else {
                continue;
            };
            match &seen.record {
                Some(record) if record.pod == self.pod => {
                    self.write_own(&path, now_ms, record.claimed_ms)?;
                    return Ok(Claim::Mine);
                }
                _ if self.stale(&seen, now_ms) => self.take_over(&path, &seen, now_ms)?,
                _ => return Ok(holder(&seen)),
            }
        }
        Ok(read(&path)?.map_or(
            Claim::HeldBy {
                pod: "another pod".to_owned(),
                renewed_ms: None,
            },
            |seen| holder(&seen),
        ))
    }

    /// Renews a lease this pod holds; says who holds it when another pod took it over.
    pub fn renew(&self, folder: &UserFolder, now_ms: u64) -> io::Result<Claim> {
        let path = self.path(folder);
        match read(&path)? {
            Some(Seen {
                record: Some(record),
                ..
            }) if record.pod == self.pod => {
                self.write_own(&path, now_ms, record.claimed_ms)?;
                Ok(Claim::Mine)
            }
            Some(seen) => Ok(holder(&seen)),
            None => self.claim(folder, now_ms),
        }
    }

    /// The fencing token of this pod's claim on the folder (when it claimed it), or `None`
    /// when the lease is not this pod's.
    pub fn token(&self, folder: &UserFolder) -> io::Result<Option<u64>> {
        Ok(read(&self.path(folder))?
            .and_then(|seen| seen.record)
            .filter(|record| record.pod == self.pod)
            .map(|record| record.claimed_ms))
    }

    /// Whether this pod still holds the folder under the claim `token` (an unreadable lease
    /// does not count as held).
    pub fn holds(&self, folder: &UserFolder, token: u64) -> bool {
        self.token(folder).ok().flatten() == Some(token)
    }

    /// Gives the lease up, if this pod holds it.
    pub fn release(&self, folder: &UserFolder) -> io::Result<()> {
        let path = self.path(folder);
        match read(&path)? {
            Some(seen) if seen.record.as_ref().is_some_and(|r| r.pod == self.pod) => {
                match fs::remove_file(&path) {
                    Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn record_bytes(&self, now_ms: u64, claimed_ms: u64) -> io::Result<Vec<u8>> {
        let record = LeaseRecord {
            pod: self.pod.clone(),
            renewed_ms: now_ms,
            heartbeat_ms: millis(self.heartbeat),
            claimed_ms,
        };
        serde_json::to_vec(&record).map_err(io::Error::other)
    }

    /// Replaces the lease with a fresh one of this pod, atomically.
    fn write_own(&self, path: &Path, now_ms: u64, claimed_ms: u64) -> io::Result<()> {
        let fresh = path.with_extension(format!("{}.tmp", self.pod));
        let mut file = fs::File::create(&fresh)?;
        file.write_all(&self.record_bytes(now_ms, claimed_ms)?)?;
        file.sync_all()?;
        fs::rename(&fresh, path)
    }

    /// Whether a lease was not renewed for [`TAKEOVER_AFTER`] of its holder's heartbeats (of
    /// ours, for a file that never got its content).
    fn stale(&self, seen: &Seen, now_ms: u64) -> bool {
        let (since, heartbeat) = match &seen.record {
            Some(record) => (record.renewed_ms, record.heartbeat_ms),
            None => (seen.modified_ms, millis(self.heartbeat)),
        };
        now_ms.saturating_sub(since) > heartbeat.saturating_mul(u64::from(TAKEOVER_AFTER))
    }

    /// Removes a stale lease, under a short takeover lock so that a pod that read the lease
    /// before another replaced it can never remove the fresh one.
    fn take_over(&self, path: &Path, seen: &Seen, now_ms: u64) -> io::Result<()> {
        let lock = path.with_extension("takeover");
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                // Held for milliseconds; one left by a pod that died mid-takeover goes once old.
                if read(&lock)?.is_some_and(|left| self.stale(&left, now_ms)) {
                    let _ = fs::remove_file(&lock);
                }
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        let removed = match read(path) {
            Ok(Some(current)) if current.bytes == seen.bytes => match fs::remove_file(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        let _ = fs::remove_file(&lock);
        removed
    }
}

fn holder(seen: &Seen) -> Claim {
    match &seen.record {
        Some(record) => Claim::HeldBy {
            pod: record.pod.clone(),
            renewed_ms: Some(record.renewed_ms),
        },
        None => Claim::HeldBy {
            pod: "another pod".to_owned(),
            renewed_ms: None,
        },
    }
}

/// The lease at `path`, or `None` when there is none.
fn read(path: &Path) -> io::Result<Option<Seen>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let modified_ms = fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, millis);
    Ok(Some(Seen {
        record: serde_json::from_slice(&bytes).ok(),
        bytes,
        modified_ms,
    }))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::manifest::SyncFolderKind;
    use crate::user::UserName;

    const HEARTBEAT: Duration = Duration::from_secs(10);
    const NOW: u64 = 1_000_000_000;

    fn output(user: &str) -> UserFolder {
        UserFolder {
            user: UserName::parse(user).unwrap(),
            kind: SyncFolderKind::Output,
        }
    }

    fn pod(dir: &Path, name: &str) -> Leases {
        Leases::new(dir.to_owned(), name, HEARTBEAT)
    }

    #[test]
    fn the_first_pod_holds_the_lease_and_the_second_sees_who() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pod(dir.path(), "pod-a"), pod(dir.path(), "pod-b"));
        assert_eq!(a.claim(&output("alice"), NOW).unwrap(), Claim::Mine);
        assert_eq!(
            b.claim(&output("alice"), NOW + 1000).unwrap(),
            Claim::HeldBy {
                pod: "pod-a".to_owned(),
                renewed_ms: Some(NOW)
            }
        );
        assert_eq!(b.claim(&output("bob"), NOW).unwrap(), Claim::Mine);
        assert!(dir.path().join("output/alice.json").is_file());
        assert_eq!(a.claim(&output("alice"), NOW + 2000).unwrap(), Claim::Mine);
    }

    #[test]
    fn a_renewed_lease_is_never_taken_and_a_stale_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pod(dir.path(), "pod-a"), pod(dir.path(), "pod-b"));
        a.claim(&output("alice"), NOW).unwrap();
        let later = NOW + 3 * 10_000;
        assert_eq!(a.renew(&output("alice"), later).unwrap(), Claim::Mine);
        assert!(matches!(
            b.claim(&output("alice"), later + 25_000).unwrap(),
            Claim::HeldBy { .. }
        ));
        // Not renewed for more than three heartbeats: taken over.
        let stale = later + 30_001;
        assert_eq!(b.claim(&output("alice"), stale).unwrap(), Claim::Mine);
        assert_eq!(
            a.renew(&output("alice"), stale + 1).unwrap(),
            Claim::HeldBy {
                pod: "pod-b".to_owned(),
                renewed_ms: Some(stale)
            }
        );
    }

    #[test]
    fn a_claims_token_survives_renewals_and_a_takeover_fences_the_old_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pod(dir.path(), "pod-a"), pod(dir.path(), "pod-b"));
        a.claim(&output("alice"), NOW).unwrap();
        assert_eq!(a.token(&output("alice")).unwrap(), Some(NOW));
        a.renew(&output("alice"), NOW + 10_000).unwrap();
        assert!(a.holds(&output("alice"), NOW));
        assert_eq!(b.token(&output("alice")).unwrap(), None);
        let stale = NOW + 10_000 + 30_001;
        assert_eq!(b.claim(&output("alice"), stale).unwrap(), Claim::Mine);
        assert!(!a.holds(&output("alice"), NOW));
        assert!(b.holds(&output("alice"), stale));
    }

    #[test]
    fn release_frees_the_lease_for_another_pod_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pod(dir.path(), "pod-a"), pod(dir.path(), "pod-b"));
        a.claim(&output("alice"), NOW).unwrap();
        b.release(&output("alice")).unwrap();
        assert!(matches!(
            b.claim(&output("alice"), NOW).unwrap(),
            Claim::HeldBy { .. }
        ));
        a.release(&output("alice")).unwrap();
        assert_eq!(b.claim(&output("alice"), NOW).unwrap(), Claim::Mine);
    }

    /// Pods claiming at the same moment, from threads: exactly one holds the lease.
    fn race(dir: &Path, pods: usize, now: u64) -> usize {
        let barrier = Arc::new(Barrier::new(pods));
        let threads: Vec<_> = (0..pods)
            .map(|i| {
                let leases = pod(dir, &format!("pod-{i}"));
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    leases.claim(&output("alice"), now).unwrap() == Claim::Mine
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .filter(|mine| *mine)
            .count()
    }

    #[test]
    fn of_pods_claiming_at_once_exactly_one_wins() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(race(dir.path(), 6, NOW), 1);
        }
    }

    #[test]
    fn of_pods_taking_over_a_stale_lease_at_once_exactly_one_wins() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            pod(dir.path(), "gone")
                .claim(&output("alice"), NOW)
                .unwrap();
            assert_eq!(race(dir.path(), 6, NOW + 31_000), 1);
            let left: Vec<_> = fs::read_dir(dir.path().join("output"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(left, ["alice.json"], "nothing is left aside");
        }
    }

    #[test]
    fn an_empty_lease_file_is_held_until_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("output")).unwrap();
        fs::write(dir.path().join("output/alice.json"), "").unwrap();
        let b = pod(dir.path(), "pod-b");
        let written = read(&dir.path().join("output/alice.json"))
            .unwrap()
            .unwrap()
            .modified_ms;
        assert!(matches!(
            b.claim(&output("alice"), written + 1000).unwrap(),
            Claim::HeldBy {
                renewed_ms: None,
                ..
            }
        ));
        assert_eq!(
            b.claim(&output("alice"), written + 31_000).unwrap(),
            Claim::Mine
        );
    }
}
