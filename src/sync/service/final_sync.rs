//! The final sync at shutdown: every folder this pod holds gets one more pass without
//! `min_age`, all at once, retried until the deadline; the result is logged and reported, the
//! leases are released and rclone is stopped.

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Syncer;
use crate::service::state::{Event, ServiceState};
use crate::sync::report::{FinalFolder, FinalSync};

/// The shutdown in progress.
#[derive(Debug)]
pub(super) struct Finishing {
    pub(super) reply: Option<oneshot::Sender<FinalSync>>,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// The final passes are over; rclone is stopping.
    pub(super) stopping: bool,
    /// The remote was down: no final pass starts before a probe reached it.
    pub(super) probe_first: bool,
}

impl Syncer {
    pub(super) fn begin_finish(&mut self, reply: oneshot::Sender<FinalSync>) {
        if self.finishing.is_some() {
            return;
        }
        let now = Instant::now();
        let mut count = 0;
        for state in self.folders.values_mut() {
            if state.held() {
                count += 1;
                if state.running.is_none() {
                    state.due = Some(now);
                }
            } else {
                state.final_outcome = Some("synced by another pod".to_owned());
            }
        }
        tracing::info!(
            "sync: final sync of {count} folder(s), within {}",
            self.sync.final_sync
        );
        // A failed rclone gets one more start for the final sync.
        self.cool_down = None;
        if matches!(self.machine.state(), ServiceState::Failed { .. }) {
            self.drive(Event::StartRequested);
        }
        self.finishing = Some(Finishing {
            reply: Some(reply),
            started: now,
            deadline: now + self.sync.final_sync.0,
            stopping: false,
            probe_first: false,
        });
        if let Some(error) = &self.outage {
            tracing::warn!(
                "sync: the remote did not answer before the stop ({error}): trying it once before the final sync"
            );
            self.probe_before_final_passes();
        }
        if !matches!(
            self.machine.state(),
            ServiceState::Ready { .. }
                | ServiceState::Starting { .. }
                | ServiceState::BackingOff { .. }
        ) {
            let why = match self.machine.state() {
                ServiceState::Failed { reason, .. } => format!("not run: {reason}"),
                _ => "not run: rclone is not running".to_owned(),
            };
            for state in self.folders.values_mut() {
                state.final_outcome.get_or_insert_with(|| why.clone());
            }
        }
    }

    /// Holds the final passes until a probe says whether the remote answers.
    pub(super) fn probe_before_final_passes(&mut self) {
        if let Some(finishing) = &mut self.finishing {
            finishing.probe_first = true;
            self.start_probe();
        }
    }

    /// The remote still does not answer: the folders without a final outcome are left for the
    /// next start, and the final sync ends now instead of at its deadline.
    pub(super) fn skip_final_sync(&mut self, error: &str) {
        tracing::warn!(
            "sync: the remote does not answer ({error}): the final sync is skipped; the changes stay on the volume for the next start"
        );
        let why = format!("not run: the remote cannot be reached ({error})");
        for state in self.folders.values_mut() {
            state.final_outcome.get_or_insert_with(|| why.clone());
        }
        self.conclude_final_sync();
    }

    /// Moves the shutdown along; true once it is over.
    pub(super) fn advance_finish(&mut self) -> bool {
        let Some(finishing) = &self.finishing else {
            return false;
        };
        if !finishing.stopping {
            if self
                .folders
                .values()
                .all(|state| state.final_outcome.is_some())
            {
                self.conclude_final_sync();
            }
            return false;
        }
        if self.rcd.is_some() {
            return false;
        }
        if let Some(reply) = self.finishing.as_mut().and_then(|f| f.reply.take()) {
            if let Some(final_sync) = &self.final_sync {
                let _ = reply.send(final_sync.clone());
            }
        }
        true
    }

    /// The final passes are over (or out of time): logs the result, releases the leases and
    /// stops rclone.
    pub(super) fn conclude_final_sync(&mut self) {
        let started = match self.finishing.as_mut() {
            Some(finishing) if !finishing.stopping => {
                finishing.stopping = true;
                finishing.started
            }
            _ => return,
        };
        let seconds = started.elapsed().as_secs_f64();
        let deadline = self.sync.final_sync;
        let mut complete = true;
        let folders: Vec<FinalFolder> = self
            .folders
            .iter_mut()
            .map(|(folder, state)| {
                let cut_short = state.running.take().is_some();
                let outcome =
                    state
                        .final_outcome
                        .clone()
                        .unwrap_or_else(|| match &state.last_error {
                            Some(error) if state.failures > 0 && !cut_short => {
                                format!("failed: {}", error.error)
                            }
                            _ => format!("did not finish within {deadline}"),
                        });
                complete &= state.final_outcome.is_some()
                    && !outcome.starts_with("refused")
                    && !outcome.starts_with("not run");
                FinalFolder {
                    folder: folder.to_string(),
                    outcome,
                }
            })
            .collect();
        let summary = if folders.is_empty() {
            "no folder to sync".to_owned()
        } else {
            folders
                .iter()
                .map(|f| format!("{}: {}", f.folder, f.outcome))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if complete {
            tracing::info!("sync: final sync done in {seconds:.1} s: {summary}");
        } else {
            tracing::warn!("sync: final sync incomplete after {seconds:.1} s: {summary}");
        }
        self.final_sync = Some(FinalSync {
            seconds,
            folders,
            complete,
        });
        for (folder, state) in &self.folders {
            if state.held() {
                if let Err(err) = self.leases.release(folder) {
                    tracing::warn!("sync: cannot release the lease of {folder}: {err}");
                }
            }
        }
        self.drive(Event::StopRequested);
    }
}
