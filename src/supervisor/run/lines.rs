//! A service's output read line by line while it runs: the last lines kept for a failure
//! report, and ComfyUI's log events (start-up stages, the ready line, the attention it
//! confirms, finished prompts, a failure it names) fed to the state machine.

use super::{Kind, Pod, TAIL_LINES};
use crate::service::state::Event;
use crate::supervisor::attention::{self, ConfirmedAttention};
use crate::supervisor::log_watch::LogEvent;
use crate::supervisor::slots::SlotIndex;

impl Pod {
    pub(super) fn on_line(&mut self, kind: Kind, generation: u64, text: &str) {
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
            Kind::ComfyUi(_) => process.watch.line(text),
            // Jupyter Server prints `Jupyter Server 2.x is running at:` before its URLs.
            Kind::Jupyter if text.contains("is running at") => vec![LogEvent::GuiLinePrinted],
            Kind::Jupyter => Vec::new(),
        };
        for event in events {
            // Only a ComfyUI's lines carry more than the ready line.
            let slot = match kind {
                Kind::ComfyUi(slot) => slot,
                Kind::Jupyter => {
                    if let LogEvent::GuiLinePrinted = event {
                        self.drive(kind, Event::ReadyLineSeen);
                    }
                    continue;
                }
            };
            match event {
                LogEvent::Stage { name, percent } => {
                    self.drive(kind, Event::Stage { name, percent })
                }
                LogEvent::Attention(confirmed) => self.confirm_attention(slot, confirmed),
                LogEvent::GuiLinePrinted => self.drive(kind, Event::ReadyLineSeen),
                LogEvent::PromptQueued => {}
                LogEvent::PromptDone { .. } => {
                    self.slot_mut(slot).prompt = None;
                    self.relieve_memory(slot);
                }
                LogEvent::Progress(progress) => self.slot_mut(slot).prompt = Some(progress),
                LogEvent::ImportFailed(failure) => {
                    tracing::warn!(
                        "custom node {} failed to import: its nodes are missing",
                        failure.node
                    );
                    let import_failed = &mut self.slot_mut(slot).import_failed;
                    if !import_failed.contains(&failure) {
                        import_failed.push(failure);
                    }
                }
                LogEvent::Failure(failure) => {
                    if let Some(process) = self.supervised(kind).process.as_mut() {
                        process.known = Some(failure);
                    }
                }
            }
        }
    }

    fn confirm_attention(&mut self, slot: SlotIndex, confirmed: ConfirmedAttention) {
        let slot = self.slot_mut(slot);
        if let Some(warning) = attention::mismatch(&slot.attention, &confirmed) {
            tracing::warn!("slot {}: {warning}", slot.plan.index);
        }
        // A sage failure at run time outranks the start-up line that came before it.
        let keep_failure = matches!(slot.confirmed, Some(ConfirmedAttention::SageFailed { .. }))
            && matches!(confirmed, ConfirmedAttention::Using { .. });
        if !keep_failure {
            slot.confirmed = Some(confirmed);
        }
    }
}
