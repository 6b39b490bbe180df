//! The pod's supervisor, `podstack supervise`: PID 1 of the image. It checks the pod against
//! its build (refusing to start under the refuse policy), probes the GPU, runs
//! ComfyUI for the active user (and JupyterLab when enabled) under a per-service state
//! machine, syncs the served users' folders (when the stack has `[sync]`), serves the control
//! panel's API, and on SIGTERM/SIGINT stops every service, runs the final sync and leaves no
//! process behind.
//!
//! Exit codes: 0 stopped by SIGTERM/SIGINT after every service stopped; 1 could not start (a
//! stack.json, folder, port or token file it cannot use, or a stale or drifted pod under the
//! refuse policy) or the panel server failed; 2 usage.

pub mod api;
pub mod api_error;
pub mod app_state;
pub mod assets;
pub mod attention;
pub mod auth;
pub mod control;
pub mod fleet;
pub mod generated_token;
pub mod gpu;
pub mod host;
pub mod jupyter;
pub mod launch;
pub mod log_watch;
pub mod login_limit;
pub mod models;
pub mod outputs;
pub mod panel_server;
pub mod placement;
pub mod probe;
pub mod run;
pub mod self_check;
pub mod settings;
pub mod slots;
pub mod status;
pub mod stream_slots;
pub mod usage;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

pub use settings::SuperviseArgs;

use crate::outcome::Outcome;
use crate::service::logs::{LogBook, LogLimits, SupervisorWriter};
use crate::service::process;
use crate::service::secrets::{JUPYTER_TOKEN_ENV, PANEL_TOKEN_ENV};
use app_state::AppState;
use auth::PanelAuth;
use run::{Orchestrator, Setup};
use settings::Settings;
use status::AuthStatus;

use crate::sync::SyncSetup;

/// How long the panel may take to close its connections (live log streams never end on their own).
const SERVER_CLOSE: Duration = Duration::from_secs(1);
/// Beyond the final sync's deadline: rclone's stop (SIGTERM, then SIGKILL after 3 s).
const SYNC_STOP: Duration = Duration::from_secs(5);

/// Runs the pod until SIGTERM or SIGINT; see the module documentation for the exit codes.
pub fn supervise(args: SuperviseArgs) -> Outcome {
    let settings = match Settings::new(args) {
        Ok(settings) => settings,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {}\n  hint: {}", problem.what, problem.hint);
            }
            return Outcome::Failed;
        }
    };
    let token = match PanelAuth::token_from_env() {
        Ok(token) => token,
        Err(err) => {
            eprintln!(
                "error: {err}\n  hint: mount the secret there, or set {} instead",
                PANEL_TOKEN_ENV
            );
            return Outcome::Failed;
        }
    };
    let token = match token {
        Some(token) => Some(token),
        None if settings.runpod_pod_id.is_some() && !settings.stack.runtime.open_panel => {
            match generated_token::load_or_make(&settings.podstack_dir()) {
                Ok(stored) => {
                    // Straight to the container log, once: never into the log files or the API.
                    match &stored {
                        generated_token::StoredToken::Made { token, path } => eprintln!(
                            "[{}] this pod runs on RunPod without a panel token: generated one, stored in {} (mode 0600). Panel token: {token}",
                            crate::service::logs::SUPERVISOR,
                            path.display()
                        ),
                        generated_token::StoredToken::Read { path, .. } => eprintln!(
                            "[{}] no panel token set: using the one generated earlier, in {}",
                            crate::service::logs::SUPERVISOR,
                            path.display()
                        ),
                    }
                    Some(stored.token().to_owned())
                }
                Err(err) => {
                    eprintln!(
                        "error: {err}\n  hint: set {PANEL_TOKEN_ENV}, or runtime.open_panel = true to serve the panel without a token"
                    );
                    return Outcome::Failed;
                }
            }
        }
        None => None,
    };
    let log_dir = settings
        .podstack_dir()
        .join("logs")
        .join(settings.pod.as_str());
    let logs = Arc::new(LogBook::new(Some(log_dir), LogLimits::default(), true));
    let filter = EnvFilter::try_from_env("PODSTACK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(SupervisorWriter(Arc::clone(&logs)))
        .with_ansi(false)
        .with_target(false)
        // The log files stamp every line themselves.
        .without_time()
        .with_env_filter(filter)
        .try_init();
    if let Err(err) = process::become_subreaper() {
        tracing::warn!(
            "cannot become the child subreaper ({err}); orphans of services go to PID 1"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return Outcome::Failed;
        }
    };
    let verification = match self_check::self_check(&settings, &runtime) {
        Ok(report) => report,
        Err(refusal) => {
            // The supervisor's log reaches stderr (docker logs) and the log file on the volume.
            tracing::error!("{refusal}");
            return Outcome::Failed;
        }
    };
    // Before the reaper starts: the probe waits for its own child.
    let gpus = gpu::probe(&settings.nvidia_smi, Path::new("/proc"));
    runtime.block_on(serve(settings, token, logs, gpus, verification))
}

async fn serve(
    settings: Settings,
    token: Option<String>,
    logs: Arc<LogBook>,
    gpus: gpu::GpuProbe,
    verification: crate::verify::Report,
) -> Outcome {
    let (Ok(mut sigterm), Ok(mut sigint)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot handle SIGTERM and SIGINT");
        return Outcome::Failed;
    };
    let reaper = match process::Reaper::start() {
        Ok(reaper) => reaper,
        Err(err) => {
            tracing::error!("cannot watch for exited children: {err}");
            return Outcome::Failed;
        }
    };
    let address = (settings.panel_listen, settings.panel_port);
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(
                "cannot listen on {}:{} for the control panel: {err}; set runtime.panel_port or PODSTACK_PANEL_PORT to a free port",
                address.0,
                address.1
            );
            return Outcome::Failed;
        }
    };
    let sync = match settings.stack.sync.clone() {
        Some(config) => match crate::sync::start(SyncSetup {
            sync: config,
            volume: settings.volume.clone(),
            pod: settings.pod.as_str().to_owned(),
            rclone: settings.rclone.clone(),
            reaper: reaper.clone(),
            logs: Arc::clone(&logs),
            env: std::env::vars().collect(),
        }) {
            Ok(sync) => Some(sync),
            Err(err) => {
                tracing::error!("cannot set up the HTTP client for rclone: {err}");
                return Outcome::Failed;
            }
        },
        None => None,
    };
    let anonymous_status = settings.stack.runtime.anonymous_status;
    let auth = Arc::new(PanelAuth::new(token.as_deref(), anonymous_status));
    let settings = Arc::new(settings);
    let grace = settings.stack.runtime.stop_grace.0;
    let fleet_source = Arc::new(fleet::FleetSource::new(
        settings.volume.clone(),
        &verification.freshness,
    ));
    let beating = fleet::Beating {
        dir: fleet::pods_dir(&settings.volume),
        template: fleet::Heartbeat {
            format: fleet::heartbeat::FORMAT,
            pod: settings.pod.as_str().to_owned(),
            stack: settings.stack.name.clone(),
            version: settings.stack.version.clone(),
            digest: settings.digest.clone(),
            users: Vec::new(),
            gpus: gpus.gpus.iter().map(|gpu| gpu.name.clone()).collect(),
            started_ms: crate::service::clock::now_ms(),
            beat_ms: 0,
            interval_ms: u64::try_from(settings.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
        },
        interval: settings.heartbeat_interval,
    };
    let host = Arc::new(host::HostHistory::new(settings.host_sample_interval));
    let nvidia_smi = (!gpus.gpus.is_empty()).then(|| settings.nvidia_smi.clone());
    let setup = Setup {
        host: Arc::clone(&host),
        settings: Arc::clone(&settings),
        reaper: reaper.clone(),
        logs: Arc::clone(&logs),
        gpus,
        verification,
        auth: AuthStatus {
            token_required: auth.enabled(),
            anonymous_status,
        },
        jupyter_token: std::env::var(JUPYTER_TOKEN_ENV).ok(),
        sync: sync.clone(),
    };
    let (orchestrator, control) = match Orchestrator::new(setup) {
        Ok(parts) => parts,
        Err(err) => {
            tracing::error!("cannot set up the HTTP client for the services: {err}");
            return Outcome::Failed;
        }
    };
    let orchestrator = tokio::spawn(orchestrator.run());
    let (stop_beats, beats_stop) = tokio::sync::oneshot::channel();
    // Every slot's user: the fleet view lists who works on this pod.
    let beats = tokio::spawn(beating.run(
        control.watch(),
        |published: &Arc<status::PublishedStatus>| {
            published
                .status
                .slots
                .iter()
                .filter_map(|slot| slot.user.clone())
                .collect()
        },
        beats_stop,
    ));
    let sampler = match crate::service::loopback::local_client() {
        Ok(client) => tokio::spawn(
            host::Sampler {
                history: Arc::clone(&host),
                nvidia_smi,
                reaper: reaper.clone(),
                proc_root: "/proc".into(),
                volume: settings.volume.clone(),
                control: control.clone(),
                listen: settings.listen,
                client,
            }
            .run(),
        ),
        Err(err) => {
            tracing::error!("cannot set up the HTTP client for the host samples: {err}");
            return Outcome::Failed;
        }
    };
    let models = match models::Models::new(&settings) {
        Ok(models) => models,
        Err(err) => {
            tracing::error!("cannot set up the HTTP client for model downloads: {err}");
            return Outcome::Failed;
        }
    };
    models.refresh(settings.stack.runtime.models.fetch_at_start);
    let app = api::router(AppState {
        control: control.clone(),
        logs,
        auth,
        ui_dir: Arc::new(settings.ui_dir.clone()),
        outputs_dir: Arc::new(settings.volume.join("output")),
        sessions_dir: Arc::new(settings.podstack_dir().join("sessions")),
        models,
        sync: sync.clone(),
        fleet: fleet_source,
        streams: stream_slots::StreamSlots::default(),
        login_limit: Arc::default(),
        host,
    });
    let (close, closing) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(panel_server::serve(
        listener,
        app,
        panel_server::ConnectionLimits::for_this_process(),
        async {
            let _ = closing.await;
        },
    ));
    tracing::info!("control panel listening on {}:{}", address.0, address.1);
    if let Some(user) = settings.start_user.clone() {
        let start = control::StartRequest {
            user: user.clone(),
            slot: None,
            force: false,
        };
        if let Err(refusal) = control.start(start).await {
            tracing::error!("cannot start ComfyUI for {user} at boot: {refusal}");
        }
    }
    let mut outcome = Outcome::Ok;
    let why = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        ended = &mut server => {
            tracing::error!("the control panel stopped serving: {ended:?}");
            outcome = Outcome::Failed;
            "the panel's end"
        }
    };
    tracing::info!(
        "{why}: stopping every service (grace {})",
        settings.stack.runtime.stop_grace
    );
    let deadline = grace + Duration::from_secs(5);
    if tokio::time::timeout(deadline, control.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("services did not stop within {} s", deadline.as_secs());
    }
    if let Some(sync) = &sync {
        // The final sync, with ComfyUI stopped: nothing is being written any more.
        let final_sync = settings
            .stack
            .sync
            .as_ref()
            .map_or(Duration::ZERO, |config| config.final_sync.0);
        if tokio::time::timeout(final_sync + SYNC_STOP, sync.finish())
            .await
            .is_err()
        {
            tracing::warn!("the sync service did not stop in time");
        }
    }
    orchestrator.abort();
    // A clean stop: this pod leaves the fleet instead of falling silent.
    let _ = stop_beats.send(());
    let _ = beats.await;
    sampler.abort();
    let _ = close.send(());
    if tokio::time::timeout(SERVER_CLOSE, &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    if tokio::time::timeout(deadline, reaper.wait_no_children(Duration::from_secs(1)))
        .await
        .is_err()
    {
        tracing::error!("some child processes could not be reaped");
        outcome = Outcome::Failed;
    }
    tracing::info!("stopped");
    outcome
}
