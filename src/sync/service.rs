//! The sync service: one task that prepares the remote (Drive rules), runs `rclone rcd` under
//! the supervisor's state machine (restarted within 5 s when it dies, its in-flight passes run
//! again), holds the leases of the served users' folders, starts passes on file events, on a
//! periodic full pass and after failures, publishes a [`SyncReport`] after every change, and at
//! shutdown runs the final sync within its deadline, stops rclone and releases the leases.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::dedupe;
use super::drive::{self, DrivePlan};
use super::error::SetupError;
use super::folder::{FolderSync, Running};
use super::layout::{excluded, UserFolder};
use super::lease::{Claim, Leases};
use super::once;
use super::pass::{self, PassOutcome, PassPlan};
use super::rc::{RcClient, Stats};
use super::rcd::{self, RcLogin, READY_LINE};
use super::redact::Redactor;
use super::remote::RemoteConfig;
use super::report::{DedupeNote, FinalFolder, FinalSync, FolderError, SharedDriveNote, SyncReport};
use super::schedule::{Timing, DEBOUNCE};
use super::trigger::{Change, FolderWatch};
use crate::manifest::Sync;
use crate::supervisor::exit_reason::{ExitReason, Termination};
use crate::supervisor::logs::{utc_timestamp, LogBook};
use crate::supervisor::process::{ProcessGroup, Reaper, Spawned};
use crate::supervisor::run::{now_ms, AbortOnDrop};
use crate::supervisor::state::{Action, Event, Service, ServiceState};
use crate::supervisor::status::ServiceStatus;
use crate::user::UserName;

/// The log the service and rclone write to.
pub const LOG: &str = "sync";
/// Passes of different folders that run at once (each with the manifest's transfers).
const PARALLEL_PASSES: usize = 4;
/// rclone gets this long between SIGTERM and SIGKILL.
const RCLONE_STOP_GRACE: Duration = Duration::from_secs(3);
/// How long a dead rclone's output may still drain before its exit is handled.
const DRAIN: Duration = Duration::from_millis(500);
/// How long `rclone backend drives` may take.
const LISTING_DEADLINE: Duration = Duration::from_secs(60);
/// A Shared Drive listing that failed (network, Google) is tried again after this.
const SETUP_RETRY: Duration = Duration::from_secs(60);
/// How long one dedupe may take.
const DEDUPE_DEADLINE: Duration = Duration::from_secs(600);
/// How often served folders that do not exist yet are looked for, to watch them.
const NEW_FOLDERS: Duration = Duration::from_secs(1);
/// rclone's last log lines kept for a failure report.
const TAIL_LINES: usize = 30;

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
    let http = crate::supervisor::probe::local_client()?;
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
}

/// The remote, ready for rclone.
#[derive(Debug)]
struct Prepared {
    remote: RemoteConfig,
    shared_drive: Option<SharedDriveNote>,
}

/// The running `rclone rcd`.
#[derive(Debug)]
struct Rcd {
    generation: u64,
    group: ProcessGroup,
    client: RcClient,
    tail: VecDeque<String>,
    _probe: Option<AbortOnDrop>,
}

/// The shutdown in progress.
#[derive(Debug)]
struct Finishing {
    reply: Option<oneshot::Sender<FinalSync>>,
    started: Instant,
    deadline: Instant,
    /// The final passes are over; rclone is stopping.
    stopping: bool,
}

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
        report.send_replace(Arc::new(self.report()));
        let start = Instant::now();
        let mut full_pass =
            tokio::time::interval_at(start + self.sync.interval.0, self.sync.interval.0);
        let mut heartbeat =
            tokio::time::interval_at(start + self.sync.heartbeat.0, self.sync.heartbeat.0);
        let mut new_folders = tokio::time::interval(NEW_FOLDERS);
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
                _ = full_pass.tick() => self.full_pass(),
                _ = heartbeat.tick() => self.heartbeat(),
                _ = new_folders.tick() => self.watch_new_folders(),
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
        }
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
            News::Progress { folder, run, stats } => {
                if let Some(running) = self
                    .folders
                    .get_mut(&folder)
                    .and_then(|state| state.running.as_mut())
                    .filter(|running| running.run == run)
                {
                    running.stats = stats;
                }
            }
            News::PassDone {
                folder,
                run,
                outcome,
            } => self.on_pass_done(&folder, run, outcome),
            News::Deduped { folder, outcome } => self.on_deduped(&folder, outcome),
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

    /// Builds the remote and applies the Drive rules, asking `rclone backend drives` when the
    /// Shared Drive must be found; reports [`News::Prepared`].
    fn prepare(&mut self) {
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
                        drive: drive::SharedDrive {
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

    fn on_prepared(&mut self, prepared: Result<Prepared, SetupError>) {
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

    fn spawn_rcd(&mut self) -> Result<(), SetupError> {
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
    fn watch_rcd(&self, generation: u64, spawned: Spawned) {
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
        tokio::spawn(async move {
            let Ok(termination) = exited.await else {
                return;
            };
            let _ = tokio::time::timeout(DRAIN, async {
                for pump in pumps {
                    let _ = pump.await;
                }
            })
            .await;
            group.signal(Signal::SIGKILL);
            let _ = news.send(News::Exited {
                generation,
                termination,
            });
        });
    }

    fn probe_readiness(&mut self) {
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

    fn on_line(&mut self, generation: u64, text: String) {
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

    fn on_exit(&mut self, generation: u64, termination: Termination) {
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

    /// This pod serves `user`: claim their folders and sync them.
    fn serve(&mut self, user: UserName) {
        if self.finishing.is_some() || !self.served.insert(user.clone()) {
            return;
        }
        let remote_name = self.sync.remote.clone();
        for entry in self.sync.folders.clone() {
            let folder = UserFolder {
                user: user.clone(),
                kind: entry.path,
            };
            let local = folder.local(&self.volume);
            let claim = self.claim(&folder);
            match &claim {
                Claim::Mine => self.log(&format!("{folder}: this pod syncs it")),
                Claim::HeldBy { pod, .. } => {
                    self.log(&format!(
                        "{folder}: synced by the pod {pod}, which holds its lease"
                    ));
                }
            }
            if let Some(watch) = &mut self.watch {
                watch.watch(&local);
            }
            let remote = format!("{remote_name}:{}", folder.remote(&self.sync.root));
            self.folders.insert(
                folder,
                FolderSync::new(entry.mode, local, remote, claim, Instant::now()),
            );
        }
    }

    fn claim(&self, folder: &UserFolder) -> Claim {
        self.leases.claim(folder, now_ms()).unwrap_or_else(|err| {
            tracing::warn!("sync: cannot claim the lease of {folder}: {err}");
            Claim::HeldBy {
                pod: format!("nobody (the lease cannot be written: {err})"),
                renewed_ms: None,
            }
        })
    }

    /// Renews the leases this pod holds, claims those that became free or stale, and watches
    /// folders that appeared.
    fn heartbeat(&mut self) {
        // A pod whose sync failed lets its leases go stale, so a pod that can sync takes over.
        if matches!(self.machine.state(), ServiceState::Failed { .. }) {
            return;
        }
        let now = now_ms();
        let keys: Vec<UserFolder> = self.folders.keys().cloned().collect();
        for folder in keys {
            let held = self.folders.get(&folder).is_some_and(FolderSync::held);
            let claim = if held {
                self.leases.renew(&folder, now)
            } else {
                self.leases.claim(&folder, now)
            };
            let claim = match claim {
                Ok(claim) => claim,
                Err(err) => {
                    tracing::warn!("sync: cannot renew the lease of {folder}: {err}");
                    continue;
                }
            };
            let Some(state) = self.folders.get_mut(&folder) else {
                continue;
            };
            match (held, &claim) {
                (true, Claim::HeldBy { pod, .. }) => tracing::warn!(
                    "sync: the pod {pod} took over the lease of {folder}; this pod stops syncing it"
                ),
                (false, Claim::Mine) => tracing::info!(
                    "sync: took over the lease of {folder} (its holder stopped renewing it)"
                ),
                _ => {}
            }
            state.set_claim(claim, Instant::now());
        }
    }

    /// Watches the served folders that appeared since the last look (ComfyUI creates a
    /// user's folders when it first starts for them, a workflow folder appears with the first
    /// saved workflow). Files written before the watch began raised no event, so a folder
    /// watched anew counts as changed.
    fn watch_new_folders(&mut self) {
        let Some(watch) = &mut self.watch else {
            return;
        };
        let now = Instant::now();
        for state in self.folders.values_mut() {
            if !watch.watching(&state.local) && watch.watch(&state.local) {
                let local = state.local.clone();
                state.notice(&local, now, self.timing);
            }
        }
    }

    fn full_pass(&mut self) {
        let now = Instant::now();
        for state in self.folders.values_mut() {
            state.expedite(now);
        }
    }

    fn on_change(&mut self, change: Change) {
        let now = Instant::now();
        let path = match change {
            Change::At(path) => path,
            Change::Unknown => {
                for state in self.folders.values_mut() {
                    let local = state.local.clone();
                    state.notice(&local, now, self.timing);
                    state.expedite(now + DEBOUNCE);
                }
                return;
            }
        };
        let Some(state) = self
            .folders
            .values_mut()
            .find(|state| path.starts_with(&state.local))
        else {
            return;
        };
        if path == state.local && !path.exists() {
            if let Some(watch) = &mut self.watch {
                watch.forget(&path);
            }
        }
        let relative = path.strip_prefix(&state.local).unwrap_or(&path);
        if !excluded(relative) {
            state.notice(&path, now, self.timing);
        }
    }

    /// When the next pass may start: none while rclone is not ready, or while every slot for
    /// passes is taken (a pass that ends is news of its own).
    fn next_due(&self) -> Option<Instant> {
        if !matches!(self.machine.state(), ServiceState::Ready { .. }) {
            return None;
        }
        let finishing = match &self.finishing {
            Some(finishing) if finishing.stopping => return None,
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
    fn start_due_passes(&mut self) {
        let finishing = match &self.finishing {
            Some(finishing) if finishing.stopping => return,
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

    fn start_pass(&mut self, folder: &UserFolder, final_pass: bool) {
        let Some(rcd) = &self.rcd else {
            return;
        };
        let Some(state) = self.folders.get_mut(folder) else {
            return;
        };
        let date = utc_timestamp(now_ms());
        let trash = self
            .remote
            .as_ref()
            .map(|remote| remote.path(&folder.trash(&self.sync.root, &date[..10])));
        let plan = PassPlan::new(
            &self.sync,
            state.mode,
            state.local.clone(),
            state.remote.clone(),
            trash,
            final_pass,
        );
        self.runs += 1;
        let run = self.runs;
        let (client, news, key) = (rcd.client.clone(), self.news_tx.clone(), folder.clone());
        let task = tokio::spawn(async move {
            let progress_news = news.clone();
            let progress_key = key.clone();
            let outcome = pass::run(&client, &plan, |stats| {
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
            _task: AbortOnDrop(task),
        });
    }

    fn on_pass_done(&mut self, folder: &UserFolder, run: u64, outcome: PassOutcome) {
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
        if let Some(moved) = end.moved {
            self.logs.push(LOG, &format!("{folder}: {moved}"));
        }
        if let Some(warning) = end.warning {
            tracing::warn!("sync: {folder}: {warning}");
        }
        if state.duplicates && !state.deduping {
            self.start_dedupe(folder);
        }
    }

    fn start_dedupe(&mut self, folder: &UserFolder) {
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
        command
            .args(dedupe::args(&state.remote))
            .envs(env)
            .env_remove(crate::supervisor::auth::TOKEN_ENV)
            .env_remove(crate::supervisor::jupyter::TOKEN_ENV);
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

    fn on_deduped(&mut self, folder: &UserFolder, outcome: String) {
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

    fn begin_finish(&mut self, reply: oneshot::Sender<FinalSync>) {
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
        self.finishing = Some(Finishing {
            reply: Some(reply),
            started: now,
            deadline: now + self.sync.final_sync.0,
            stopping: false,
        });
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

    /// Moves the shutdown along; true once it is over.
    fn advance_finish(&mut self) -> bool {
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
    fn conclude_final_sync(&mut self) {
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
        }
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
        .envs(remote.env())
        .env_remove(crate::supervisor::auth::TOKEN_ENV)
        .env_remove(crate::supervisor::jupyter::TOKEN_ENV);
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
