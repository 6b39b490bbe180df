//! One pod's heartbeat file, `<vol>/.podstack/pods/<pod>.json`: which build it runs, whom it
//! serves, on which GPU, since when, and when it last beat. Written whole to a hidden temporary
//! file and renamed into place, so a reader sees the old beat or the new one, never half of
//! one. Read as untrusted input: another pod (or anyone with the volume) wrote it, so every
//! field is checked and a bad file is reported, never followed or trusted.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::supervisor::launch::PodId;
use crate::user::UserName;

/// The heartbeat format this podstack writes and reads.
pub const FORMAT: u32 = 1;
/// A heartbeat larger than this is not a heartbeat.
pub const MAX_BYTES: u64 = 16 * 1024;
const MAX_TEXT: usize = 128;
const MAX_ITEMS: usize = 64;

/// A pod's heartbeat, as written and as read back after checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub format: u32,
    pub pod: String,
    pub stack: String,
    pub version: String,
    /// `sha256:<64 hex>` of the build it runs; `None` when the pod does not know it.
    pub digest: Option<String>,
    /// The users it serves now (one per slot; empty when ComfyUI is stopped).
    pub users: Vec<String>,
    /// GPU names; empty in CPU mode.
    pub gpus: Vec<String>,
    /// When the supervisor started, ms since the Unix epoch.
    pub started_ms: u64,
    /// When this beat was written, ms since the Unix epoch.
    pub beat_ms: u64,
    /// How often the pod beats: a reader calls it silent after three beats missed.
    pub interval_ms: u64,
}

/// Why a heartbeat file was not taken as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("not a regular file (a link or a folder is never followed)")]
    NotAFile,
    #[error("larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("cannot be read: {0}")]
    Read(String),
    #[error("not a heartbeat: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

impl Heartbeat {
    /// Checks every field of a heartbeat read from `file_pod`'s file.
    pub fn parse(bytes: &[u8], file_pod: &str) -> Result<Self, HeartbeatError> {
        let beat: Self = serde_json::from_slice(bytes)
            .map_err(|err| HeartbeatError::Malformed(crate::problem::one_line(&err.to_string())))?;
        let invalid = |what: String| Err(HeartbeatError::Invalid(what));
        if beat.format != FORMAT {
            return invalid(format!(
                "format {} (this podstack reads {FORMAT})",
                beat.format
            ));
        }
        if PodId::parse(&beat.pod).is_err() || beat.pod != file_pod {
            return invalid("its pod id is not the one its file is named for".to_owned());
        }
        if let Some(digest) = &beat.digest {
            if crate::verify::freshness::find_digest(digest).as_deref() != Some(digest.as_str()) {
                return invalid("its digest is not `sha256:<64 hex>`".to_owned());
            }
        }
        if beat.users.len() > MAX_ITEMS
            || beat.users.iter().any(|user| UserName::parse(user).is_err())
        {
            return invalid(format!("a user name breaks the rule: {}", UserName::RULE));
        }
        let texts = [&beat.stack, &beat.version].into_iter().chain(&beat.gpus);
        if beat.gpus.len() > MAX_ITEMS
            || texts
                .into_iter()
                .any(|text| text.chars().count() > MAX_TEXT || text.chars().any(char::is_control))
        {
            return invalid(format!(
                "a text field is longer than {MAX_TEXT} characters or holds control characters"
            ));
        }
        if beat.interval_ms == 0 || beat.started_ms > beat.beat_ms {
            return invalid("its times do not add up".to_owned());
        }
        Ok(beat)
    }

    /// Reads `path`, a heartbeat of the pod its name says; never follows a link.
    pub fn read(path: &Path, file_pod: &str) -> Result<Self, HeartbeatError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|err| match err.raw_os_error() {
                Some(libc::ELOOP) => HeartbeatError::NotAFile,
                _ => HeartbeatError::Read(err.to_string()),
            })?;
        let meta = file
            .metadata()
            .map_err(|err| HeartbeatError::Read(err.to_string()))?;
        if !meta.is_file() {
            return Err(HeartbeatError::NotAFile);
        }
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| HeartbeatError::Read(err.to_string()))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(HeartbeatError::TooLarge);
        }
        Self::parse(&bytes, file_pod)
    }

    /// Writes this beat into `dir` atomically: a hidden temporary file, flushed, renamed over
    /// `<pod>.json`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let temporary = dir.join(format!(".{}.json.tmp", self.pod));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_data()?;
        std::fs::rename(&temporary, path_for(dir, &self.pod))
    }
}

/// `<dir>/<pod>.json`.
pub fn path_for(dir: &Path, pod: &str) -> PathBuf {
    dir.join(format!("{pod}.json"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn beat(pod: &str) -> Heartbeat {
        Heartbeat {
            format: FORMAT,
            pod: pod.into(),
            stack: "smoke".into(),
            version: "0.1.0".into(),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            users: vec!["alice".into()],
            gpus: vec!["NVIDIA GeForce RTX 4090".into()],
            started_ms: 1_000,
            beat_ms: 2_000,
            interval_ms: 5_000,
        }
    }

    #[test]
    fn a_heartbeat_round_trips_and_hostile_ones_are_refused() {
        let good = serde_json::to_vec(&beat("pod-a")).unwrap();
        assert_eq!(Heartbeat::parse(&good, "pod-a").unwrap(), beat("pod-a"));
        assert!(matches!(
            Heartbeat::parse(&good, "pod-b"),
            Err(HeartbeatError::Invalid(_))
        ));
        let mut hostile = beat("pod-a");
        hostile.users = vec!["../../etc".into()];
        let bytes = serde_json::to_vec(&hostile).unwrap();
        assert!(Heartbeat::parse(&bytes, "pod-a").is_err());
        let mut hostile = beat("pod-a");
        hostile.digest = Some("sha256:zz".into());
        assert!(Heartbeat::parse(&serde_json::to_vec(&hostile).unwrap(), "pod-a").is_err());
        let mut hostile = beat("pod-a");
        hostile.gpus = vec!["\u{1b}[31mred".into()];
        assert!(Heartbeat::parse(&serde_json::to_vec(&hostile).unwrap(), "pod-a").is_err());
        assert!(matches!(
            Heartbeat::parse(b"{\"format\": 1, \"pod\"", "pod-a"),
            Err(HeartbeatError::Malformed(_))
        ));
    }

    /// A writer rewrites one heartbeat as fast as it can while readers read it: every read
    /// is a whole beat, old or new, never half of one.
    #[test]
    fn readers_never_see_a_torn_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().to_owned();
        beat("pod-a").write(&pods).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (pods, stop) = (pods.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut next = beat("pod-a");
                    n += 1;
                    next.beat_ms = 2_000 + n;
                    // Beats of different lengths, so a torn read would not parse.
                    next.gpus = vec!["GPU".repeat(usize::try_from(n % 40).unwrap())];
                    next.write(&pods).unwrap();
                }
                n
            })
        };
        let path = path_for(&pods, "pod-a");
        for _ in 0..2_000 {
            let read = Heartbeat::read(&path, "pod-a");
            assert!(read.is_ok(), "{read:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().unwrap() > 0);
    }

    #[test]
    fn links_folders_and_huge_files_are_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("evil.json");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert_eq!(
            Heartbeat::read(&link, "evil"),
            Err(HeartbeatError::NotAFile)
        );
        let folder = dir.path().join("folder.json");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(
            Heartbeat::read(&folder, "folder"),
            Err(HeartbeatError::NotAFile)
        );
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; 20_000]).unwrap();
        assert_eq!(
            Heartbeat::read(&huge, "huge"),
            Err(HeartbeatError::TooLarge)
        );
    }
}
