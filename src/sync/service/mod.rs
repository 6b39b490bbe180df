//! The sync service: one task that prepares the remote (Drive rules), runs `rclone rcd` under
//! the service state machine (`crate::service::state`, in `rclone`), holds the leases of the
//! served users' folders and watches them (`folders`), runs their passes (`passes`), publishes
//! a [`SyncReport`] after every change, notices a remote that went away (`outage`), and at
//! shutdown runs the final sync within its deadline (`final_sync`).

mod final_sync;
mod folders;
mod outage;
mod passes;
mod rclone;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::manifest::Sync;
use crate::service::clock::now_ms;
use crate::service::exit_reason::Termination;
use crate::service::logs::LogBook;
use crate::service::process::Reaper;
use crate::service::state::{Action, Event, Service, ServiceState};
use crate::service::status::ServiceStatus;
use crate::sync::error::SetupError;
use crate::sync::folder::FolderSync;
use crate::sync::layout::UserFolder;
use crate::sync::lease::Leases;
use crate::sync::ledger::Ledger;
use crate::sync::pass::PassOutcome;
use crate::sync::rc::Stats;
use crate::sync::rcd::{self, RcLogin};
use crate::sync::redact::Redactor;
use crate::sync::remote::RemoteConfig;
use crate::sync::report::{FinalSync, SharedDriveNote, SyncReport};
use crate::sync::schedule::Timing;
use crate::sync::trigger::{Change, FolderWatch};
use crate::user::UserName;
use final_sync::Finishing;
use rclone::Rcd;

/// The log the service and rclone write to.
pub const LOG: &str = "sync";
/// rclone gets this long between SIGTERM and SIGKILL.
const RCLONE_STOP_GRACE: Duration = Duration::from_secs(3);
/// How often served folders that do not exist yet are looked for, to watch them.
const NEW_FOLDERS: Duration = Duration::from_secs(1);
/// How often running passes are checked for a stall.
const STALLS: Duration = Duration::from_secs(1);

/// What the sync service starts from.
#[derive(Debug)]
pub struct SyncSetup {
    pub sync: Sync,
    pub volume: PathBuf,
    pub pod: String,
    /// The rclone program, a path or a name on PATH.
    pub rclone: PathBuf,
    pub reaper: Reaper,
    pub logs: Arc<LogBook>,
    /// The pod's environment, where the remote's secrets are.
    pub env: Vec<(String, String)>,
}

enum Request {
    Serve(UserName),
    Finish(oneshot::Sender<FinalSync>),
    Release(UserFolder, oneshot::Sender<Option<u64>>),
    Restart(oneshot::Sender<Result<(), String>>),
}

/// The supervisor's handle on the sync service.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    requests: mpsc::UnboundedSender<Request>,
    report: watch::Receiver<Arc<SyncReport>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Serve(user) => write!(f, "Serve({user})"),
            Self::Finish(_) => f.write_str("Finish"),
            Self::Release(folder, _) => write!(f, "Release({folder})"),
            Self::Restart(_) => f.write_str("Restart"),
        }
    }
}

impl SyncHandle {
    /// This pod serves `user`: their folders are synced from now on (when the lease allows).
    pub fn serve(&self, user: UserName) {
        let _ = self.requests.send(Request::Serve(user));
    }

    /// The latest report.
    pub fn report(&self) -> Arc<SyncReport> {
        Arc::clone(&self.report.borrow())
    }

    /// Hears every new report.
    pub fn subscribe(&self) -> watch::Receiver<Arc<SyncReport>> {
        self.report.clone()
    }

    /// A person lets the deletions held in `folder` go ahead: how many, or `None` when this
    /// pod does not sync the folder.
    pub async fn release(&self, folder: UserFolder) -> Option<u64> {
        let (reply, done) = oneshot::channel();
        self.requests.send(Request::Release(folder, reply)).ok()?;
        done.await.ok().flatten()
    }

    /// Starts rclone again after it failed; why not when it did not fail.
    pub async fn restart(&self) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send(Request::Restart(reply))
            .map_err(|_| "the sync service has ended".to_owned())?;
        done.await
            .unwrap_or_else(|_| Err("the sync service has ended".to_owned()))
    }

    /// Runs the final sync of this pod's folders within `sync.final_sync`, stops rclone and
    /// releases the leases; what the final sync did.
    pub async fn finish(&self) -> Option<FinalSync> {
        let (reply, done) = oneshot::channel();
        self.requests.send(Request::Finish(reply)).ok()?;
        done.await.ok()
    }
}

/// Starts the sync service on the current runtime.
pub fn start(setup: SyncSetup) -> reqwest::Result<SyncHandle> {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let (news_tx, news) = mpsc::unbounded_channel();
    let http = crate::service::loopback::local_client()?;
    let syncer = Syncer::new(setup, http, news_tx, news, requests);
    let (report_tx, report) = watch::channel(Arc::new(syncer.report()));
    tokio::spawn(syncer.run(report_tx));
    Ok(SyncHandle {
        requests: requests_tx,
        report,
    })
}

/// News from rclone, the passes, the timers and the file watcher.
#[derive(Debug)]
enum News {
    Prepared(Box<Result<Prepared, SetupError>>),
    Line {
        generation: u64,
        text: String,
    },
    Exited {
        generation: u64,
        termination: Termination,
    },
    Answering {
        generation: u64,
    },
    Timer(Event),
    RetrySetup,
    Changed(Change),
    Progress {
        folder: UserFolder,
        run: u64,
        stats: Stats,
    },
    PassDone {
        folder: UserFolder,
        run: u64,
        outcome: PassOutcome,
    },
    Deduped {
        folder: UserFolder,
        outcome: String,
    },
    /// A probe of the remote ended: reached, or why not.
    Probed(Result<(), String>),
}

/// The remote, ready for rclone.
#[derive(Debug)]
struct Prepared {
    remote: RemoteConfig,
    shared_drive: Option<SharedDriveNote>,
}

/// The service's state, owned by its one task.
struct Syncer {
    sync: Sync,
    volume: PathBuf,
    rclone: PathBuf,
    reaper: Reaper,
    logs: Arc<LogBook>,
    http: reqwest::Client,
    env: Vec<(String, String)>,
    remote: Option<RemoteConfig>,
    shared_drive: Option<SharedDriveNote>,
    redactor: Redactor,
    login: RcLogin,
    machine: Service,
    last_start_s: Option<f64>,
    rcd: Option<Rcd>,
    generation: u64,
    runs: u64,
    served: BTreeSet<UserName>,
    folders: BTreeMap<UserFolder, FolderSync>,
    leases: Leases,
    ledger: Ledger,
    /// When rclone is started again after a crash loop.
    cool_down: Option<Instant>,
    /// Cool-downs since rclone last synced a folder.
    cool_downs: u32,
    /// Why the remote is down, as last seen (a probe or a pass that could not reach it); `None`
    /// once a pass or a probe reached it.
    outage: Option<String>,
    /// A probe of the remote is under way.
    probing: bool,
    watch: Option<FolderWatch>,
    timing: Timing,
    final_sync: Option<FinalSync>,
    finishing: Option<Finishing>,
    news_tx: mpsc::UnboundedSender<News>,
    news: mpsc::UnboundedReceiver<News>,
    requests: mpsc::UnboundedReceiver<Request>,
}

impl Syncer {
    fn new(
        setup: SyncSetup,
        http: reqwest::Client,
        news_tx: mpsc::UnboundedSender<News>,
        news: mpsc::UnboundedReceiver<News>,
        requests: mpsc::UnboundedReceiver<Request>,
    ) -> Self {
        let SyncSetup {
            sync,
            volume,
            pod,
            rclone,
            reaper,
            logs,
            env,
        } = setup;
        let login = RcLogin::random();
        let watcher_news = news_tx.clone();
        let watch = FolderWatch::new(move |change| {
            let _ = watcher_news.send(News::Changed(change));
        })
        .map_err(|err| {
            tracing::warn!("file events are not watched ({err}); only the periodic pass syncs");
        })
        .ok();
        Self {
            leases: Leases::new(
                volume.join(".podstack").join("leases"),
                &pod,
                sync.heartbeat.0,
            ),
            ledger: Ledger::new(volume.join(".podstack").join("sync"), &pod),
            cool_down: None,
            cool_downs: 0,
            outage: None,
            probing: false,
            timing: Timing {
                min_age: sync.min_age.0,
            },
            machine: Service::new("rclone", rcd::restart_policy(), RCLONE_STOP_GRACE),
            redactor: Redactor::new([login.user.clone(), login.password.clone()]),
            login,
            sync,
            volume,
            rclone,
            reaper,
            logs,
            http,
            env,
            remote: None,
            shared_drive: None,
            last_start_s: None,
            rcd: None,
            generation: 0,
            runs: 0,
            served: BTreeSet::new(),
            folders: BTreeMap::new(),
            watch,
            final_sync: None,
            finishing: None,
            news_tx,
            news,
            requests,
        }
    }

    async fn run(mut self, report: watch::Sender<Arc<SyncReport>>) {
        self.drive(Event::StartRequested);
        self.catch_up();
        report.send_replace(Arc::new(self.report()));
        let start = Instant::now();
        let mut full_pass =
            tokio::time::interval_at(start + self.sync.interval.0, self.sync.interval.0);
        let mut heartbeat =
            tokio::time::interval_at(start + self.sync.heartbeat.0, self.sync.heartbeat.0);
        let mut new_folders = tokio::time::interval(NEW_FOLDERS);
        let mut stalls = tokio::time::interval(STALLS);
        loop {
            let due = self.next_due();
            let deadline = self
                .finishing
                .as_ref()
                .filter(|finishing| !finishing.stopping)
                .map(|finishing| finishing.deadline);
            tokio::select! {
                Some(request) = self.requests.recv() => self.on_request(request),
                Some(news) = self.news.recv() => self.on_news(news),
                () = sleep_until(due) => {}
                () = sleep_until(deadline) => self.conclude_final_sync(),
                () = sleep_until(self.cool_down) => self.after_cool_down(),
                _ = full_pass.tick() => self.full_pass(),
                _ = heartbeat.tick() => self.heartbeat(),
                _ = new_folders.tick() => self.watch_new_folders(),
                _ = stalls.tick() => self.check_stalls(),
            }
            self.start_due_passes();
            if self.finishing.is_some() && self.advance_finish() {
                report.send_replace(Arc::new(self.report()));
                return;
            }
            report.send_replace(Arc::new(self.report()));
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Serve(user) => self.serve(user),
            Request::Finish(reply) => self.begin_finish(reply),
            Request::Restart(reply) => {
                let _ = reply.send(self.restart());
            }
            Request::Release(folder, reply) => {
                let released = self.release(&folder);
                let _ = reply.send(released);
            }
        }
    }

    /// A person starts rclone again after it failed (`POST /api/sync/restart`).
    fn restart(&mut self) -> Result<(), String> {
        if !matches!(self.machine.state(), ServiceState::Failed { .. }) {
            let state = serde_json::to_value(self.machine.state())
                .ok()
                .and_then(|value| value["state"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(format!("rclone is {state}, not failed: nothing to restart"));
        }
        self.cool_down = None;
        let line = "rclone restarted through POST /api/sync/restart";
        tracing::info!("sync: {line}");
        self.logs.push(LOG, line);
        self.drive(Event::StartRequested);
        Ok(())
    }

    /// After rclone crashed too often (the state machine's crash loop), a cool-down instead of
    /// failed until the pod restarts: rclone is started again after [`cool_down_after`].
    fn arm_cool_down(&mut self) {
        if self.cool_down.is_some() || self.finishing.is_some() {
            return;
        }
        let ServiceState::Failed {
            exit: Some(exit), ..
        } = self.machine.state()
        else {
            return;
        };
        if !exit.worth_restarting() {
            return;
        }
        let after = cool_down_after(self.cool_downs);
        self.cool_downs = self.cool_downs.saturating_add(1);
        self.cool_down = Some(Instant::now() + after);
        tracing::warn!(
            "sync: rclone keeps crashing; it is started again in {} (or now with POST /api/sync/restart)",
            crate::duration::HumanDuration(after)
        );
    }

    fn after_cool_down(&mut self) {
        self.cool_down = None;
        if matches!(self.machine.state(), ServiceState::Failed { .. }) {
            tracing::info!("sync: starting rclone again after its cool-down");
            self.drive(Event::StartRequested);
        }
    }

    /// Releases the deletions held in `folder`, with a line in the sync log saying so.
    fn release(&mut self, folder: &UserFolder) -> Option<u64> {
        let state = self.folders.get_mut(folder)?;
        let released = state.release_deletions(Instant::now());
        let line = format!(
            "{folder}: {released} held deletion(s) released through POST /api/sync/release"
        );
        tracing::info!("sync: {line}");
        self.logs.push(LOG, &line);
        Some(released)
    }

    fn on_news(&mut self, news: News) {
        match news {
            News::Prepared(prepared) => self.on_prepared(*prepared),
            News::Line { generation, text } => self.on_line(generation, text),
            News::Exited {
                generation,
                termination,
            } => self.on_exit(generation, termination),
            News::Answering { generation } => {
                if self
                    .rcd
                    .as_ref()
                    .is_some_and(|rcd| rcd.generation == generation)
                {
                    self.drive(Event::ReadyProbeOk);
                }
            }
            News::Timer(event) => self.drive(event),
            News::RetrySetup => {
                if self.finishing.is_none() {
                    self.drive(Event::StartRequested);
                }
            }
            News::Changed(change) => self.on_change(change),
            News::Progress { folder, run, stats } => self.on_progress(&folder, run, stats),
            News::PassDone {
                folder,
                run,
                outcome,
            } => self.on_pass_done(&folder, run, outcome),
            News::Deduped { folder, outcome } => self.on_deduped(&folder, outcome),
            News::Probed(answer) => self.on_probed(answer),
        }
    }

    /// Feeds the rclone service's state machine and carries out what it asks.
    fn drive(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let now = now_ms();
            let starting_since = match self.machine.state() {
                ServiceState::Starting { since, .. } => Some(*since),
                _ => None,
            };
            let actions = self.machine.handle(event, now);
            if let (Some(since), ServiceState::Ready { .. }) =
                (starting_since, self.machine.state())
            {
                #[allow(clippy::cast_precision_loss)] // milliseconds of a start-up
                let seconds = now.saturating_sub(since) as f64 / 1000.0;
                self.last_start_s = Some(seconds);
                tracing::info!("rclone is ready after {seconds:.1} s");
            }
            for action in actions {
                events.extend(self.act(action));
            }
        }
        self.arm_cool_down();
    }

    fn act(&mut self, action: Action) -> Option<Event> {
        let timer = |event: Event, after: Duration, news: mpsc::UnboundedSender<News>| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = news.send(News::Timer(event));
            });
        };
        match action {
            Action::Spawn if self.remote.is_none() => {
                self.prepare();
                None
            }
            Action::Spawn => match self.spawn_rcd() {
                Ok(()) => Some(Event::Stage {
                    name: "starting rclone",
                    percent: 50,
                }),
                Err(err) => Some(Event::SpawnFailed {
                    reason: err.to_string(),
                    hint: err.hint(),
                }),
            },
            Action::SignalGroup(signal) => {
                if let Some(rcd) = &self.rcd {
                    rcd.group.signal(signal);
                }
                None
            }
            Action::KillGroup => {
                if let Some(rcd) = &self.rcd {
                    tracing::warn!("rclone did not stop within the grace period: SIGKILL");
                    rcd.group.signal(Signal::SIGKILL);
                }
                None
            }
            Action::ScheduleRestart { after, timer: id } => {
                timer(Event::RestartDue(id), after, self.news_tx.clone());
                None
            }
            Action::ScheduleStopGrace { after, timer: id } => {
                timer(Event::StopGraceElapsed(id), after, self.news_tx.clone());
                None
            }
            Action::ProbeReadiness => {
                self.probe_readiness();
                None
            }
        }
    }

    fn log(&self, text: &str) {
        self.logs.push(LOG, text);
    }

    fn report(&self) -> SyncReport {
        let now = Instant::now();
        let folders = self
            .folders
            .iter()
            .map(|(folder, state)| state.report(folder.user.as_str(), folder.kind, now))
            .collect();
        SyncReport {
            service: ServiceStatus {
                state: self.machine.state().clone(),
                pid: self.rcd.as_ref().map(|rcd| rcd.group.leader()),
                restarts: self.machine.restarts(),
                last_start_s: self.last_start_s,
                expected_start_s: None,
                log: "/api/logs?service=sync",
            },
            remote: format!("{}:{}", self.sync.remote, self.sync.root),
            backend: self.sync.backend.clone(),
            options: self
                .remote
                .as_ref()
                .map(RemoteConfig::summary)
                .unwrap_or_default(),
            shared_drive: self.shared_drive.clone(),
            users: self.served.iter().map(ToString::to_string).collect(),
            folders,
            final_sync: self.final_sync.clone(),
            restart_at_ms: self.cool_down.map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                now_ms().saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
            }),
        }
    }
}

/// The cool-down before the `round`-th start after a crash loop (from 0): 30 s, doubling up to
/// ten minutes.
pub fn cool_down_after(round: u32) -> Duration {
    let factor = 1u32.checked_shl(round.min(16)).unwrap_or(u32::MAX);
    Duration::from_secs(30)
        .saturating_mul(factor)
        .min(Duration::from_secs(600))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loop_cools_down_thirty_seconds_doubling_to_ten_minutes() {
        let rounds: Vec<u64> = (0..8)
            .map(|round| cool_down_after(round).as_secs())
            .collect();
        assert_eq!(rounds, [30, 60, 120, 240, 480, 600, 600, 600]);
        assert_eq!(cool_down_after(u32::MAX).as_secs(), 600);
    }
}
