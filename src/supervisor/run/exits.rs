//! A service's exit: explained (exit code or signal, the OOM killer, the failure its log
//! named), logged, closed in the usage log, and fed to its state machine with its last lines.

use super::{name_of, Kind, Pod};
use crate::service::exit_reason::{ExitReason, Termination};
use crate::service::state::{Event, ServiceState};
use crate::supervisor::usage::SessionEvent;

impl Pod {
    pub(super) fn on_exit(&mut self, kind: Kind, generation: u64, termination: Termination) {
        let service = self.supervised(kind);
        let Some(process) = service
            .process
            .take_if(|process| process.generation == generation)
        else {
            return;
        };
        let stopping = matches!(service.machine.state(), ServiceState::Stopping { .. });
        let reason = ExitReason::new(termination, process.oom.evidence(), process.known.clone());
        let said = if stopping {
            "stopped".to_owned()
        } else {
            reason.reason(name_of(kind))
        };
        let pid = process.group.leader();
        if stopping {
            tracing::info!(
                "{} stopped {} (pid {pid})",
                name_of(kind),
                termination.how()
            );
        } else {
            tracing::warn!("{said} (pid {pid})");
        }
        if let Kind::ComfyUi(slot) = kind {
            self.slot_mut(slot).prompt = None;
            if let Some(user) = &process.user {
                self.record(
                    slot,
                    user,
                    process.session,
                    SessionEvent::Stopped { reason: said },
                );
            }
        }
        self.drive(
            kind,
            Event::Exited {
                reason,
                last_lines: process.tail.into_iter().collect(),
            },
        );
    }
}
