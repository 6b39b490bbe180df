//! One served user folder as the sync service keeps it: who holds its lease, when its next
//! pass is due, the pass in flight, the changes pending, and the figures and errors the report
//! shows; and what a finished pass leads to (a follow-up for changes it was too early for, a
//! retry with backoff after a failure, a halt after a refusal, a re-run after rclone died).
//! Pure bookkeeping: the service does the I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::budget::Deletions;
use super::guard::REFUSAL_HINT;
use super::lease::Claim;
use super::pass::{PassFigures, PassOutcome};
use super::rc::Stats;
use super::report::{DedupeNote, FolderError, FolderReport, FolderState, Totals};
use super::schedule::{Pending, Timing};
use super::trouble;
use crate::manifest::SyncMode;
use crate::service::task::AbortOnDrop;

/// A pass in flight.
#[derive(Debug)]
pub struct Running {
    pub run: u64,
    pub started: Instant,
    pub final_pass: bool,
    pub stats: Stats,
    /// When its upload last moved a byte (or the pass started): a pass still for long gets
    /// the remote probed.
    pub progressed: Instant,
    /// Tells the pass to stop its rclone job (the lease went to another pod).
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Aborted when the pass is dropped (rclone died, shutdown ran out of time).
    pub(crate) _task: AbortOnDrop,
}

/// What a finished pass said, for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassEnd {
    /// How it ended, in a few words (the final sync's summary).
    pub said: String,
    /// A line for the sync log, when files moved.
    pub moved: Option<String>,
    /// A warning for the supervisor's log.
    pub warning: Option<String>,
}

/// One user folder's sync.
#[derive(Debug)]
pub struct FolderSync {
    pub mode: SyncMode,
    pub local: PathBuf,
    /// `remote:root/<folder>/<user>`.
    pub remote: String,
    pub claim: Claim,
    pub due: Option<Instant>,
    pub running: Option<Running>,
    pub pending: Pending,
    /// Failed passes in a row.
    pub failures: u32,
    pub refused: bool,
    pub last_success_ms: Option<u64>,
    pub last_pass: Option<PassFigures>,
    pub total: Totals,
    pub last_error: Option<FolderError>,
    /// rclone reported duplicates during the current pass.
    pub duplicates: bool,
    pub deduping: bool,
    pub last_dedupe: Option<Instant>,
    pub dedupe: Option<DedupeNote>,
    /// How its final pass ended, once shutdown began.
    pub final_outcome: Option<String>,
    /// The deletions of the current window, as the ledger on the volume keeps them.
    pub deletions: Deletions,
    /// Deletions held by the last pass: the budget was spent.
    pub deletions_held: u64,
    /// Deletions a person released beyond the budget, not yet made.
    pub released: u64,
}

impl FolderSync {
    /// A folder this pod starts serving at `now`. When it holds the lease, a pass is due at
    /// once, and the folder as a whole counts as changed: files younger than `min_age` at that
    /// first pass get a pass of their own, as if their events had been seen.
    pub fn new(mode: SyncMode, local: PathBuf, remote: String, claim: Claim, now: Instant) -> Self {
        let mut folder = Self {
            mode,
            local,
            remote,
            claim: Claim::HeldBy {
                pod: String::new(),
                renewed_ms: None,
            },
            due: None,
            running: None,
            pending: Pending::default(),
            failures: 0,
            refused: false,
            last_success_ms: None,
            last_pass: None,
            total: Totals::default(),
            last_error: None,
            duplicates: false,
            deduping: false,
            last_dedupe: None,
            dedupe: None,
            final_outcome: None,
            deletions: Deletions::default(),
            deletions_held: 0,
            released: 0,
        };
        folder.set_claim(claim, now);
        folder
    }

    pub fn held(&self) -> bool {
        self.claim == Claim::Mine
    }

    /// Takes a new claim: a lease gained means a pass of everything now, a lease lost means
    /// no more passes.
    pub fn set_claim(&mut self, claim: Claim, now: Instant) {
        match (self.held(), claim == Claim::Mine) {
            (false, true) => {
                self.pending.notice(self.local.clone(), now);
                self.due = Some(now);
            }
            (true, false) => self.due = None,
            _ => {}
        }
        self.claim = claim;
    }

    /// How many files the next pass may delete: `max_delete` less the deletions within
    /// `window` before `now_ms`, plus what a person released.
    pub fn delete_budget(&mut self, now_ms: u64, window: Duration, max_delete: u32) -> u64 {
        self.deletions.left(now_ms, window, max_delete) + self.released
    }

    /// A person lets the held deletions go ahead; how many.
    pub fn release_deletions(&mut self, now: Instant) -> u64 {
        let held = self.deletions_held;
        self.released += held;
        self.expedite(now);
        held
    }

    /// A pass no later than `at` (unless one is running: its end decides).
    pub fn expedite(&mut self, at: Instant) {
        if self.held() && self.running.is_none() {
            self.due = Some(self.due.map_or(at, |due| due.min(at)));
        }
    }

    /// Shows `error` (secrets removed), seen at `now_ms`, as the folder's last error, with its
    /// hint; whether it is new (not the error shown already).
    pub fn show_error(&mut self, error: &str, now_ms: u64) -> bool {
        let new = self
            .last_error
            .as_ref()
            .is_none_or(|shown| shown.error != error);
        self.last_error = Some(FolderError {
            at_ms: now_ms,
            error: error.to_owned(),
            hint: trouble::hint(error).to_owned(),
        });
        new
    }

    /// A change at `path` (anywhere in the folder) noticed at `now`.
    pub fn notice(&mut self, path: &Path, now: Instant, timing: Timing) {
        if !self.held() {
            return;
        }
        self.pending.notice(path.to_owned(), now);
        self.expedite(timing.after_change(now));
    }

    /// Books the end of the pass that started at `started`; `error_shown` is a failure's
    /// text as it may be shown (secrets removed). `finishing`: the final sync is under way.
    pub fn pass_done(
        &mut self,
        (started, final_pass): (Instant, bool),
        outcome: &PassOutcome,
        error_shown: &str,
        (now, now_ms): (Instant, u64),
        timing: Timing,
        finishing: bool,
    ) -> PassEnd {
        let mut end = PassEnd {
            said: String::new(),
            moved: None,
            warning: None,
        };
        match outcome {
            PassOutcome::Synced(_) | PassOutcome::NothingToSync => {
                self.failures = 0;
                self.refused = false;
                self.last_success_ms = Some(now_ms);
                self.total.passes += 1;
                self.pending
                    .covered(timing.covered_until(started, final_pass));
                end.said = "nothing to sync".to_owned();
                if let PassOutcome::Synced(figures) = outcome {
                    self.last_pass = Some(*figures);
                    self.total.files += figures.files;
                    self.total.bytes += figures.bytes;
                    self.total.deleted += figures.deleted;
                    self.deletions.book(now_ms, figures.deleted);
                    self.released = self.released.saturating_sub(figures.deleted);
                    self.deletions_held = figures.held;
                    if figures.held > 0 {
                        end.warning = Some(format!(
                            "{} deletion(s) held: sync.max_delete files were deleted within sync.delete_window; release them with POST /api/sync/release",
                            figures.held
                        ));
                    }
                    end.said = format!(
                        "synced {} file(s), {}",
                        figures.files,
                        human_bytes(figures.bytes)
                    );
                    if figures.files > 0 || figures.deleted > 0 {
                        end.moved = Some(format!(
                            "{} file(s), {} uploaded, {} moved to the trash or deleted, in {:.1} s",
                            figures.files,
                            human_bytes(figures.bytes),
                            figures.deleted,
                            figures.seconds
                        ));
                    }
                }
            }
            PassOutcome::Refused(why) => {
                self.refused = true;
                self.total.failures += 1;
                self.last_error = Some(FolderError {
                    at_ms: now_ms,
                    error: why.clone(),
                    hint: REFUSAL_HINT.to_owned(),
                });
                end.said = format!("refused: {why}");
                end.warning = Some(why.clone());
            }
            PassOutcome::Failed(_) => {
                self.failures += 1;
                self.total.failures += 1;
                self.show_error(error_shown, now_ms);
                self.due = Some(now + Timing::retry_after(self.failures));
                end.said = format!("failed: {error_shown}");
                end.warning = Some(format!("failed: {error_shown}"));
            }
            PassOutcome::Lost(_) => {
                self.due = Some(now);
                end.said = "interrupted: rclone went away".to_owned();
            }
            PassOutcome::Stopped(why) => {
                end.said.clone_from(why);
                end.warning = Some(why.clone());
            }
        }
        // A final pass that failed or was cut short is tried again until the deadline.
        let again = matches!(outcome, PassOutcome::Lost(_) | PassOutcome::Failed(_));
        if final_pass && !again {
            self.final_outcome = Some(end.said.clone());
        } else if !again && self.due.is_none() && !self.refused {
            // Changes younger than the pass's cut-off get a pass of their own.
            self.due = self
                .pending
                .newest()
                .map(|at| timing.after_change(at).max(now));
        }
        if finishing && self.final_outcome.is_none() && self.due.is_none() {
            self.due = Some(now);
        }
        end
    }

    /// Where the folder stands.
    pub fn state(&self) -> FolderState {
        if !self.held() {
            FolderState::HeldElsewhere
        } else if self.running.is_some() {
            FolderState::Syncing
        } else if self.refused {
            FolderState::Refused
        } else if self.failures > 0 {
            FolderState::Failing
        } else if self.pending.count() > 0 || self.due.is_some() {
            FolderState::Pending
        } else {
            FolderState::Idle
        }
    }

    /// The report of this folder, for `user`'s `folder` kind.
    pub fn report(
        &self,
        user: &str,
        kind: crate::manifest::SyncFolderKind,
        now: Instant,
    ) -> FolderReport {
        let stats = self.running.as_ref().map(|running| &running.stats);
        let remaining = stats.map_or(0, |s| s.total_transfers.saturating_sub(s.transfers));
        FolderReport {
            user: user.to_owned(),
            folder: kind,
            mode: self.mode,
            local: self.local.display().to_string(),
            remote: self.remote.clone(),
            state: self.state(),
            held_by: match &self.claim {
                Claim::HeldBy { pod, .. } => Some(pod.clone()),
                Claim::Mine => None,
            },
            last_success_ms: self.last_success_ms,
            last_pass: self.last_pass,
            total: self.total,
            pending: u64::try_from(self.pending.count())
                .unwrap_or(u64::MAX)
                .max(remaining),
            lag_s: self
                .pending
                .oldest()
                .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64()),
            speed_bps: stats.map_or(0.0, |s| s.speed),
            last_error: self.last_error.clone(),
            dedupe: self.dedupe.clone(),
            deletions_held: self.deletions_held,
            deleted_in_window: self.deletions.count(),
        }
    }
}

/// `12.3 MB`.
pub fn human_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a figure for people
    let value = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", value / 1e6),
        _ => format!("{:.2} GB", value / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const TIMING: Timing = Timing {
        min_age: Duration::from_secs(5),
    };

    fn folder(now: Instant) -> FolderSync {
        FolderSync::new(
            SyncMode::Mirror,
            PathBuf::from("/v/output/alice"),
            "r:x/output/alice".to_owned(),
            Claim::Mine,
            now,
        )
    }

    fn synced(files: u64) -> PassOutcome {
        PassOutcome::Synced(PassFigures {
            files,
            bytes: files * 1_000_000,
            deleted: 0,
            held: 0,
            seconds: 1.0,
        })
    }

    #[test]
    fn deletions_are_a_budget_over_the_window_and_a_release_adds_what_was_held() {
        let start = Instant::now();
        let mut folder = folder(start);
        let hour = Duration::from_secs(3600);
        assert_eq!(folder.delete_budget(0, hour, 100), 100);
        let deleting = PassOutcome::Synced(PassFigures {
            deleted: 100,
            held: 50,
            ..PassFigures::default()
        });
        let end = folder.pass_done((start, false), &deleting, "", (start, 1000), TIMING, false);
        assert!(end
            .warning
            .is_some_and(|w| w.starts_with("50 deletion(s) held")));
        assert_eq!(folder.total.deleted, 100);
        // The next pass within the hour may delete nothing more.
        assert_eq!(folder.delete_budget(2000, hour, 100), 0);
        assert_eq!(folder.release_deletions(start), 50);
        assert_eq!(folder.delete_budget(3000, hour, 100), 50);
        let released = PassOutcome::Synced(PassFigures {
            deleted: 50,
            ..PassFigures::default()
        });
        folder.pass_done((start, false), &released, "", (start, 4000), TIMING, false);
        assert_eq!((folder.deletions_held, folder.released), (0, 0));
        assert_eq!(folder.delete_budget(5000, hour, 100), 0);
        // An hour after the first deletions, their part of the budget is back.
        assert_eq!(folder.delete_budget(1000 + 3_600_000, hour, 100), 100 - 50);
        assert_eq!(folder.delete_budget(4000 + 3_600_000, hour, 100), 100);
    }

    #[test]
    fn a_held_folder_passes_at_once_and_again_when_its_young_files_are_old_enough() {
        let start = Instant::now();
        let mut folder = folder(start);
        assert_eq!(folder.due, Some(start));
        assert_eq!(folder.state(), FolderState::Pending);
        folder.due = None; // the pass starts
        let end = folder.pass_done(
            (start, false),
            &synced(2),
            "",
            (start + SECOND, 1000),
            TIMING,
            false,
        );
        assert_eq!(end.said, "synced 2 file(s), 2.0 MB");
        assert!(end.moved.is_some());
        // The folder counted as changed at `start`: the pass was too early for young files.
        assert_eq!(folder.due, Some(TIMING.after_change(start)));
        let later = start + 6 * SECOND;
        folder.due = None;
        folder.pass_done((later, false), &synced(0), "", (later, 7000), TIMING, false);
        assert_eq!(folder.due, None);
        assert_eq!(folder.state(), FolderState::Idle);
        assert_eq!(folder.total.files, 2);
    }

    #[test]
    fn changes_share_the_earliest_due_pass() {
        let start = Instant::now();
        let mut folder = folder(start);
        folder.due = None;
        folder.notice(Path::new("/v/output/alice/a.png"), start, TIMING);
        folder.notice(Path::new("/v/output/alice/b.png"), start + SECOND, TIMING);
        assert_eq!(folder.due, Some(TIMING.after_change(start)));
        assert_eq!(folder.pending.count(), 3);
    }

    #[test]
    fn a_failure_is_retried_with_backoff_and_shows_its_hint() {
        let start = Instant::now();
        let mut folder = folder(start);
        let failed = PassOutcome::Failed("dial tcp: connection refused".to_owned());
        folder.pass_done(
            (start, false),
            &failed,
            "dial tcp: connection refused",
            (start, 5),
            TIMING,
            false,
        );
        folder.pass_done(
            (start, false),
            &failed,
            "dial tcp: connection refused",
            (start, 6),
            TIMING,
            false,
        );
        assert_eq!(folder.due, Some(start + 2 * SECOND));
        assert_eq!(folder.state(), FolderState::Failing);
        let error = folder.last_error.clone().unwrap();
        assert!(error.hint.contains("cannot be reached"), "{error:?}");
    }

    #[test]
    fn a_refusal_halts_the_folder_until_the_next_change() {
        let start = Instant::now();
        let mut folder = folder(start);
        folder.due = None;
        let end = folder.pass_done(
            (start, false),
            &PassOutcome::Refused("empty".to_owned()),
            "",
            (start, 5),
            TIMING,
            false,
        );
        assert_eq!(end.warning.as_deref(), Some("empty"));
        assert_eq!(folder.due, None);
        assert_eq!(folder.state(), FolderState::Refused);
        folder.notice(Path::new("/v/output/alice/new.png"), start, TIMING);
        assert!(folder.due.is_some());
    }

    #[test]
    fn a_pass_lost_with_rclone_runs_again_and_a_final_pass_is_retried_until_it_ends() {
        let start = Instant::now();
        let mut folder = folder(start);
        folder.pass_done(
            (start, true),
            &PassOutcome::Lost("gone".to_owned()),
            "",
            (start, 5),
            TIMING,
            true,
        );
        assert_eq!(folder.due, Some(start));
        assert_eq!(folder.final_outcome, None);
        folder.pass_done((start, true), &synced(1), "", (start, 6), TIMING, true);
        assert_eq!(
            folder.final_outcome.as_deref(),
            Some("synced 1 file(s), 1.0 MB")
        );
    }

    #[test]
    fn a_lease_lost_stops_passes_and_one_gained_passes_everything() {
        let start = Instant::now();
        let mut folder = folder(start);
        let other = Claim::HeldBy {
            pod: "pod-b".to_owned(),
            renewed_ms: Some(1),
        };
        folder.set_claim(other, start);
        assert_eq!(folder.due, None);
        assert_eq!(folder.state(), FolderState::HeldElsewhere);
        folder.notice(Path::new("/v/output/alice/x.png"), start, TIMING);
        assert_eq!(folder.due, None);
        folder.set_claim(Claim::Mine, start + SECOND);
        assert_eq!(folder.due, Some(start + SECOND));
    }

    #[test]
    fn bytes_read_like_a_person_would_say_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345), "12.3 kB");
        assert_eq!(human_bytes(2_000_000), "2.0 MB");
        assert_eq!(human_bytes(3_500_000_000), "3.50 GB");
    }
}
