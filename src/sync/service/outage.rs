//! The remote going away while the sync runs: an error rclone reports while its job goes on
//! is shown at once; a pass that stalls gets the remote probed (`crate::sync::probe`), and a
//! probe that fails shows its error on the stalled folders and marks the remote as down; a
//! pass that succeeds or a probe that answers marks it up again. At shutdown, a remote known
//! to be down is tried once by a probe before any final pass: when it still does not answer,
//! the final sync is skipped instead of waiting out `final_sync`.

use std::process::Command;

use tokio::time::Instant;

use super::{News, Syncer};
use crate::service::clock::now_ms;
use crate::service::secrets::{self, Secret};
use crate::sync::layout::UserFolder;
use crate::sync::log_line;
use crate::sync::once;
use crate::sync::probe;
use crate::sync::rc::Stats;

impl Syncer {
    /// A running pass's figures: a byte more is progress, an error rclone counted is shown.
    pub(super) fn on_progress(&mut self, folder: &UserFolder, run: u64, stats: Stats) {
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        let Some(running) = state.running.as_mut().filter(|running| running.run == run) else {
            return;
        };
        if stats.bytes > running.stats.bytes {
            running.progressed = Instant::now();
        }
        let error = (stats.errors > 0 && !stats.last_error.is_empty())
            .then(|| self.redactor.redact(&stats.last_error).into_owned());
        running.stats = stats;
        if let Some(error) = error {
            if crate::sync::trouble::unreachable(&error) {
                self.outage = Some(error.clone());
            }
            if state.show_error(&error, now_ms()) {
                tracing::warn!(
                    "sync: {folder}: rclone reports an error while its pass goes on: {error}"
                );
            }
        }
    }

    /// Probes the remote when a pass has made no progress for [`probe::STALLED_AFTER`].
    pub(super) fn check_stalls(&mut self) {
        let stalled = self.folders.values().any(|state| {
            state
                .running
                .as_ref()
                .is_some_and(|running| running.progressed.elapsed() >= probe::STALLED_AFTER)
        });
        if stalled {
            self.start_probe();
        }
    }

    /// Starts a probe of the remote, unless one is under way.
    pub(super) fn start_probe(&mut self) {
        let Some(remote) = &self.remote else {
            return;
        };
        if self.probing {
            return;
        }
        self.probing = true;
        let mut command = Command::new(&self.rclone);
        command
            .args(probe::args(&remote.path(&self.sync.root)))
            .envs(remote.env());
        secrets::withhold(&mut command, &[Secret::PanelToken, Secret::JupyterToken]);
        let (reaper, news, redactor) = (
            self.reaper.clone(),
            self.news_tx.clone(),
            self.redactor.clone(),
        );
        tokio::spawn(async move {
            let answer = match once::run(&reaper, command, probe::DEADLINE).await {
                Ok(finished) if probe::reached(finished.termination) => Ok(()),
                Ok(finished) => {
                    let tail = finished.stderr_tail(1);
                    Err(redactor.redact(log_line::message(&tail)).into_owned())
                }
                Err(err) => Err(format!("the probe did not finish: {err}")),
            };
            let _ = news.send(News::Probed(answer));
        });
    }

    /// What the probe found.
    pub(super) fn on_probed(&mut self, answer: Result<(), String>) {
        self.probing = false;
        let now = Instant::now();
        // Each stalled pass is probed again only after another stall.
        for running in self.folders.values_mut().filter_map(|s| s.running.as_mut()) {
            running.progressed = now;
        }
        // The final passes that waited for this answer start (or are skipped) now.
        if let Some(finishing) = &mut self.finishing {
            finishing.probe_first = false;
        }
        match answer {
            Ok(()) => {
                if self.outage.take().is_some() {
                    tracing::info!("sync: the remote answers again");
                }
            }
            Err(error) => {
                if self.outage.is_none() {
                    tracing::warn!("sync: the remote does not answer: {error}");
                }
                let shown =
                    format!("the remote does not answer while a pass is under way: {error}");
                let at_ms = now_ms();
                for state in self.folders.values_mut() {
                    if state.running.is_some() {
                        state.show_error(&shown, at_ms);
                    }
                }
                self.outage = Some(error.clone());
                if self.finishing.is_some() {
                    self.skip_final_sync(&error);
                }
            }
        }
    }
}
