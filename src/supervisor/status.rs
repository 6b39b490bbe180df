//! The pod's status as the panel and `/api/status` show it: one snapshot the orchestrator
//! publishes after every change, serialised once as it is published ([`PublishedStatus`]: a
//! reader adds only the clock and its links), and the same figures as Prometheus text for
//! `/metrics`.
//!
//! Every service's state comes from its state machine; the page renders it and never guesses
//! from failed polls (L17-L19). The API adds the server's clock to every answer, so a client
//! shows elapsed times without trusting its own.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::attention::{AttentionChoice, ConfirmedAttention};
use super::gpu::Gpu;
use super::host::{HostSample, QueueSample};
use super::log_watch::{ImportFailure, PromptProgress};
use super::slots::SlotIndex;
use crate::service::state::{ServiceState, UnixMillis};
use crate::service::status::ServiceStatus;
use crate::sync::SyncReport;

/// The whole pod.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub stack: StackStatus,
    /// The pod against its build: digest current, stale or unknown; drifted files and packages.
    pub verification: crate::verify::Report,
    pub pod: String,
    /// When the supervisor started.
    pub started_ms: UnixMillis,
    /// Whose ComfyUI the first slot runs (or is starting, or failed for); `None` when stopped.
    /// Each slot's is in `slots`.
    pub user: Option<String>,
    pub users: Vec<String>,
    pub allow_new_users: bool,
    /// Every GPU found; empty in CPU mode.
    pub gpus: Vec<Gpu>,
    pub cpu_mode: bool,
    /// The first slot's attention.
    pub attention: AttentionStatus,
    /// The first slot's ComfyUI as `comfyui`, JupyterLab and the sync.
    pub services: Services,
    /// Every ComfyUI slot: who, its port and GPUs, its ComfyUI.
    pub slots: Vec<SlotStatus>,
    /// The first slot's port.
    pub comfyui_port: u16,
    pub jupyter_port: Option<u16>,
    /// RUNPOD_POD_ID when the pod runs on RunPod: its ports are reached through RunPod's proxy.
    pub runpod_pod_id: Option<String>,
    /// Whether the panel needs its token, and whether the status is readable without it.
    pub auth: AuthStatus,
    /// Things a person should know, in plain words.
    pub warnings: Vec<String>,
    /// Custom nodes the first slot's ComfyUI could not import (each also a warning).
    pub import_failed: Vec<ImportFailure>,
    /// The first slot's running prompt's sampler progress, from its progress bar in its log.
    pub prompt: Option<PromptProgress>,
    /// The machine's newest sample (GPUs, CPU, RAM, the volume, ComfyUI's queue).
    pub host: Option<Arc<HostSample>>,
}

/// One ComfyUI slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub slot: SlotIndex,
    pub port: u16,
    /// Whose session it runs (or is starting, or failed for); `None` when free.
    pub user: Option<String>,
    /// Its GPUs; empty in CPU mode.
    pub gpus: Vec<Gpu>,
    pub comfyui: ServiceStatus,
    pub attention: AttentionStatus,
    pub import_failed: Vec<ImportFailure>,
    pub prompt: Option<PromptProgress>,
    /// Its ComfyUI's queue in the newest host sample; `None` until one asked it while ready.
    pub queue: Option<QueueSample>,
    /// Every slot on this slot's GPUs, itself included, when it shares them; empty when the
    /// GPUs are its own. nvidia-smi's memory figures are per GPU, so a shared GPU's use is
    /// that of all these slots together.
    pub gpus_shared_by: Vec<SlotIndex>,
    /// Whether a browser can open its ComfyUI: false on RunPod for a slot whose port the
    /// pod's template does not publish (its link is then `null`).
    pub published: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackStatus {
    pub name: String,
    pub version: String,
    /// `sha256:<64 hex>` of the manifest the image was built from, when known.
    pub digest: Option<String>,
    pub podstack: String,
}

/// Requested (podstack's choice) and confirmed (ComfyUI's own log line, L9).
#[derive(Debug, Clone, Serialize)]
pub struct AttentionStatus {
    pub requested: AttentionChoice,
    /// `None` until ComfyUI printed its attention line.
    pub confirmed: Option<ConfirmedAttention>,
    /// Set when ComfyUI does not run what was requested.
    pub mismatch: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthStatus {
    pub token_required: bool,
    pub anonymous_status: bool,
}

/// Each service of the pod.
#[derive(Debug, Clone, Serialize)]
pub struct Services {
    pub comfyui: ServiceStatus,
    pub jupyter: OptionalService,
    pub sync: OptionalService,
}

/// A service that may be run by this pod.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OptionalService {
    Service(ServiceStatus),
    Off(ServiceOff),
}

/// A service with nothing to run.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceOff {
    /// `disabled` (the manifest turns it off) or `not-configured`.
    pub state: &'static str,
    pub note: String,
}

/// Where a port of this pod is reached from a browser: RunPod's proxy when the pod runs there,
/// else the host the browser reached the panel at (`request_host`, a Host header).
pub fn public_url(
    runpod_pod_id: Option<&str>,
    port: u16,
    request_host: Option<&str>,
) -> Option<String> {
    if let Some(id) = runpod_pod_id {
        return Some(format!("https://{id}-{port}.proxy.runpod.net"));
    }
    let host = request_host?;
    // `[::1]:7777` and `example:7777` carry a port to drop; Host headers bracket IPv6.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    Some(format!("http://{name}:{port}"))
}

/// The status as published: the snapshot and its JSON, serialised once for every reader.
#[derive(Debug)]
pub struct PublishedStatus {
    pub status: Arc<Status>,
    /// The JSON object without its closing brace: readers append their clock and links.
    open_json: String,
}

impl PublishedStatus {
    pub fn new(status: Status) -> Self {
        let mut open_json = serde_json::to_string(&status).unwrap_or_else(|_| "{}".to_owned());
        open_json.pop();
        Self {
            status: Arc::new(status),
            open_json,
        }
    }

    /// Whether `other` would answer the same JSON.
    pub fn same_as(&self, other: &Self) -> bool {
        self.open_json == other.open_json
    }

    /// The JSON of `/api/status` at `now`, for a browser that reached the panel at `host`:
    /// the status, `now_ms`, `uptime_s`, the `comfyui_url` and `jupyter_url` it can open, and
    /// `slot_urls`, each slot's ComfyUI by slot number.
    pub fn json_at(&self, now: UnixMillis, host: Option<&str>) -> String {
        let status = &self.status;
        let link = |port: Option<u16>| {
            let url = port.and_then(|port| status.public_url(port, host));
            serde_json::to_string(&url).unwrap_or_else(|_| "null".to_owned())
        };
        let mut json = String::with_capacity(self.open_json.len() + 160);
        json.push_str(&self.open_json);
        if json.len() > 1 {
            json.push(',');
        }
        let slot_urls: Vec<String> = status
            .slots
            .iter()
            .map(|slot| link(slot.published.then_some(slot.port)))
            .collect();
        let _ = write!(
            json,
            r#""now_ms":{now},"uptime_s":{},"comfyui_url":{},"jupyter_url":{},"slot_urls":[{}]}}"#,
            status.uptime_s(now),
            link(Some(status.comfyui_port)),
            link(status.jupyter_port),
            slot_urls.join(","),
        );
        json
    }
}

/// Every state a service can be in, for one-hot metrics.
const STATES: [&str; 6] = [
    "stopped",
    "starting",
    "ready",
    "stopping",
    "backing-off",
    "failed",
];

/// The serialised name of a state.
pub fn state_name(state: &ServiceState) -> &'static str {
    match state {
        ServiceState::Stopped => "stopped",
        ServiceState::Starting { .. } => "starting",
        ServiceState::Ready { .. } => "ready",
        ServiceState::Stopping { .. } => "stopping",
        ServiceState::BackingOff { .. } => "backing-off",
        ServiceState::Failed { .. } => "failed",
    }
}

impl Status {
    /// Where a port of this pod is reached from a browser; see [`public_url`].
    pub fn public_url(&self, port: u16, request_host: Option<&str>) -> Option<String> {
        public_url(self.runpod_pod_id.as_deref(), port, request_host)
    }

    /// Whole seconds since the supervisor started.
    pub fn uptime_s(&self, now: UnixMillis) -> u64 {
        now.saturating_sub(self.started_ms) / 1000
    }

    /// The Prometheus text exposition of the status at `now`, with the sync service's figures
    /// when the pod syncs.
    pub fn metrics(&self, now: UnixMillis, sync: Option<&SyncReport>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        #[allow(clippy::cast_precision_loss)] // seconds of uptime, far below 2^53
        let uptime = self.uptime_s(now) as f64;
        metric(
            "podstack_uptime_seconds",
            "gauge",
            "Seconds since the supervisor started.",
            &[(String::new(), uptime)],
        );
        // Each service's labels: ComfyUI's carry its slot.
        let services: Vec<(String, &ServiceStatus)> = self
            .slots
            .iter()
            .map(|slot| {
                (
                    format!("service=\"comfyui\",slot=\"{}\"", slot.slot),
                    &slot.comfyui,
                )
            })
            .chain(match &self.services.jupyter {
                OptionalService::Service(jupyter) => {
                    Some(("service=\"jupyter\"".to_owned(), jupyter))
                }
                OptionalService::Off(_) => None,
            })
            .chain(match &self.services.sync {
                OptionalService::Service(sync) => Some(("service=\"sync\"".to_owned(), sync)),
                OptionalService::Off(_) => None,
            })
            .collect();
        let state_samples: Vec<(String, f64)> = services
            .iter()
            .flat_map(|(name, service)| {
                let current = state_name(&service.state);
                STATES.iter().map(move |state| {
                    (
                        format!("{{{name},state=\"{state}\"}}"),
                        f64::from(u8::from(current == *state)),
                    )
                })
            })
            .collect();
        metric(
            "podstack_service_state",
            "gauge",
            "1 for the state each service is in, 0 for the others.",
            &state_samples,
        );
        #[allow(clippy::cast_precision_loss)] // restart counts are small
        let restarts: Vec<(String, f64)> = services
            .iter()
            .map(|(name, service)| (format!("{{{name}}}"), service.restarts as f64))
            .collect();
        metric(
            "podstack_service_restarts_total",
            "counter",
            "Restarts after failures.",
            &restarts,
        );
        let latency: Vec<(String, f64)> = services
            .iter()
            .filter_map(|(name, service)| Some((format!("{{{name}}}"), service.last_start_s?)))
            .collect();
        metric(
            "podstack_service_start_seconds",
            "gauge",
            "Seconds from the start request to ready, of the last start.",
            &latency,
        );
        if let Some(sync) = sync {
            sync.metrics(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_go_through_runpods_proxy_or_the_panels_host() {
        assert_eq!(
            public_url(Some("abc123"), 8188, Some("ignored:7777")).as_deref(),
            Some("https://abc123-8188.proxy.runpod.net")
        );
        assert_eq!(
            public_url(None, 8188, Some("10.0.0.5:7777")).as_deref(),
            Some("http://10.0.0.5:8188")
        );
        assert_eq!(
            public_url(None, 8188, Some("[::1]:7777")).as_deref(),
            Some("http://[::1]:8188")
        );
        assert_eq!(
            public_url(None, 8188, Some("pod.example")).as_deref(),
            Some("http://pod.example:8188")
        );
        assert_eq!(public_url(None, 8188, None), None);
    }

    #[test]
    fn service_state_names_match_their_json() {
        let states = [
            ServiceState::Stopped,
            ServiceState::Starting {
                since: 0,
                stage: String::new(),
                percent: 0,
            },
            ServiceState::Ready { since: 0 },
            ServiceState::Stopping { since: 0 },
            ServiceState::BackingOff {
                since: 0,
                until: 0,
                attempt: 1,
                reason: String::new(),
                hint: String::new(),
                last_lines: Vec::new(),
            },
            ServiceState::Failed {
                since: 0,
                reason: String::new(),
                hint: String::new(),
                exit: None,
                last_lines: Vec::new(),
            },
        ];
        for state in states {
            let json = serde_json::to_value(&state).unwrap();
            assert_eq!(json["state"], state_name(&state));
            assert!(STATES.contains(&state_name(&state)));
        }
    }
}
