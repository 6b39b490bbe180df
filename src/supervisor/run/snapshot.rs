//! The pod's status as the orchestrator publishes it after every change: the stack, the
//! verification, users, GPUs, attention requested and confirmed, every service slot (the
//! sync's report included) and the warnings.

use super::Pod;
use crate::supervisor::attention;
use crate::supervisor::gpu::Device;
use crate::supervisor::status::{AttentionStatus, Services, Slot, SlotOff, StackStatus, Status};
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
            import_failed: self.import_failed.clone(),
            prompt: self.prompt,
            host,
            sync: self.sync.as_ref().map(SyncHandle::report),
        }
    }
}
