//! The fleet on one volume (L1, L8): every pod's heartbeat under `<vol>/.podstack/pods/`,
//! which pods run a build other than the one they should (the expected digest when one is
//! known, else the newest build seen), and which stopped beating. Served by `GET /api/fleet`
//! and the panel, and printed by `podstack fleet --volume DIR` from any machine with the volume.

pub mod heartbeat;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use heartbeat::Heartbeat;

/// A pod is silent once it missed this many beats.
const MISSED_BEATS: u64 = 3;

/// `<vol>/.podstack/pods`.
pub fn pods_dir(volume: &Path) -> PathBuf {
    volume.join(".podstack").join("pods")
}

/// The digest every pod should run, and who says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub digest: String,
    pub source: String,
}

/// Everything on the volume, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub volume: String,
    /// What "stale" is measured against; `None` when no pod has a digest.
    pub reference: Option<Reference>,
    pub pods: Vec<PodView>,
    /// Files in the pods folder that are not heartbeats, and why.
    pub problems: Vec<FileProblem>,
}

/// One pod as the fleet sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    #[serde(flatten)]
    pub beat: Heartbeat,
    /// `live`, or `silent` once it missed three beats (stopped without a clean stop).
    pub state: PodState,
    /// ms since its last beat (0 when the beat is from the reader's future).
    pub since_beat_ms: u64,
    /// It runs a digest other than the reference.
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodState {
    Live,
    Silent,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    pub file: String,
    pub problem: String,
}

impl Fleet {
    /// Reads the pods folder of `volume` at `now_ms`; `expected` overrides the newest build seen.
    pub fn read(volume: &Path, now_ms: u64, expected: Option<Reference>) -> Self {
        let dir = pods_dir(volume);
        let mut beats = Vec::new();
        let mut problems = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).collect())
            .unwrap_or_default();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let shown = name.to_string_lossy().into_owned();
            // A beat being written: its rename is atomic, its temporary file is not ours to read.
            if shown.starts_with('.') {
                continue;
            }
            let Some(pod) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
                problems.push(FileProblem {
                    file: shown,
                    problem: "not a heartbeat file (`<pod>.json`)".to_owned(),
                });
                continue;
            };
            match Heartbeat::read(&entry.path(), pod) {
                Ok(beat) => beats.push(beat),
                Err(err) => problems.push(FileProblem {
                    file: shown,
                    problem: err.to_string(),
                }),
            }
        }
        let mut pods: Vec<PodView> = beats
            .into_iter()
            .map(|beat| {
                let since_beat_ms = now_ms.saturating_sub(beat.beat_ms);
                let state = if since_beat_ms > beat.interval_ms.saturating_mul(MISSED_BEATS) {
                    PodState::Silent
                } else {
                    PodState::Live
                };
                PodView {
                    beat,
                    state,
                    since_beat_ms,
                    stale: false,
                }
            })
            .collect();
        let reference = expected.or_else(|| newest(&pods));
        if let Some(reference) = &reference {
            for pod in &mut pods {
                pod.stale = pod.beat.digest.as_deref() != Some(reference.digest.as_str());
            }
        }
        Self {
            volume: volume.display().to_string(),
            reference,
            pods,
            problems,
        }
    }

    /// Whether a live pod runs another build than the reference.
    pub fn has_stale_live_pod(&self) -> bool {
        self.pods
            .iter()
            .any(|pod| pod.stale && pod.state == PodState::Live)
    }
}

/// The newest build seen: the live pod with the highest stack version, the latest started
/// among equals.
fn newest(pods: &[PodView]) -> Option<Reference> {
    pods.iter()
        .filter(|pod| pod.state == PodState::Live)
        .filter_map(|pod| {
            let digest = pod.beat.digest.clone()?;
            let version = semver::Version::parse(&pod.beat.version).ok();
            Some(((version, pod.beat.started_ms), digest, pod))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, digest, pod)| Reference {
            digest,
            source: format!(
                "the newest build seen (pod {}, {} {})",
                pod.beat.pod, pod.beat.stack, pod.beat.version
            ),
        })
}

impl fmt::Display for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self
            .pods
            .iter()
            .filter(|pod| pod.state == PodState::Live)
            .count();
        writeln!(
            f,
            "{}: {} pod(s), {live} live",
            self.volume,
            self.pods.len()
        )?;
        match &self.reference {
            Some(reference) => writeln!(
                f,
                "expected build: {} ({})",
                short(&reference.digest),
                reference.source
            )?,
            None => writeln!(f, "expected build: unknown (no pod has a digest)")?,
        }
        for pod in &self.pods {
            let beat = &pod.beat;
            let state = match pod.state {
                PodState::Live => "live".to_owned(),
                PodState::Silent => format!("SILENT for {} s", pod.since_beat_ms / 1000),
            };
            let build = match (&beat.digest, pod.stale) {
                (Some(digest), true) => format!("STALE {}", short(digest)),
                (Some(digest), false) => format!("current {}", short(digest)),
                (None, _) => "digest unknown".to_owned(),
            };
            let users = if beat.users.is_empty() {
                "no user".to_owned()
            } else {
                beat.users.join(", ")
            };
            let gpus = if beat.gpus.is_empty() {
                "CPU".to_owned()
            } else {
                beat.gpus.join(", ")
            };
            writeln!(
                f,
                "  {}  {state}  {} {}  {build}  {users}  {gpus}",
                beat.pod, beat.stack, beat.version
            )?;
        }
        for problem in &self.problems {
            writeln!(f, "  ignored {}: {}", problem.file, problem.problem)?;
        }
        Ok(())
    }
}

/// `sha256:` and the first 12 hex digits, as image tags show them.
fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// What `GET /api/fleet` reads: the volume, and what this pod was told every pod should run.
#[derive(Debug, Clone)]
pub struct FleetSource {
    pub volume: PathBuf,
    pub expected: Option<Reference>,
}

impl FleetSource {
    /// The expected build from this pod's own verification: the digest it checked against
    /// (`PODSTACK_EXPECTED_DIGEST` or the latest-digest URL), when it had one.
    pub fn new(volume: PathBuf, freshness: &crate::verify::freshness::Freshness) -> Self {
        use crate::verify::freshness::Freshness;
        let expected = match freshness {
            Freshness::Stale {
                expected, source, ..
            } => Some(Reference {
                digest: expected.clone(),
                source: source.clone(),
            }),
            Freshness::Current { running } => Some(Reference {
                digest: running.clone(),
                source: "the digest this pod verified against (PODSTACK_EXPECTED_DIGEST or the latest-digest URL)".to_owned(),
            }),
            Freshness::Unknown { .. } => None,
        };
        Self { volume, expected }
    }

    pub fn read(&self) -> Fleet {
        Fleet::read(
            &self.volume,
            crate::service::clock::now_ms(),
            self.expected.clone(),
        )
    }
}

/// What this pod beats with; the users change as the panel starts and stops ComfyUI.
#[derive(Debug)]
pub struct Beating {
    pub dir: PathBuf,
    pub template: Heartbeat,
    pub interval: Duration,
}

impl Beating {
    /// Writes a beat every interval, and at once when the users that `users` reads from the
    /// pod's status change (a start or a stop is on the volume then, not a beat later), until
    /// `stop` fires (or its sender is dropped); then removes the heartbeat: a clean stop leaves
    /// the fleet. The beat being written finishes first, so no write can put the file back
    /// after the removal.
    pub async fn run<S>(
        self,
        mut status: tokio::sync::watch::Receiver<S>,
        users: impl Fn(&S) -> Vec<String>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut ticker = tokio::time::interval(self.interval);
        let mut on_the_volume: Option<Vec<String>> = None;
        let mut warned = false;
        loop {
            let due = tokio::select! {
                _ = ticker.tick() => true,
                Ok(()) = status.changed() => false,
                _ = &mut stop => break,
            };
            let now = users(&status.borrow_and_update());
            if !due && on_the_volume.as_ref() == Some(&now) {
                continue;
            }
            let mut beat = self.template.clone();
            beat.users.clone_from(&now);
            beat.beat_ms = crate::service::clock::now_ms();
            let dir = self.dir.clone();
            let written = tokio::task::spawn_blocking(move || beat.write(&dir)).await;
            match written {
                Ok(Ok(())) => {
                    warned = false;
                    on_the_volume = Some(now);
                }
                Ok(Err(err)) if !warned => {
                    tracing::warn!(
                        "cannot write this pod's heartbeat in {}: {err}",
                        self.dir.display()
                    );
                    warned = true;
                }
                _ => {}
            }
        }
        self.remove();
    }

    /// Removes this pod's heartbeat: a clean stop.
    fn remove(&self) {
        let path = heartbeat::path_for(&self.dir, &self.template.pod);
        if let Err(err) = std::fs::remove_file(&path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {err}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a beat due only once an hour, a user who starts is on the volume at once, and a
    /// clean stop removes the heartbeat.
    #[tokio::test]
    async fn a_change_of_users_is_written_before_the_next_beat_is_due() {
        let volume = tempfile::tempdir().unwrap();
        let dir = pods_dir(volume.path());
        let mut template = heartbeat::tests::beat("pod-a");
        template.users.clear();
        let beating = Beating {
            dir: dir.clone(),
            template,
            interval: Duration::from_secs(3600),
        };
        let (users, status) = tokio::sync::watch::channel(Vec::<String>::new());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(beating.run(status, Vec::clone, stopped));
        let path = heartbeat::path_for(&dir, "pod-a");
        let users_on_the_volume = || {
            Heartbeat::read(&path, "pod-a")
                .map(|beat| beat.users)
                .unwrap_or_default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !path.exists() {
            assert!(tokio::time::Instant::now() < deadline, "no first beat");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(users_on_the_volume().is_empty());
        users.send_modify(|users| users.push("alice".into()));
        while users_on_the_volume() != ["alice"] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "alice is not on the volume while the next beat is an hour away"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(()).unwrap();
        task.await.unwrap();
        assert!(!path.exists(), "a clean stop leaves the fleet");
    }
}
