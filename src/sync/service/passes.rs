//! The passes: started when due (while rclone is ready, at most four at once outside the final
//! sync, each after checking the lease once more), booked when they end, and followed by a
//! dedupe when rclone reported duplicates.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{News, Syncer, LOG};
use crate::service::clock::now_ms;
use crate::service::logs::utc_timestamp;
use crate::service::secrets::{self, Secret};
use crate::service::state::ServiceState;
use crate::service::task::AbortOnDrop;
use crate::sync::dedupe;
use crate::sync::folder::Running;
use crate::sync::layout::UserFolder;
use crate::sync::lease::Claim;
use crate::sync::once;
use crate::sync::pass::{self, PassControl, PassOutcome, PassPlan};
use crate::sync::rc::Stats;
use crate::sync::report::{DedupeNote, FolderError};
use crate::sync::trouble;

/// Passes of different folders that run at once (each with the manifest's transfers).
const PARALLEL_PASSES: usize = 4;
/// How long one dedupe may take.
const DEDUPE_DEADLINE: Duration = Duration::from_secs(600);

impl Syncer {
    /// When the next pass may start: none while rclone is not ready, or while every slot for
    /// passes is taken (a pass that ends is news of its own).
    pub(super) fn next_due(&self) -> Option<Instant> {
        if !matches!(self.machine.state(), ServiceState::Ready { .. }) {
            return None;
        }
        let finishing = match &self.finishing {
            Some(finishing) if finishing.stopping || finishing.probe_first => return None,
            Some(_) => true,
            None => false,
        };
        let running = self
            .folders
            .values()
            .filter(|state| state.running.is_some())
            .count();
        if running >= PARALLEL_PASSES && !finishing {
            return None;
        }
        self.folders
            .values()
            .filter(|state| state.running.is_none() && state.held())
            .filter(|state| !(finishing && state.final_outcome.is_some()))
            .filter_map(|state| state.due)
            .min()
    }

    /// Starts the passes that are due, while rclone is ready.
    pub(super) fn start_due_passes(&mut self) {
        let finishing = match &self.finishing {
            Some(finishing) if finishing.stopping || finishing.probe_first => return,
            Some(_) => true,
            None => false,
        };
        if !matches!(self.machine.state(), ServiceState::Ready { .. }) {
            return;
        }
        let now = Instant::now();
        let mut running = self
            .folders
            .values()
            .filter(|state| state.running.is_some())
            .count();
        let due: Vec<UserFolder> = self
            .folders
            .iter()
            .filter(|(_, state)| {
                state.held()
                    && state.running.is_none()
                    && state.due.is_some_and(|due| due <= now)
                    && !(finishing && state.final_outcome.is_some())
            })
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in due {
            // The final sync runs every folder at once: its deadline is what counts.
            if running >= PARALLEL_PASSES && !finishing {
                break;
            }
            match self.leases.renew(&folder, now_ms()) {
                Ok(Claim::Mine) => {}
                Ok(claim) => {
                    if let Some(state) = self.folders.get_mut(&folder) {
                        tracing::warn!(
                            "sync: {folder} is no longer this pod's to sync ({claim:?})"
                        );
                        state.set_claim(claim, now);
                    }
                    continue;
                }
                Err(err) => {
                    tracing::warn!("sync: cannot renew the lease of {folder}: {err}");
                    if let Some(state) = self.folders.get_mut(&folder) {
                        state.due = Some(now + self.sync.heartbeat.0);
                    }
                    continue;
                }
            }
            self.start_pass(&folder, finishing);
            running += 1;
        }
    }

    pub(super) fn start_pass(&mut self, folder: &UserFolder, final_pass: bool) {
        let Some(rcd) = &self.rcd else {
            return;
        };
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        let date = utc_timestamp(now_ms());
        let Some(remote) = &self.remote else {
            return;
        };
        let trash = remote.path(&folder.trash(&self.sync.root, &date[..10]));
        let upload = remote.path(&folder.upload(&self.sync.root));
        let mut plan = PassPlan::new(
            &self.sync,
            state.mode,
            state.local.clone(),
            (state.remote.clone(), upload),
            Some(trash),
            final_pass,
        );
        plan.delete_budget =
            state.delete_budget(now_ms(), self.sync.delete_window.0, self.sync.max_delete);
        plan.token = match self.leases.token(folder) {
            Ok(Some(token)) => token,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!("sync: cannot read the lease of {folder}: {err}");
                state.due = Some(Instant::now() + self.sync.heartbeat.0);
                return;
            }
        };
        let (stop, stop_heard) = tokio::sync::watch::channel(false);
        let control = PassControl {
            leases: self.leases.clone(),
            ledger: self.ledger.clone(),
            folder: folder.clone(),
            stop: stop_heard,
        };
        self.runs += 1;
        let run = self.runs;
        let (client, news, key) = (rcd.client.clone(), self.news_tx.clone(), folder.clone());
        let task = tokio::spawn(async move {
            let progress_news = news.clone();
            let progress_key = key.clone();
            let outcome = pass::run(&client, &plan, control, |stats| {
                let _ = progress_news.send(News::Progress {
                    folder: progress_key.clone(),
                    run,
                    stats,
                });
            })
            .await;
            let _ = news.send(News::PassDone {
                folder: key,
                run,
                outcome,
            });
        });
        state.due = None;
        state.running = Some(Running {
            run,
            started: Instant::now(),
            final_pass,
            stats: Stats::default(),
            progressed: Instant::now(),
            stop,
            _task: AbortOnDrop(task),
        });
    }

    pub(super) fn on_pass_done(&mut self, folder: &UserFolder, run: u64, outcome: PassOutcome) {
        let finishing = self.finishing.is_some();
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        let Some(running) = state.running.take_if(|running| running.run == run) else {
            return;
        };
        let error_shown = match &outcome {
            PassOutcome::Failed(error) => self.redactor.redact(error).into_owned(),
            _ => String::new(),
        };
        let end = state.pass_done(
            (running.started, running.final_pass),
            &outcome,
            &error_shown,
            (Instant::now(), now_ms()),
            self.timing,
            finishing,
        );
        // The ledger holds what the pass booked and made, even when it failed half-way.
        match self.ledger.deletions(folder) {
            Ok(deletions) => state.deletions = deletions,
            Err(err) => tracing::warn!(
                "sync: cannot read the deletions of {folder} from the sync ledger: {err}"
            ),
        }
        if let Some(moved) = end.moved {
            self.logs.push(LOG, &format!("{folder}: {moved}"));
        }
        if let Some(warning) = end.warning {
            tracing::warn!("sync: {folder}: {warning}");
        }
        if matches!(outcome, PassOutcome::Synced(_) | PassOutcome::NothingToSync) {
            self.outage = None;
            self.cool_downs = 0;
            // The pass covered the changes older than its start, less min_age unless final.
            let held_back = if running.final_pass {
                Duration::ZERO
            } else {
                self.sync.min_age.0
            };
            let covered = running.started.elapsed() + held_back;
            let synced_ms =
                now_ms().saturating_sub(u64::try_from(covered.as_millis()).unwrap_or(u64::MAX));
            if let Err(err) = self.ledger.record(folder, synced_ms) {
                tracing::warn!(
                    "sync: cannot record the pass of {folder} in the sync ledger: {err}"
                );
            }
        }
        if state.duplicates && !state.deduping {
            self.start_dedupe(folder);
        }
        if matches!(outcome, PassOutcome::Failed(_)) && trouble::unreachable(&error_shown) {
            self.outage = Some(error_shown);
            if finishing {
                // Not retried until the deadline unless a probe finds the remote there.
                self.probe_before_final_passes();
            }
        }
    }

    pub(super) fn start_dedupe(&mut self, folder: &UserFolder) {
        let Some(remote) = &self.remote else {
            return;
        };
        let env = remote.env();
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        state.duplicates = false;
        if state
            .last_dedupe
            .is_some_and(|at| at.elapsed() < dedupe::AGAIN_AFTER)
        {
            let error = format!("{folder} still has duplicate files on the remote after a dedupe");
            tracing::warn!("sync: {error}");
            state.last_error = Some(FolderError {
                at_ms: now_ms(),
                error,
                hint: "another pod or program may be uploading into the same folder; check which pods sync it (their leases) and the remote".to_owned(),
            });
            return;
        }
        state.deduping = true;
        state.last_dedupe = Some(Instant::now());
        tracing::info!("sync: rclone reported duplicates in {}: running `rclone dedupe --dedupe-mode newest` on it", state.remote);
        let mut command = Command::new(&self.rclone);
        command.args(dedupe::args(&state.remote)).envs(env);
        secrets::withhold(&mut command, &[Secret::PanelToken, Secret::JupyterToken]);
        let (reaper, news, key) = (self.reaper.clone(), self.news_tx.clone(), folder.clone());
        let (logs, redactor) = (Arc::clone(&self.logs), self.redactor.clone());
        tokio::spawn(async move {
            let outcome = match once::run(&reaper, command, DEDUPE_DEADLINE).await {
                Ok(finished) => {
                    for line in finished.stderr.lines().chain(finished.stdout.lines()) {
                        logs.push(LOG, &redactor.redact(line));
                    }
                    if finished.success() {
                        "kept the newest copy of each duplicate".to_owned()
                    } else {
                        format!(
                            "dedupe failed: {}",
                            redactor.redact(&finished.stderr_tail(3))
                        )
                    }
                }
                Err(err) => format!("dedupe could not run: {err}"),
            };
            let _ = news.send(News::Deduped {
                folder: key,
                outcome,
            });
        });
    }

    pub(super) fn on_deduped(&mut self, folder: &UserFolder, outcome: String) {
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        tracing::info!("sync: dedupe of {folder}: {outcome}");
        state.deduping = false;
        state.dedupe = Some(DedupeNote {
            at_ms: now_ms(),
            outcome,
        });
        if state.running.is_none() && state.held() {
            state.due = Some(Instant::now());
        }
    }
}
