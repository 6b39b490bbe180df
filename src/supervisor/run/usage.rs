//! GPU hours: the usage log's lines for ComfyUI's sessions (started, ready, running every
//! few minutes, stopped with the reason), with the GPU it ran on.

use super::Pod;
use crate::service::clock::now_ms;
use crate::service::state::UnixMillis;
use crate::supervisor::gpu::Device;
use crate::supervisor::slots::SlotIndex;
use crate::supervisor::usage::{SessionEvent, SessionLine};
use crate::user::UserName;

impl Pod {
    /// Notes `event` for the session of every slot that runs one.
    pub(super) fn record_usage(&mut self, event: SessionEvent) {
        let slots: Vec<SlotIndex> = self.slots.iter().map(|slot| slot.plan.index).collect();
        for slot in slots {
            self.record_slot_usage(slot, event.clone());
        }
    }

    pub(super) fn record_slot_usage(&mut self, slot: SlotIndex, event: SessionEvent) {
        let Some((user, session)) = self
            .slot(slot)
            .service
            .process
            .as_ref()
            .and_then(|process| Some((process.user.clone()?, process.session)))
        else {
            return;
        };
        self.record(slot, &user, session, event);
    }

    pub(super) fn record(
        &mut self,
        slot: SlotIndex,
        user: &UserName,
        session: UnixMillis,
        event: SessionEvent,
    ) {
        let gpu = match self.slot(slot).plan.device() {
            Device::Gpu(gpu) => Some(gpu.name),
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
}
