//! One ComfyUI slot as the orchestrator holds it: where it runs (its plan: port and GPUs), the
//! attention chosen for its GPU and the one its ComfyUI confirmed, whose session it runs, the
//! custom nodes that failed to import, the running prompt's progress, its state machine, and
//! whether a browser can reach it.

use super::Supervised;
use crate::service::state::ServiceState;
use crate::supervisor::attention::{self, AttentionChoice, ConfirmedAttention};
use crate::supervisor::log_watch::{ImportFailure, PromptProgress};
use crate::supervisor::placement::Seat;
use crate::supervisor::settings::Settings;
use crate::supervisor::slots::{self, SlotPlan};
use crate::user::UserName;

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) plan: SlotPlan,
    pub(super) attention: AttentionChoice,
    pub(super) confirmed: Option<ConfirmedAttention>,
    /// Whose ComfyUI the slot should run.
    pub(super) user: Option<UserName>,
    /// Custom nodes the current ComfyUI could not import.
    pub(super) import_failed: Vec<ImportFailure>,
    /// The running prompt's sampler progress, while a prompt runs.
    pub(super) prompt: Option<PromptProgress>,
    pub(super) service: Supervised,
    /// Whether a browser can reach its ComfyUI ([`slots::is_published`]).
    pub(super) published: bool,
}

impl Slot {
    pub(super) fn new(plan: SlotPlan, settings: &Settings) -> Self {
        let attention = attention::choose(
            settings.stack.attention,
            &plan.device(),
            &settings.stack.attention_kernels,
        );
        let published = slots::is_published(
            plan.index,
            settings.runpod_pod_id.is_some(),
            settings.stack.published_slots,
        );
        Self {
            plan,
            attention,
            confirmed: None,
            user: None,
            import_failed: Vec::new(),
            prompt: None,
            service: Supervised::new("ComfyUI", settings),
            published,
        }
    }

    /// Who holds the slot: its user while a ComfyUI starts, runs, restarts or stops for them.
    pub(super) fn seat(&self) -> Seat {
        let holds = !matches!(
            self.service.machine.state(),
            ServiceState::Stopped | ServiceState::Failed { .. }
        ) || self.service.process.is_some();
        Seat {
            slot: self.plan.index,
            holder: self.user.clone().filter(|_| holds),
        }
    }
}
