//! The orchestrator: one task that owns every service's state machine and carries out its
//! actions (`drive`: spawn, signal, timers, readiness probes), starts the processes
//! (`launch`), reads their output for ComfyUI's stages, the attention it confirms and finished
//! prompts (`lines`), asks the running services over HTTP (`probes`: readiness, memory
//! relief), explains exits (`exits`), records usage (`usage`), and publishes the status after
//! every change (`snapshot`, the sync service's reports included). It tells the sync service
//! which users the pod serves: their folders are the pod's to sync. Requests from the API
//! ([`Control`]) are handled one at a time (`pod`) and answered at once with the new status
//! (L14), so concurrent starts give one ComfyUI and starting another user stops the current
//! one first.

mod drive;
mod exits;
mod launch;
mod lines;
mod pod;
mod probes;
mod slot;
mod snapshot;
mod usage;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use tokio::sync::{mpsc, oneshot, watch};

use super::control::{Control, Refusal, Request};
use super::gpu::GpuProbe;
use super::host::{HostHistory, HostSample};
use super::jupyter::JupyterPlan;
use super::log_watch::LogWatch;
use super::settings::Settings;
use super::slots::SlotIndex;
use super::status::{AuthStatus, PublishedStatus};
use super::usage::{SessionEvent, UsageLog};
use super::users::Roster;
use crate::manifest::MAX_SLOTS;
use crate::service::exit_reason::{KnownFailure, OomWatch, Termination};
use crate::service::logs::{LogBook, SharedLine};
use crate::service::process::{ProcessGroup, Reaper};
use crate::service::state::{Event, Service, UnixMillis};
use crate::service::status::ServiceStatus;
use crate::service::task::AbortOnDrop;
use crate::sync::{SyncHandle, SyncReport};
use crate::user::UserName;
use slot::Slot;

/// Last log lines kept for a failure report.
const TAIL_LINES: usize = 30;
/// How often a running session is noted in the usage log.
const USAGE_TICK: Duration = Duration::from_secs(300);

/// The services the orchestrator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The ComfyUI of a slot.
    ComfyUi(SlotIndex),
    Jupyter,
}

impl Kind {
    /// The name of its log.
    fn log(self) -> &'static str {
        match self {
            Self::ComfyUi(slot) => comfyui_log(slot),
            Self::Jupyter => "jupyter",
        }
    }
}

/// The log of each slot's ComfyUI: `comfyui` for the first, as before slots, then `comfyui-1`...
pub const COMFYUI_LOGS: [&str; MAX_SLOTS as usize] = [
    "comfyui",
    "comfyui-1",
    "comfyui-2",
    "comfyui-3",
    "comfyui-4",
    "comfyui-5",
    "comfyui-6",
    "comfyui-7",
];

/// The log of a slot's ComfyUI.
pub fn comfyui_log(slot: SlotIndex) -> &'static str {
    COMFYUI_LOGS
        .get(usize::from(slot.0))
        .copied()
        .unwrap_or(COMFYUI_LOGS[0])
}

/// News from the processes, probes and timers.
#[derive(Debug)]
enum Internal {
    Line {
        kind: Kind,
        generation: u64,
        line: SharedLine,
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
            expected_start_s: None,
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
    /// The machine's samples, the newest of which the status shows.
    pub host: Arc<HostHistory>,
}

/// Runs the pod's services; see the module documentation.
#[derive(Debug)]
pub struct Orchestrator {
    pod: Pod,
    inbox: mpsc::UnboundedReceiver<Internal>,
    requests: mpsc::Receiver<Request>,
    status: watch::Sender<Arc<PublishedStatus>>,
    /// The sync service's reports; `None` without sync, or once the service has ended.
    sync_reports: Option<watch::Receiver<Arc<SyncReport>>>,
    /// News of each host sample; `None` once the sampler has ended.
    host_samples: Option<watch::Receiver<Option<Arc<HostSample>>>>,
    /// Set once shutdown began: answered when every process is gone.
    shutdown: Option<oneshot::Sender<()>>,
}

impl Orchestrator {
    /// The orchestrator and the API's handle on it; nothing runs until [`Orchestrator::run`].
    pub fn new(setup: Setup) -> Result<(Self, Control), reqwest::Error> {
        let (internal, inbox) = mpsc::unbounded_channel();
        let sync_reports = setup.sync.as_ref().map(SyncHandle::subscribe);
        let host_samples = Some(setup.host.subscribe());
        let pod = Pod::new(setup, internal)?;
        let (requests_tx, requests) = mpsc::channel(64);
        let (status, status_rx) = watch::channel(Arc::new(PublishedStatus::new(pod.snapshot())));
        let control = Control::new(requests_tx, status_rx);
        Ok((
            Self {
                pod,
                inbox,
                requests,
                status,
                sync_reports,
                host_samples,
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
                changed = changed(&mut self.sync_reports) => match changed {
                    Ok(()) => {
                        self.publish();
                    }
                    Err(_) => self.sync_reports = None,
                },
                sampled = changed(&mut self.host_samples) => match sampled {
                    Ok(()) => {
                        self.publish();
                    }
                    Err(_) => self.host_samples = None,
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
            Request::Start(_, reply) | Request::Stop(_, reply) | Request::AddUser(_, reply)
                if self.shutdown.is_some() =>
            {
                (Err(Refusal::ShuttingDown), reply)
            }
            Request::Start(start, reply) => (self.pod.start(start), reply),
            Request::Stop(stop, reply) => (self.pod.stop(&stop), reply),
            Request::AddUser(user, reply) => (self.pod.add_user(user), reply),
        };
        let answer = answer.map(|()| self.publish());
        let _ = reply.send(answer);
    }

    /// Publishes the status when it changed (a log line that moved nothing wakes no reader),
    /// and returns the latest.
    fn publish(&mut self) -> Arc<PublishedStatus> {
        let next = PublishedStatus::new(self.pod.snapshot());
        self.status.send_if_modified(|current| {
            let changed = !current.same_as(&next);
            if changed {
                *current = Arc::new(next);
            }
            changed
        });
        Arc::clone(&self.status.borrow())
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
    roster: Roster,
    auth: AuthStatus,
    verification: crate::verify::Report,
    started_ms: UnixMillis,
    /// Warnings that hold for the whole run.
    warnings: Vec<String>,
    /// The ComfyUIs, one a slot, the first on `runtime.comfyui_port`.
    slots: Vec<Slot>,
    jupyter: Option<(Supervised, JupyterPlan)>,
    usage: Option<UsageLog>,
    sync: Option<SyncHandle>,
    host: Arc<HostHistory>,
    generation: u64,
    internal: mpsc::UnboundedSender<Internal>,
}

/// The next news on a channel; never, without one.
async fn changed<T>(news: &mut Option<watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match news {
        Some(news) => news.changed().await,
        None => std::future::pending().await,
    }
}

fn name_of(kind: Kind) -> &'static str {
    match kind {
        Kind::ComfyUi(_) => "ComfyUI",
        Kind::Jupyter => "JupyterLab",
    }
}
