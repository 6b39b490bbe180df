//! The pod's status as the orchestrator publishes it after every change: the stack, the
//! verification, users, GPUs, every ComfyUI slot (who, port, GPUs, attention requested and
//! confirmed, its service), the other services (the sync service's state; its full report is
//! read from the sync service itself) and the warnings.

use std::time::Duration;

use super::{Pod, Slot};
use crate::manifest::MAX_SLOTS;
use crate::service::status::ServiceStatus;
use crate::supervisor::attention;
use crate::supervisor::gpu::Device;
use crate::supervisor::host::HostSample;
use crate::supervisor::slots;
use crate::supervisor::status::{
    AttentionStatus, OptionalService, ServiceOff, Services, SlotStatus, StackStatus, Status,
};

impl Pod {
    pub(super) fn snapshot(&self) -> Status {
        let settings = &self.settings;
        let stack = &settings.stack;
        let host = self.host.latest();
        let slots: Vec<SlotStatus> = self
            .slots
            .iter()
            .map(|slot| {
                slot.status(
                    stack.runtime.expected_start.as_ref().map(|d| d.0),
                    host.as_deref(),
                    &self.slots,
                )
            })
            .collect();
        let mut warnings = self.warnings.clone();
        warnings.extend(
            slots
                .iter()
                .filter_map(|slot| slot.attention.mismatch.clone()),
        );
        warnings.extend(
            host.as_ref()
                .and_then(|sample| sample.volume.as_ref()?.warning()),
        );
        warnings.extend(slots.iter().flat_map(|slot| &slot.import_failed).map(|failure| {
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
            user: slots[0].user.clone(),
            users: self.roster.names(),
            allow_new_users: self.roster.allows_new(),
            gpus: self.gpus.gpus.clone(),
            cpu_mode: self.gpus.device() == Device::Cpu,
            attention: slots[0].attention.clone(),
            services: Services {
                comfyui: slots[0].comfyui.clone(),
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
            import_failed: slots[0].import_failed.clone(),
            prompt: slots[0].prompt,
            host,
            slots,
        }
    }
}

impl Slot {
    /// The slot's status, its queue read from the newest `host` sample; `slots` are the pod's.
    fn status(
        &self,
        expected_start: Option<Duration>,
        host: Option<&HostSample>,
        slots: &[Slot],
    ) -> SlotStatus {
        let log = super::comfyui_log(self.plan.index);
        let logs = LOG_LINKS
            .iter()
            .find(|(name, _)| *name == log)
            .map_or(LOG_LINKS[0].1, |(_, link)| *link);
        SlotStatus {
            slot: self.plan.index,
            port: self.plan.port,
            user: self.user.as_ref().map(ToString::to_string),
            gpus: self.plan.gpus.clone(),
            comfyui: ServiceStatus {
                expected_start_s: Some(expected_start_s(expected_start, self.service.last_start_s)),
                ..self.service.status(logs)
            },
            attention: AttentionStatus {
                requested: self.attention.clone(),
                confirmed: self.confirmed.clone(),
                mismatch: self
                    .confirmed
                    .as_ref()
                    .and_then(|confirmed| attention::mismatch(&self.attention, confirmed)),
            },
            import_failed: self.import_failed.clone(),
            prompt: self.prompt,
            queue: host.and_then(|sample| {
                sample
                    .queues
                    .iter()
                    .find(|queue| queue.slot == self.plan.index)
                    .map(|queue| queue.queue)
            }),
            gpus_shared_by: slots::shared_by(slots.iter().map(|slot| &slot.plan), &self.plan),
            published: self.published,
        }
    }
}

/// Where each slot's log is read (a service status names its log as a static link).
const LOG_LINKS: [(&str, &str); MAX_SLOTS as usize] = [
    ("comfyui", "/api/logs?service=comfyui"),
    ("comfyui-1", "/api/logs?service=comfyui-1"),
    ("comfyui-2", "/api/logs?service=comfyui-2"),
    ("comfyui-3", "/api/logs?service=comfyui-3"),
    ("comfyui-4", "/api/logs?service=comfyui-4"),
    ("comfyui-5", "/api/logs?service=comfyui-5"),
    ("comfyui-6", "/api/logs?service=comfyui-6"),
    ("comfyui-7", "/api/logs?service=comfyui-7"),
];

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
