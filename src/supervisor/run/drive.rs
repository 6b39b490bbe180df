//! The state machines driven: an event goes to a service's machine, and its actions (spawn,
//! signal the group, kill it, schedule a restart or the end of the stop grace, probe
//! readiness) are carried out, which may raise more events.

use std::collections::VecDeque;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::{name_of, Internal, Kind, Pod};
use crate::service::clock::now_ms;
use crate::service::state::{Action, Event, ServiceState};
use crate::supervisor::usage::SessionEvent;

impl Pod {
    /// Feeds `event` to the service's state machine and carries out the actions, which may
    /// raise more events (a spawn reports `Spawned`).
    pub(super) fn drive(&mut self, kind: Kind, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let now = now_ms();
            let service = self.supervised(kind);
            let starting_since = match service.machine.state() {
                ServiceState::Starting { since, .. } => Some(*since),
                _ => None,
            };
            let actions = service.machine.handle(event, now);
            if let (Some(since), ServiceState::Ready { .. }) =
                (starting_since, service.machine.state())
            {
                #[allow(clippy::cast_precision_loss)] // milliseconds of a start-up
                let seconds = now.saturating_sub(since) as f64 / 1000.0;
                service.last_start_s = Some(seconds);
                tracing::info!("{} is ready after {seconds:.1} s", name_of(kind));
                if let Kind::ComfyUi(slot) = kind {
                    self.record_slot_usage(slot, SessionEvent::Ready);
                }
            }
            for action in actions {
                events.extend(self.act(kind, action));
            }
        }
    }

    pub(super) fn act(&mut self, kind: Kind, action: Action) -> Option<Event> {
        let timer = |event: Event, after: Duration, internal: mpsc::UnboundedSender<Internal>| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = internal.send(Internal::Timer { kind, event });
            });
        };
        match action {
            Action::Spawn => Some(match self.spawn(kind) {
                Ok(()) => Event::Spawned,
                Err((reason, hint)) => {
                    tracing::error!("{reason}");
                    Event::SpawnFailed { reason, hint }
                }
            }),
            Action::SignalGroup(signal) => {
                self.signal(kind, signal);
                None
            }
            Action::KillGroup => {
                tracing::warn!(
                    "{} did not stop within the grace period: SIGKILL",
                    name_of(kind)
                );
                self.signal(kind, Signal::SIGKILL);
                None
            }
            Action::ScheduleRestart { after, timer: id } => {
                timer(Event::RestartDue(id), after, self.internal.clone());
                None
            }
            Action::ScheduleStopGrace { after, timer: id } => {
                timer(Event::StopGraceElapsed(id), after, self.internal.clone());
                None
            }
            Action::ProbeReadiness => {
                self.probe_readiness(kind);
                None
            }
        }
    }

    fn signal(&self, kind: Kind, signal: Signal) {
        if let Some(process) = &self.supervised_ref(kind).process {
            process.group.signal(signal);
        }
    }
}
