//! HTTP calls to the running services: the readiness probe of a starting service, and
//! ComfyUI's memory relief after a prompt (L15).

use super::{Internal, Kind, Pod};
use crate::service::task::AbortOnDrop;
use crate::supervisor::probe::{self, Relief};
use crate::supervisor::slots::SlotIndex;

impl Pod {
    pub(super) fn probe_readiness(&mut self, kind: Kind) {
        let (port, path) = match kind {
            Kind::ComfyUi(slot) => (self.slot(slot).plan.port, "/system_stats"),
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

    /// Relief for the slot whose ComfyUI finished a prompt: its own ComfyUI is asked, on its
    /// port, and its `/system_stats` gives the RAM and its own GPU's VRAM the thresholds judge
    /// (under `--cuda-device` the slot's GPU is its ComfyUI's only device).
    pub(super) fn relieve_memory(&self, slot: SlotIndex) {
        let client = self.client.clone();
        let base = probe::local_base(self.settings.listen, self.slot(slot).plan.port);
        let policy = self.settings.stack.runtime.memory.clone();
        tokio::spawn(async move {
            match probe::relieve_memory(&client, &base, &policy).await {
                Ok(Relief::Freed(usage)) => tracing::info!(
                    "slot {slot}: memory relief: RAM {:.0}%{} is above the threshold (RAM {}%, VRAM {}%): asked ComfyUI to unload models and free memory",
                    usage.ram_used_percent,
                    usage.vram_used_percent.map_or(String::new(), |vram| format!(", VRAM {vram:.0}%")),
                    policy.free_above_ram_percent,
                    policy.free_above_vram_percent,
                ),
                Ok(Relief::NotNeeded(usage)) => tracing::debug!(ram = usage.ram_used_percent, "slot {slot}: no memory relief needed"),
                Err(err) => tracing::warn!("slot {slot}: memory relief skipped: {err}"),
            }
        });
    }
}
