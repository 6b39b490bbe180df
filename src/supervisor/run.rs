//! The orchestrator: one task that owns every service's state machine and carries out its
//! actions (spawn, signal, timers, readiness probes), reads ComfyUI's log for stages, the
//! attention it confirms and finished prompts (memory relief), explains exits, records usage,
//! and publishes the status after every change (the sync service's reports included). It tells
//! the sync service which users the pod serves: their folders are the pod's to sync. Requests from the API ([`Control`]) are handled
//! one at a time and answered at once with the new status (L14), so concurrent starts give one
//! ComfyUI and starting another user stops the current one first.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::Client;
use tokio::sync::{mpsc, oneshot, watch};

use super::attention::{self, AttentionChoice, ConfirmedAttention};
use super::control::{Control, Refusal, Request};
use super::gpu::{Device, GpuProbe};
use super::jupyter::{self, JupyterPlan};
use super::launch::{ComfyUiLaunch, LaunchPlan};
use super::log_watch::{LogEvent, LogWatch};
use super::models;
use super::probe::{self, Relief};
use super::settings::Settings;
use super::status::{AttentionStatus, AuthStatus, Services, Slot, SlotOff, StackStatus, Status};
use super::usage::{SessionEvent, SessionLine, UsageLog};
use super::users::{AddError, Roster};
use crate::service::clock::now_ms;
use crate::service::exit_reason::KnownFailure;
use crate::service::exit_reason::{ExitReason, OomWatch, Termination};
use crate::service::logs::{pump_lines, LogBook};
use crate::service::loopback::local_client;
use crate::service::process::{ProcessGroup, Reaper, Spawned};
use crate::service::secrets::{self, Secret, PANEL_TOKEN_ENV};
use crate::service::state::{Action, Event, Service, ServiceState, UnixMillis};
use crate::service::status::ServiceStatus;
use crate::service::task::AbortOnDrop;
use crate::sync::{SyncHandle, SyncReport};
use crate::user::UserName;

/// Last log lines kept for a failure report.
const TAIL_LINES: usize = 30;
/// How often a running session is noted in the usage log.
const USAGE_TICK: Duration = Duration::from_secs(300);

/// The services the orchestrator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ComfyUi,
    Jupyter,
}

impl Kind {
    /// The name of its log.
    fn log(self) -> &'static str {
        match self {
            Self::ComfyUi => "comfyui",
            Self::Jupyter => "jupyter",
        }
    }
}

/// News from the processes, probes and timers.
#[derive(Debug)]
enum Internal {
    Line {
        kind: Kind,
        generation: u64,
        text: String,
    },
    Exited {
        kind: Kind,
        generation: u64,
        termination: Termination,
    },
    Answering {
        kind: Kind,
        generation: u64,
    },
    Timer {
        kind: Kind,
        event: Event,
    },
}

/// The process a service runs now.
#[derive(Debug)]
struct Process {
    generation: u64,
    group: ProcessGroup,
    user: Option<UserName>,
    watch: LogWatch,
    known: Option<KnownFailure>,
    tail: VecDeque<String>,
    oom: OomWatch,
    /// The usage session (its start) of a ComfyUI process.
    session: UnixMillis,
    probe: Option<AbortOnDrop>,
}

/// One service: its state machine and its process.
#[derive(Debug)]
struct Supervised {
    machine: Service,
    process: Option<Process>,
    last_start_s: Option<f64>,
}

impl Supervised {
    fn new(name: &str, settings: &Settings) -> Self {
        Self {
            machine: Service::new(
                name,
                settings.stack.runtime.restart.clone(),
                settings.stack.runtime.stop_grace.0,
            ),
            process: None,
            last_start_s: None,
        }
    }

    fn status(&self, log: &'static str) -> ServiceStatus {
        ServiceStatus {
            state: self.machine.state().clone(),
            pid: self.process.as_ref().map(|process| process.group.leader()),
            restarts: self.machine.restarts(),
            last_start_s: self.last_start_s,
            log,
        }
    }
}

/// What the orchestrator starts from.
#[derive(Debug)]
pub struct Setup {
    pub settings: Arc<Settings>,
    pub reaper: Reaper,
    pub logs: Arc<LogBook>,
    pub gpus: GpuProbe,
    /// What the pod's self-check found before anything started.
    pub verification: crate::verify::Report,
    pub auth: AuthStatus,
    /// `JUPYTER_TOKEN`, when set.
    pub jupyter_token: Option<String>,
    /// The sync service, when the stack has `[sync]`.
    pub sync: Option<SyncHandle>,
}

/// Runs the pod's services; see the module documentation.
#[derive(Debug)]
pub struct Orchestrator {
    pod: Pod,
    inbox: mpsc::UnboundedReceiver<Internal>,
    requests: mpsc::Receiver<Request>,
    status: watch::Sender<Arc<Status>>,
    /// The sync service's reports; `None` without sync, or once the service has ended.
    sync_reports: Option<watch::Receiver<Arc<SyncReport>>>,
    /// Set once shutdown began: answered when every process is gone.
    shutdown: Option<oneshot::Sender<()>>,
}

impl Orchestrator {
    /// The orchestrator and the API's handle on it; nothing runs until [`Orchestrator::run`].
    pub fn new(setup: Setup) -> Result<(Self, Control), reqwest::Error> {
        let (internal, inbox) = mpsc::unbounded_channel();
        let sync_reports = setup.sync.as_ref().map(SyncHandle::subscribe);
        let pod = Pod::new(setup, internal)?;
        let (requests_tx, requests) = mpsc::channel(64);
        let (status, status_rx) = watch::channel(Arc::new(pod.snapshot()));
        let control = Control::new(requests_tx, status_rx);
        Ok((
            Self {
                pod,
                inbox,
                requests,
                status,
                sync_reports,
                shutdown: None,
            },
            control,
        ))
    }

    /// Runs until a shutdown request has stopped every service.
    pub async fn run(mut self) {
        self.pod.begin();
        self.publish();
        let mut usage_tick = tokio::time::interval(USAGE_TICK);
        loop {
            tokio::select! {
                Some(request) = self.requests.recv() => self.on_request(request),
                Some(internal) = self.inbox.recv() => {
                    self.pod.on_internal(internal);
                    self.publish();
                }
                _ = usage_tick.tick() => self.pod.record_usage(SessionEvent::Running),
                changed = sync_changed(&mut self.sync_reports) => match changed {
                    Ok(()) => {
                        self.publish();
                    }
                    Err(_) => self.sync_reports = None,
                },
            }
            if self.shutdown.is_some() && self.pod.all_down() {
                if let Some(done) = self.shutdown.take() {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        let (answer, reply) = match request {
            Request::Shutdown(done) => {
                if self.shutdown.is_none() {
                    self.shutdown = Some(done);
                    self.pod.stop_all();
                    self.publish();
                }
                return;
            }
            Request::Start(_, reply) | Request::Stop(reply) | Request::AddUser(_, reply)
                if self.shutdown.is_some() =>
            {
                (Err(Refusal::ShuttingDown), reply)
            }
            Request::Start(user, reply) => (self.pod.start(user), reply),
            Request::Stop(reply) => {
                self.pod.stop();
                (Ok(()), reply)
            }
            Request::AddUser(user, reply) => (self.pod.add_user(user), reply),
        };
        let answer = answer.map(|()| self.publish());
        let _ = reply.send(answer);
    }

    fn publish(&mut self) -> Arc<Status> {
        let status = Arc::new(self.pod.snapshot());
        self.status.send_replace(Arc::clone(&status));
        status
    }
}

/// The services and everything known about the pod.
#[derive(Debug)]
struct Pod {
    settings: Arc<Settings>,
    reaper: Reaper,
    logs: Arc<LogBook>,
    client: Client,
    gpus: GpuProbe,
    device: Device,
    attention: AttentionChoice,
    confirmed: Option<ConfirmedAttention>,
    roster: Roster,
    auth: AuthStatus,
    verification: crate::verify::Report,
    started_ms: UnixMillis,
    /// Warnings that hold for the whole run.
    warnings: Vec<String>,
    /// Whose ComfyUI the pod should run.
    user: Option<UserName>,
    comfyui: Supervised,
    jupyter: Option<(Supervised, JupyterPlan)>,
    usage: Option<UsageLog>,
    sync: Option<SyncHandle>,
    generation: u64,
    internal: mpsc::UnboundedSender<Internal>,
}

impl Pod {
    fn new(
        setup: Setup,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Result<Self, reqwest::Error> {
        let Setup {
            settings,
            reaper,
            logs,
            gpus,
            verification,
            auth,
            jupyter_token,
            sync,
        } = setup;
        let device = gpus.device();
        let attention = attention::choose(
            settings.stack.attention,
            &device,
            &settings.stack.attention_kernels,
        );
        let mut warnings = gpus.notes.clone();
        if verification.mismatch() {
            warnings.push(format!(
                "This pod is not the build it should be: {}",
                verification.summary()
            ));
        }
        if device == Device::Cpu && warnings.is_empty() {
            warnings.push("No NVIDIA GPU: ComfyUI runs on the CPU (--cpu)".to_owned());
        }
        if !auth.token_required {
            warnings.push(format!(
                "The panel has no token: anyone who reaches port {} can start and stop ComfyUI. Set {PANEL_TOKEN_ENV}.",
                settings.panel_port
            ));
        }
        let users_file = settings
            .podstack_dir()
            .join("users")
            .join(format!("{}.json", settings.pod.as_str()));
        let runtime = &settings.stack.runtime;
        let (roster, roster_warnings) =
            Roster::load(&runtime.users, runtime.allow_new_users, users_file);
        warnings.extend(roster_warnings);
        let usage = UsageLog::open(&settings.podstack_dir().join("sessions"), &settings.pod)
            .map_err(|err| warnings.push(format!("GPU hours are not recorded: {err}")))
            .ok();
        let jupyter_plan = jupyter::plan(
            &runtime.jupyter,
            jupyter_token.as_deref(),
            &settings.python,
            settings.listen,
            &settings.volume,
        );
        if let JupyterPlan::Run {
            warning: Some(warning),
            ..
        } = &jupyter_plan
        {
            warnings.push(warning.clone());
        }
        let jupyter = (jupyter_plan != JupyterPlan::Disabled)
            .then(|| (Supervised::new("JupyterLab", &settings), jupyter_plan));
        Ok(Self {
            client: local_client()?,
            comfyui: Supervised::new("ComfyUI", &settings),
            settings,
            reaper,
            logs,
            gpus,
            device,
            attention,
            confirmed: None,
            roster,
            auth,
            verification,
            started_ms: now_ms(),
            warnings,
            user: None,
            jupyter,
            usage,
            sync,
            generation: 0,
            internal,
        })
    }

    /// What runs from the start: JupyterLab when enabled (or its refusal, as a failed state).
    fn begin(&mut self) {
        tracing::info!(
            "attention: {} ({})",
            self.attention.kernel,
            self.attention.why
        );
        if self.jupyter.is_some() {
            self.drive(Kind::Jupyter, Event::StartRequested);
        }
    }

    fn start(&mut self, user: UserName) -> Result<(), Refusal> {
        if !self.roster.contains(&user) {
            return Err(Refusal::UnknownUser {
                user,
                users: self.roster.names(),
            });
        }
        let running_for = self
            .comfyui
            .process
            .as_ref()
            .and_then(|process| process.user.clone());
        let switching = running_for.as_ref().is_some_and(|running| *running != user);
        tracing::info!("start requested for {user}");
        if let Some(sync) = &self.sync {
            sync.serve(user.clone());
        }
        self.user = Some(user);
        if switching {
            // Stop the other user's ComfyUI; the state machine starts again once it exited.
            self.drive(Kind::ComfyUi, Event::StopRequested);
        }
        self.drive(Kind::ComfyUi, Event::StartRequested);
        Ok(())
    }

    fn stop(&mut self) {
        tracing::info!("stop requested");
        self.user = None;
        self.drive(Kind::ComfyUi, Event::StopRequested);
    }

    fn stop_all(&mut self) {
        tracing::info!("stopping every service");
        self.stop();
        if self.jupyter.is_some() {
            self.drive(Kind::Jupyter, Event::StopRequested);
        }
    }

    fn add_user(&mut self, user: UserName) -> Result<(), Refusal> {
        match self.roster.add(user.clone()) {
            Ok(()) => {
                tracing::info!("user {user} added");
                Ok(())
            }
            Err(AddError::Off) => Err(Refusal::NewUsersOff),
            Err(AddError::Exists(user)) => Err(Refusal::UserExists(user)),
            Err(err @ AddError::Save { .. }) => Err(Refusal::Persist(err.to_string())),
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Line {
                kind,
                generation,
                text,
            } => self.on_line(kind, generation, &text),
            Internal::Exited {
                kind,
                generation,
                termination,
            } => self.on_exit(kind, generation, termination),
            Internal::Answering { kind, generation } => {
                if self.current_generation(kind) == Some(generation) {
                    self.drive(kind, Event::ReadyProbeOk);
                }
            }
            Internal::Timer { kind, event } => self.drive(kind, event),
        }
    }

    fn on_line(&mut self, kind: Kind, generation: u64, text: &str) {
        let Some(process) = self
            .supervised(kind)
            .process
            .as_mut()
            .filter(|p| p.generation == generation)
        else {
            return;
        };
        if process.tail.len() == TAIL_LINES {
            process.tail.pop_front();
        }
        process.tail.push_back(text.to_owned());
        let events = match kind {
            Kind::ComfyUi => process.watch.line(text),
            // Jupyter Server prints `Jupyter Server 2.x is running at:` before its URLs.
            Kind::Jupyter if text.contains("is running at") => vec![LogEvent::GuiLinePrinted],
            Kind::Jupyter => Vec::new(),
        };
        for event in events {
            match event {
                LogEvent::Stage { name, percent } => {
                    self.drive(kind, Event::Stage { name, percent })
                }
                LogEvent::Attention(confirmed) => self.confirm_attention(confirmed),
                LogEvent::GuiLinePrinted => self.drive(kind, Event::ReadyLineSeen),
                LogEvent::PromptQueued => {}
                LogEvent::PromptDone { .. } => self.relieve_memory(),
                LogEvent::Failure(failure) => {
                    if let Some(process) = self.supervised(kind).process.as_mut() {
                        process.known = Some(failure);
                    }
                }
            }
        }
    }

    fn confirm_attention(&mut self, confirmed: ConfirmedAttention) {
        if let Some(warning) = attention::mismatch(&self.attention, &confirmed) {
            tracing::warn!("{warning}");
        }
        // A sage failure at run time outranks the start-up line that came before it.
        let keep_failure = matches!(self.confirmed, Some(ConfirmedAttention::SageFailed { .. }))
            && matches!(confirmed, ConfirmedAttention::Using { .. });
        if !keep_failure {
            self.confirmed = Some(confirmed);
        }
    }

    fn relieve_memory(&self) {
        let client = self.client.clone();
        let base = probe::local_base(self.settings.listen, self.settings.comfyui_port);
        let policy = self.settings.stack.runtime.memory.clone();
        tokio::spawn(async move {
            match probe::relieve_memory(&client, &base, &policy).await {
                Ok(Relief::Freed(usage)) => tracing::info!(
                    "memory relief: RAM {:.0}%{} is above the threshold (RAM {}%, VRAM {}%): asked ComfyUI to unload models and free memory",
                    usage.ram_used_percent,
                    usage.vram_used_percent.map_or(String::new(), |vram| format!(", VRAM {vram:.0}%")),
                    policy.free_above_ram_percent,
                    policy.free_above_vram_percent,
                ),
                Ok(Relief::NotNeeded(usage)) => tracing::debug!(ram = usage.ram_used_percent, "no memory relief needed"),
                Err(err) => tracing::warn!("memory relief skipped: {err}"),
            }
        });
    }

    fn on_exit(&mut self, kind: Kind, generation: u64, termination: Termination) {
        let service = self.supervised(kind);
        let Some(process) = service
            .process
            .take_if(|process| process.generation == generation)
        else {
            return;
        };
        let stopping = matches!(service.machine.state(), ServiceState::Stopping { .. });
        let reason = ExitReason::new(termination, process.oom.evidence(), process.known.clone());
        let said = if stopping {
            "stopped".to_owned()
        } else {
            reason.reason(name_of(kind))
        };
        let pid = process.group.leader();
        if stopping {
            tracing::info!("{} stopped (pid {pid}, {termination:?})", name_of(kind));
        } else {
            tracing::warn!("{said} (pid {pid})");
        }
        if kind == Kind::ComfyUi {
            if let Some(user) = &process.user {
                self.record(
                    user,
                    process.session,
                    SessionEvent::Stopped { reason: said },
                );
            }
        }
        self.drive(
            kind,
            Event::Exited {
                reason,
                last_lines: process.tail.into_iter().collect(),
            },
        );
    }

    /// Feeds `event` to the service's state machine and carries out the actions, which may
    /// raise more events (a spawn reports `Spawned`).
    fn drive(&mut self, kind: Kind, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let now = now_ms();
            let service = self.supervised(kind);
            let starting_since = match service.machine.state() {
                ServiceState::Starting { since, .. } => Some(*since),
                _ => None,
            };
            let actions = service.machine.handle(event, now);
            if let (Some(since), ServiceState::Ready { .. }) =
                (starting_since, service.machine.state())
            {
                #[allow(clippy::cast_precision_loss)] // milliseconds of a start-up
                let seconds = now.saturating_sub(since) as f64 / 1000.0;
                service.last_start_s = Some(seconds);
                tracing::info!("{} is ready after {seconds:.1} s", name_of(kind));
                if kind == Kind::ComfyUi {
                    self.record_usage(SessionEvent::Ready);
                }
            }
            for action in actions {
                events.extend(self.act(kind, action));
            }
        }
    }

    fn act(&mut self, kind: Kind, action: Action) -> Option<Event> {
        let timer = |event: Event, after: Duration, internal: mpsc::UnboundedSender<Internal>| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = internal.send(Internal::Timer { kind, event });
            });
        };
        match action {
            Action::Spawn => Some(match self.spawn(kind) {
                Ok(()) => Event::Spawned,
                Err((reason, hint)) => {
                    tracing::error!("{reason}");
                    Event::SpawnFailed { reason, hint }
                }
            }),
            Action::SignalGroup(signal) => {
                self.signal(kind, signal);
                None
            }
            Action::KillGroup => {
                tracing::warn!(
                    "{} did not stop within the grace period: SIGKILL",
                    name_of(kind)
                );
                self.signal(kind, Signal::SIGKILL);
                None
            }
            Action::ScheduleRestart { after, timer: id } => {
                timer(Event::RestartDue(id), after, self.internal.clone());
                None
            }
            Action::ScheduleStopGrace { after, timer: id } => {
                timer(Event::StopGraceElapsed(id), after, self.internal.clone());
                None
            }
            Action::ProbeReadiness => {
                self.probe_readiness(kind);
                None
            }
        }
    }

    fn signal(&self, kind: Kind, signal: Signal) {
        if let Some(process) = &self.supervised_ref(kind).process {
            process.group.signal(signal);
        }
    }

    fn probe_readiness(&mut self, kind: Kind) {
        let (port, path) = match kind {
            Kind::ComfyUi => (self.settings.comfyui_port, "/system_stats"),
            Kind::Jupyter => (self.settings.stack.runtime.jupyter.port, "/api"),
        };
        let url = format!("{}{path}", probe::local_base(self.settings.listen, port));
        let client = self.client.clone();
        let internal = self.internal.clone();
        let Some(process) = self.supervised(kind).process.as_mut() else {
            return;
        };
        let generation = process.generation;
        process.probe = Some(AbortOnDrop(tokio::spawn(async move {
            probe::wait_until_answers(&client, &url).await;
            let _ = internal.send(Internal::Answering { kind, generation });
        })));
    }

    /// Starts the service's process; the error is a reason and a hint.
    fn spawn(&mut self, kind: Kind) -> Result<(), (String, String)> {
        let (command, user) = match kind {
            Kind::ComfyUi => {
                let user = self.user.clone().ok_or_else(|| {
                    (
                        "ComfyUI was asked to start for nobody".to_owned(),
                        "start it with POST /api/start {\"user\": ...}".to_owned(),
                    )
                })?;
                (self.comfyui_command(&user)?, Some(user))
            }
            Kind::Jupyter => (self.jupyter_command()?, None),
        };
        let spawned = self.reaper.spawn(command).map_err(|err| {
            (
                format!("{} could not be started: {err}", name_of(kind)),
                "check PODSTACK_PYTHON (or --python) and the ComfyUI folder".to_owned(),
            )
        })?;
        let pid = spawned.group.leader();
        if kind == Kind::ComfyUi {
            self.confirmed = None;
            self.join_cgroup(pid);
        }
        let oom = OomWatch::start(Path::new("/proc"), Path::new("/sys/fs/cgroup"), pid);
        self.generation += 1;
        let generation = self.generation;
        let group = spawned.group;
        self.watch_process(kind, generation, spawned);
        let session = now_ms();
        let whose = user
            .as_ref()
            .map_or(String::new(), |user| format!(" for {user}"));
        tracing::info!("{} started{whose} (pid {pid})", name_of(kind));
        if let Some(user) = &user {
            self.record(user, session, SessionEvent::Started);
        }
        self.supervised(kind).process = Some(Process {
            generation,
            group,
            user,
            watch: LogWatch::default(),
            known: None,
            tail: VecDeque::new(),
            oom,
            session,
            probe: None,
        });
        Ok(())
    }

    fn comfyui_command(&self, user: &UserName) -> Result<Command, (String, String)> {
        let settings = &self.settings;
        let listen = settings.listen.to_string();
        let extra_model_paths = models::extra_paths::write(settings).map_err(|err| {
            (
                format!("the shared models folder could not be prepared: {err}"),
                "check that the volume is mounted and writable".to_owned(),
            )
        })?;
        let plan = LaunchPlan {
            python: &settings.python,
            comfyui_dir: &settings.comfyui_dir,
            listen: &listen,
            port: settings.comfyui_port,
            volume: &settings.volume,
            pod: &settings.pod,
            user,
            device: &self.device,
            attention: &self.attention,
            torch: settings
                .stack
                .torch
                .as_ref()
                .map(|torch| torch.version.as_str()),
            extra_model_paths: &extra_model_paths,
            extra_args: &settings.stack.runtime.comfyui_args,
        };
        let refused = |err: &dyn fmt::Display| {
            (
                format!("ComfyUI could not be prepared for {user}: {err}"),
                "check the volume and runtime.comfyui_args".to_owned(),
            )
        };

        let launch = ComfyUiLaunch::new(&plan).map_err(|err| refused(&err))?;
        launch.create_folders().map_err(|err| refused(&err))?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(name, value)| (name, value)))
            .current_dir(&launch.cwd);
        // Custom nodes have no business with any of the pod's secrets.
        secrets::withhold(
            &mut command,
            &[Secret::PanelToken, Secret::JupyterToken, Secret::SyncRemote],
        );
        Ok(command)
    }

    fn jupyter_command(&self) -> Result<Command, (String, String)> {
        match self.jupyter.as_ref().map(|(_, plan)| plan) {
            Some(JupyterPlan::Run { program, args, .. }) => {
                let mut command = Command::new(program);
                command.args(args).current_dir(&self.settings.volume);
                // Notebooks keep Jupyter's own token, and nothing else of the pod's secrets.
                secrets::withhold(&mut command, &[Secret::PanelToken, Secret::SyncRemote]);
                Ok(command)
            }
            Some(JupyterPlan::Refused { reason, hint }) => Err((reason.clone(), hint.clone())),
            Some(JupyterPlan::Disabled) | None => Err((
                "JupyterLab is disabled".to_owned(),
                "set runtime.jupyter.enabled = true".to_owned(),
            )),
        }
    }

    /// Moves ComfyUI into the configured memory cgroup, so its OOM counter explains a kill.
    fn join_cgroup(&mut self, pid: u32) {
        let Some(cgroup) = &self.settings.comfyui_cgroup else {
            return;
        };
        if let Err(err) = std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()) {
            let warning = format!(
                "ComfyUI could not join the cgroup {}: {err}",
                cgroup.display()
            );
            tracing::warn!("{warning}");
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }

    /// Pumps the process's output into its log and the inbox, and reports its exit once the
    /// output has drained (so the lines that explain it are read first).
    fn watch_process(&self, kind: Kind, generation: u64, spawned: Spawned) {
        let Spawned {
            group,
            stdout,
            stderr,
            exited,
        } = spawned;
        let pump = |pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            let internal = self.internal.clone();
            tokio::spawn(pump_lines(
                pipe,
                Arc::clone(&self.logs),
                kind.log(),
                move |line| {
                    let _ = internal.send(Internal::Line {
                        kind,
                        generation,
                        text: line.text,
                    });
                },
            ))
        };
        let pumps = [pump(Box::new(stdout)), pump(Box::new(stderr))];
        let internal = self.internal.clone();
        group.report_exit(exited, pumps, move |termination| {
            let _ = internal.send(Internal::Exited {
                kind,
                generation,
                termination,
            });
        });
    }

    fn record_usage(&mut self, event: SessionEvent) {
        let Some((user, session)) = self
            .comfyui
            .process
            .as_ref()
            .and_then(|process| Some((process.user.clone()?, process.session)))
        else {
            return;
        };
        self.record(&user, session, event);
    }

    fn record(&mut self, user: &UserName, session: UnixMillis, event: SessionEvent) {
        let gpu = match &self.device {
            Device::Gpu(gpu) => Some(gpu.name.clone()),
            Device::Cpu => None,
        };
        let Some(usage) = &mut self.usage else {
            return;
        };
        let line = SessionLine {
            session,
            at: now_ms(),
            user: user.to_string(),
            gpu,
            event,
        };
        if let Err(err) = usage.record(&line) {
            tracing::warn!("{err}");
        }
    }

    fn all_down(&self) -> bool {
        self.comfyui.process.is_none()
            && self
                .jupyter
                .as_ref()
                .is_none_or(|(service, _)| service.process.is_none())
    }

    fn current_generation(&self, kind: Kind) -> Option<u64> {
        self.supervised_ref(kind)
            .process
            .as_ref()
            .map(|p| p.generation)
    }

    fn supervised(&mut self, kind: Kind) -> &mut Supervised {
        match (kind, &mut self.jupyter) {
            (Kind::Jupyter, Some((jupyter, _))) => jupyter,
            _ => &mut self.comfyui,
        }
    }

    fn supervised_ref(&self, kind: Kind) -> &Supervised {
        match (kind, &self.jupyter) {
            (Kind::Jupyter, Some((jupyter, _))) => jupyter,
            _ => &self.comfyui,
        }
    }

    fn snapshot(&self) -> Status {
        let settings = &self.settings;
        let stack = &settings.stack;
        let mismatch = self
            .confirmed
            .as_ref()
            .and_then(|confirmed| attention::mismatch(&self.attention, confirmed));
        let mut warnings = self.warnings.clone();
        warnings.extend(mismatch.clone());
        let jupyter = match &self.jupyter {
            Some((service, _)) => Slot::Service(service.status("/api/logs?service=jupyter")),
            None => Slot::Off(SlotOff {
                state: "disabled",
                note: "JupyterLab is off (runtime.jupyter.enabled)".to_owned(),
            }),
        };
        Status {
            stack: StackStatus {
                name: stack.name.clone(),
                version: stack.version.clone(),
                digest: settings.digest.clone(),
                podstack: env!("CARGO_PKG_VERSION").to_owned(),
            },
            verification: self.verification.clone(),
            pod: settings.pod.as_str().to_owned(),
            started_ms: self.started_ms,
            user: self.user.as_ref().map(ToString::to_string),
            users: self.roster.names(),
            allow_new_users: self.roster.allows_new(),
            gpus: self.gpus.gpus.clone(),
            cpu_mode: self.device == Device::Cpu,
            attention: AttentionStatus {
                requested: self.attention.clone(),
                confirmed: self.confirmed.clone(),
                mismatch,
            },
            services: Services {
                comfyui: self.comfyui.status("/api/logs?service=comfyui"),
                jupyter,
                sync: match &self.sync {
                    Some(sync) => Slot::Service(sync.report().service.clone()),
                    None => Slot::Off(SlotOff {
                        state: "not-configured",
                        note: "no [sync] section in the stack manifest".to_owned(),
                    }),
                },
            },
            comfyui_port: settings.comfyui_port,
            jupyter_port: self.jupyter.as_ref().map(|_| stack.runtime.jupyter.port),
            runpod_pod_id: settings.runpod_pod_id.clone(),
            auth: self.auth.clone(),
            warnings,
            sync: self.sync.as_ref().map(SyncHandle::report),
        }
    }
}

/// The next report of the sync service; never, without one.
async fn sync_changed(
    reports: &mut Option<watch::Receiver<Arc<SyncReport>>>,
) -> Result<(), watch::error::RecvError> {
    match reports {
        Some(reports) => reports.changed().await,
        None => std::future::pending().await,
    }
}

fn name_of(kind: Kind) -> &'static str {
    match kind {
        Kind::ComfyUi => "ComfyUI",
        Kind::Jupyter => "JupyterLab",
    }
}
