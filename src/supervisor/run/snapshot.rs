//! The pod's status as the orchestrator publishes it after every change: the stack, the
//! verification, users, GPUs, attention requested and confirmed, every service slot (the
//! sync's report included) and the warnings.

use std::time::Duration;

use super::Pod;
use crate::service::status::ServiceStatus;
use crate::supervisor::attention;
use crate::supervisor::gpu::Device;
use crate::supervisor::status::{
    AttentionStatus, OptionalService, ServiceOff, Services, StackStatus, Status,
};
use crate::sync::SyncHandle;

impl Pod {
    pub(super) fn snapshot(&self) -> Status {
        let settings = &self.settings;
        let stack = &settings.stack;
        let mismatch = self
            .confirmed
            .as_ref()
            .and_then(|confirmed| attention::mismatch(&self.attention, confirmed));
        let mut warnings = self.warnings.clone();
        warnings.extend(mismatch.clone());
        let host = self.host.latest();
        warnings.extend(
            host.as_ref()
                .and_then(|sample| sample.volume.as_ref()?.warning()),
        );
        warnings.extend(self.import_failed.iter().map(|failure| {
            format!(
                "Custom node {} failed to import (IMPORT FAILED): its nodes are missing from every workflow; the ComfyUI log has the error",
                failure.node
            )
        }));
        let jupyter = match &self.jupyter {
            Some((service, _)) => {
                OptionalService::Service(service.status("/api/logs?service=jupyter"))
            }
            None => OptionalService::Off(ServiceOff {
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
                comfyui: ServiceStatus {
                    expected_start_s: Some(expected_start_s(
                        stack.runtime.expected_start.as_ref().map(|d| d.0),
                        self.comfyui.last_start_s,
                    )),
                    ..self.comfyui.status("/api/logs?service=comfyui")
                },
                jupyter,
                sync: match &self.sync {
                    Some(sync) => OptionalService::Service(sync.report().service.clone()),
                    None => OptionalService::Off(ServiceOff {
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
            import_failed: self.import_failed.clone(),
            prompt: self.prompt,
            host,
            sync: self.sync.as_ref().map(SyncHandle::report),
        }
    }
}

/// A ComfyUI start's expected length when none was configured.
const DEFAULT_EXPECTED_START: Duration = Duration::from_secs(180);
/// The least a learned expectation allows: a fast start can still stall on a slow volume.
const LEAST_EXPECTED_START_S: f64 = 30.0;

/// Seconds a ComfyUI start is expected to take at most: the stack's `runtime.expected_start`
/// (3 minutes when unset), or, once a start on this pod reached ready, twice that start's
/// time (at least 30 s) when that is shorter. A start that runs past it is taking longer than
/// usual, and the panel says so with the last log lines.
fn expected_start_s(configured: Option<Duration>, last_start_s: Option<f64>) -> f64 {
    let configured = configured.unwrap_or(DEFAULT_EXPECTED_START).as_secs_f64();
    match last_start_s {
        Some(last) if last.is_finite() => configured.min((2.0 * last).max(LEAST_EXPECTED_START_S)),
        _ => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_expected_within_the_stacks_time_or_twice_the_last_start() {
        assert_eq!(expected_start_s(None, None), 180.0);
        assert_eq!(expected_start_s(Some(Duration::from_secs(2)), None), 2.0);
        assert_eq!(expected_start_s(None, Some(20.0)), 40.0);
        assert_eq!(
            expected_start_s(None, Some(4.0)),
            30.0,
            "at least 30 s once learned"
        );
        assert_eq!(
            expected_start_s(None, Some(200.0)),
            180.0,
            "never past the stack's"
        );
        assert_eq!(
            expected_start_s(Some(Duration::from_secs(10)), Some(4.0)),
            10.0
        );
    }
}
