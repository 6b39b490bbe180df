//! rclone itself for the sync service: the remote prepared (the Drive rules, `rclone backend
//! drives` when the Shared Drive must be found), `rclone rcd` spawned through the reaper, its
//! output pumped (secrets removed) into the sync log, its readiness probed, its death noticed
//! and handed to the state machine, which restarts it; the passes it was running run again.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::time::Instant;

use super::{News, Prepared, Syncer, LOG};
use crate::service::exit_reason::{ExitReason, Termination};
use crate::service::logs::LogBook;
use crate::service::process::{ProcessGroup, Reaper, Spawned};
use crate::service::secrets::{self, Secret};
use crate::service::state::{Action, Event, ServiceState};
use crate::service::task::AbortOnDrop;
use crate::sync::dedupe;
use crate::sync::drive::{self, DrivePlan};
use crate::sync::error::SetupError;
use crate::sync::layout::UserFolder;
use crate::sync::once;
use crate::sync::rc::RcClient;
use crate::sync::rcd::{self, READY_LINE};
use crate::sync::redact::Redactor;
use crate::sync::remote::RemoteConfig;
use crate::sync::report::SharedDriveNote;
use crate::sync::shared_drive::SharedDrive;

/// How long `rclone backend drives` may take.
const LISTING_DEADLINE: Duration = Duration::from_secs(60);
/// A Shared Drive listing that failed (network, Google) is tried again after this.
const SETUP_RETRY: Duration = Duration::from_secs(60);
/// rclone's last log lines kept for a failure report.
const TAIL_LINES: usize = 30;

/// The running `rclone rcd`.
#[derive(Debug)]
pub(super) struct Rcd {
    pub(super) generation: u64,
    pub(super) group: ProcessGroup,
    pub(super) client: RcClient,
    pub(super) tail: VecDeque<String>,
    pub(super) _probe: Option<AbortOnDrop>,
}

impl Syncer {
    /// Builds the remote and applies the Drive rules, asking `rclone backend drives` when the
    /// Shared Drive must be found; reports [`News::Prepared`].
    pub(super) fn prepare(&mut self) {
        let remote = match RemoteConfig::new(&self.sync, self.env.iter().cloned()) {
            Ok(remote) => remote,
            Err(err) => {
                let _ = self.news_tx.send(News::Prepared(Box::new(Err(err))));
                return;
            }
        };
        self.redactor = Redactor::new(
            remote
                .secrets()
                .into_iter()
                .chain([self.login.user.clone(), self.login.password.clone()]),
        );
        let plan = drive::plan(&remote);
        if plan == Ok(DrivePlan::Discover) {
            self.drive(Event::Stage {
                name: "finding the Shared Drive",
                percent: 20,
            });
        }
        let (reaper, rclone, news) = (
            self.reaper.clone(),
            self.rclone.clone(),
            self.news_tx.clone(),
        );
        let (logs, redactor) = (Arc::clone(&self.logs), self.redactor.clone());
        tokio::spawn(async move {
            let prepared = match plan {
                Err(err) => Err(err),
                Ok(DrivePlan::Discover) => {
                    discover(&reaper, &rclone, remote, &logs, &redactor).await
                }
                Ok(DrivePlan::Configured(id)) => Ok(Prepared {
                    shared_drive: Some(SharedDriveNote {
                        drive: SharedDrive {
                            id,
                            name: String::new(),
                        },
                        found: "configured",
                    }),
                    remote,
                }),
                Ok(DrivePlan::PassThrough | DrivePlan::MyDrive) => Ok(Prepared {
                    remote,
                    shared_drive: None,
                }),
            };
            let _ = news.send(News::Prepared(Box::new(prepared)));
        });
    }

    pub(super) fn on_prepared(&mut self, prepared: Result<Prepared, SetupError>) {
        if !matches!(self.machine.state(), ServiceState::Starting { .. }) {
            return;
        }
        match prepared {
            Ok(Prepared {
                remote,
                shared_drive,
            }) => {
                if let Some(note) = &shared_drive {
                    if note.found == "discovered" {
                        tracing::info!(
                            "sync: using the Shared Drive `{}` ({}), the only one the service account sees; set sync.team_drive to pin it",
                            note.drive.name,
                            note.drive.id
                        );
                    }
                }
                self.remote = Some(remote);
                self.shared_drive = shared_drive;
                let event = self.act(Action::Spawn);
                if let Some(event) = event {
                    self.drive(event);
                }
            }
            Err(err) => {
                tracing::error!("sync cannot start: {err}\n  hint: {}", err.hint());
                if err.transient() {
                    let news = self.news_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(SETUP_RETRY).await;
                        let _ = news.send(News::RetrySetup);
                    });
                }
                self.drive(Event::SpawnFailed {
                    reason: err.to_string(),
                    hint: err.hint(),
                });
            }
        }
    }

    pub(super) fn spawn_rcd(&mut self) -> Result<(), SetupError> {
        let failed = |reason: String| SetupError::Rclone {
            program: self.rclone.display().to_string(),
            reason,
        };
        let remote = self
            .remote
            .as_ref()
            .ok_or_else(|| failed("the remote is not prepared".to_owned()))?;
        let port = rcd::free_port().map_err(|err| failed(format!("no free port: {err}")))?;
        let command = rcd::command(&self.rclone, port, &self.login, &remote.env(), &self.sync);
        let spawned = self
            .reaper
            .spawn(command)
            .map_err(|err| failed(err.to_string()))?;
        self.generation += 1;
        let generation = self.generation;
        let group = spawned.group;
        self.watch_rcd(generation, spawned);
        tracing::info!(
            "rclone rcd started (pid {}) on 127.0.0.1:{port}",
            group.leader()
        );
        self.rcd = Some(Rcd {
            generation,
            group,
            client: RcClient::new(
                self.http.clone(),
                port,
                &self.login.user,
                &self.login.password,
            ),
            tail: VecDeque::new(),
            _probe: None,
        });
        Ok(())
    }

    /// Pumps rclone's output (redacted) into the sync log and the news, and reports its exit
    /// once the output has drained.
    pub(super) fn watch_rcd(&self, generation: u64, spawned: Spawned) {
        let Spawned {
            group,
            stdout,
            stderr,
            exited,
        } = spawned;
        let pump = |pipe: Box<dyn AsyncRead + Unpin + Send>| {
            let (news, logs, redactor) = (
                self.news_tx.clone(),
                Arc::clone(&self.logs),
                self.redactor.clone(),
            );
            tokio::spawn(pump_lines(pipe, logs, redactor, move |text| {
                let _ = news.send(News::Line { generation, text });
            }))
        };
        let pumps = [pump(Box::new(stdout)), pump(Box::new(stderr))];
        let news = self.news_tx.clone();
        group.report_exit(exited, pumps, move |termination| {
            let _ = news.send(News::Exited {
                generation,
                termination,
            });
        });
    }

    pub(super) fn probe_readiness(&mut self) {
        let news = self.news_tx.clone();
        let Some(rcd) = self.rcd.as_mut() else {
            return;
        };
        let (client, generation) = (rcd.client.clone(), rcd.generation);
        rcd._probe = Some(AbortOnDrop(tokio::spawn(async move {
            let mut pause = Duration::from_millis(20);
            while client.noop().await.is_err() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            let _ = news.send(News::Answering { generation });
        })));
    }

    pub(super) fn on_line(&mut self, generation: u64, text: String) {
        if self
            .rcd
            .as_ref()
            .is_none_or(|rcd| rcd.generation != generation)
        {
            return;
        }
        if let Some(object) = dedupe::duplicate_in(&text) {
            let syncing: Vec<(UserFolder, &std::path::Path)> = self
                .folders
                .iter()
                .filter(|(_, state)| state.running.is_some())
                .map(|(folder, state)| (folder.clone(), state.local.as_path()))
                .collect();
            for folder in dedupe::owners(object, &syncing) {
                if let Some(state) = self.folders.get_mut(&folder) {
                    state.duplicates = true;
                }
            }
        }
        let ready = text.contains(READY_LINE);
        if let Some(rcd) = self.rcd.as_mut() {
            if rcd.tail.len() == TAIL_LINES {
                rcd.tail.pop_front();
            }
            rcd.tail.push_back(text);
        }
        if ready {
            self.drive(Event::ReadyLineSeen);
        }
    }

    pub(super) fn on_exit(&mut self, generation: u64, termination: Termination) {
        let Some(rcd) = self.rcd.take_if(|rcd| rcd.generation == generation) else {
            return;
        };
        let reason = ExitReason::new(termination, None, None);
        if matches!(self.machine.state(), ServiceState::Stopping { .. }) {
            tracing::info!("rclone stopped (pid {})", rcd.group.leader());
        } else {
            tracing::warn!(
                "{} (pid {}); the passes it was running start again once it is back",
                reason.reason("rclone"),
                rcd.group.leader()
            );
            let now = Instant::now();
            for state in self.folders.values_mut() {
                if state.running.take().is_some() {
                    state.due = Some(now);
                }
            }
        }
        self.drive(Event::Exited {
            reason,
            last_lines: rcd.tail.into_iter().collect(),
        });
    }
}

/// Lists the Shared Drives with `rclone backend drives` and picks the one to use.
async fn discover(
    reaper: &Reaper,
    rclone: &std::path::Path,
    mut remote: RemoteConfig,
    logs: &LogBook,
    redactor: &Redactor,
) -> Result<Prepared, SetupError> {
    let mut command = Command::new(rclone);
    command
        .args(drive::listing_args(&remote))
        .args(["--config", ""])
        .envs(remote.env());
    secrets::withhold(&mut command, &[Secret::PanelToken, Secret::JupyterToken]);
    let finished = once::run(reaper, command, LISTING_DEADLINE)
        .await
        .map_err(|err| SetupError::Rclone {
            program: rclone.display().to_string(),
            reason: err.to_string(),
        })?;
    for line in finished.stderr.lines() {
        logs.push(LOG, &redactor.redact(line));
    }
    if !finished.success() {
        return Err(SetupError::DrivesListing {
            detail: redactor.redact(&finished.stderr_tail(3)).into_owned(),
        });
    }
    let chosen = drive::choose(drive::parse_listing(&finished.stdout)?)?;
    remote.set_discovered_team_drive(&chosen.id);
    Ok(Prepared {
        remote,
        shared_drive: Some(SharedDriveNote {
            drive: chosen,
            found: "discovered",
        }),
    })
}

/// Reads `pipe` line by line, redacted, into the sync log and to `on_line`.
async fn pump_lines(
    pipe: impl AsyncRead + Unpin,
    logs: Arc<LogBook>,
    redactor: Redactor,
    mut on_line: impl FnMut(String),
) {
    let mut reader = BufReader::new(pipe);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        let text = redactor.redact(text.trim_end_matches(['\n', '\r']));
        logs.push(LOG, &text);
        on_line(text.into_owned());
    }
}
