//! One service's life as a pure state machine, the same for every supervised process (ComfyUI
//! and JupyterLab under the pod's orchestrator, `rclone rcd` under the sync service):
//! `Service::handle(event, now)` moves the state and returns the actions for its driver to
//! carry out (spawn, signal, schedule a timer). Time
//! is passed in and nothing here spawns or sleeps, so every transition is unit-tested. The
//! restart policy lives here: exponential backoff after a failure, and a crash loop ends in
//! `failed` with the reason instead of restarting forever (L15): `crash_loop_failures` crashes
//! within the window, or as many starts in a row that died before ever becoming ready, however
//! slow each start was. Every failure state carries the service's last log lines. The state never reads
//! "stopped" while a start or a restart is under way (L14).

use std::collections::VecDeque;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use super::exit_reason::ExitReason;
use crate::manifest::RestartPolicy;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// Where a service is, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ServiceState {
    /// Not running and nobody asked it to run.
    Stopped,
    /// Starting: from the start request until it printed its ready line and answered the
    /// readiness probe. `stage` and `percent` follow its log.
    Starting {
        since: UnixMillis,
        stage: String,
        percent: u8,
    },
    /// Running and answering.
    Ready { since: UnixMillis },
    /// Asked to stop: it got SIGTERM and gets SIGKILL when the grace period is over.
    Stopping { since: UnixMillis },
    /// It died on its own; a restart is scheduled at `until`.
    BackingOff {
        since: UnixMillis,
        until: UnixMillis,
        /// Failures in a row, counting this one.
        attempt: u32,
        reason: String,
        hint: String,
        last_lines: Vec<String>,
    },
    /// Given up: it could not be started, a restart cannot help, or it crashed too often.
    /// A start request tries again.
    Failed {
        since: UnixMillis,
        reason: String,
        hint: String,
        exit: Option<ExitReason>,
        last_lines: Vec<String>,
    },
}

/// Names a scheduled timer, so one that fires after the state moved on is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId(u64);

/// What happened to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Someone asked for it to run.
    StartRequested,
    /// The process was spawned.
    Spawned,
    /// The process could not be spawned at all.
    SpawnFailed { reason: String, hint: String },
    /// Its log shows start-up reached a stage.
    Stage { name: &'static str, percent: u8 },
    /// It printed its ready line (ComfyUI: `To see the GUI go to`).
    ReadyLineSeen,
    /// The readiness probe answered (ComfyUI: `GET /system_stats` 200).
    ReadyProbeOk,
    /// The process ended; `last_lines` are its last log lines.
    Exited {
        reason: ExitReason,
        last_lines: Vec<String>,
    },
    /// Someone asked for it to stop.
    StopRequested,
    /// The grace period of a stop is over.
    StopGraceElapsed(TimerId),
    /// The backoff before a restart is over.
    RestartDue(TimerId),
}

/// What the driver does for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start the process (in its own process group), then report `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send the signal to the process group.
    SignalGroup(Signal),
    /// SIGKILL the process group.
    KillGroup,
    /// Report `RestartDue(timer)` after the delay.
    ScheduleRestart { after: Duration, timer: TimerId },
    /// Report `StopGraceElapsed(timer)` after the delay.
    ScheduleStopGrace { after: Duration, timer: TimerId },
    /// Probe readiness until it answers, then report `ReadyProbeOk`.
    ProbeReadiness,
}

const LAUNCHING: (&str, u8) = ("launching", 0);
const SPAWNED: (&str, u8) = ("starting Python", 5);
const ANSWERING: u8 = 95;

/// One supervised service and its restart bookkeeping.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    restart: RestartPolicy,
    stop_grace: Duration,
    state: ServiceState,
    /// When recent failures happened, oldest first, within the crash-loop window.
    failures: VecDeque<UnixMillis>,
    /// Failures in a row; the backoff doubles with each.
    attempt: u32,
    /// Starts in a row that ended before the service became ready.
    failed_starts: u32,
    ready_line_seen: bool,
    /// A start was requested while stopping: start again once it exited.
    start_after_stop: bool,
    timer: u64,
    restarts: u64,
}

impl Service {
    /// A stopped service; `name` is how messages call it ("ComfyUI").
    pub fn new(name: &str, restart: RestartPolicy, stop_grace: Duration) -> Self {
        Self {
            name: name.to_owned(),
            restart,
            stop_grace,
            state: ServiceState::Stopped,
            failures: VecDeque::new(),
            attempt: 0,
            failed_starts: 0,
            ready_line_seen: false,
            start_after_stop: false,
            timer: 0,
            restarts: 0,
        }
    }

    pub fn state(&self) -> &ServiceState {
        &self.state
    }

    /// Restarts after failures since the supervisor started.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Moves the state for `event` at `now` and says what to do.
    pub fn handle(&mut self, event: Event, now: UnixMillis) -> Vec<Action> {
        match (event, &mut self.state) {
            (Event::StartRequested, ServiceState::Stopped | ServiceState::Failed { .. }) => {
                self.clean_slate();
                self.begin(now, LAUNCHING.0.to_owned())
            }
            (Event::StartRequested, ServiceState::BackingOff { .. }) => {
                self.begin(now, LAUNCHING.0.to_owned())
            }
            (Event::StartRequested, ServiceState::Stopping { .. }) => {
                self.start_after_stop = true;
                Vec::new()
            }
            (Event::Spawned, ServiceState::Starting { stage, percent, .. }) => {
                if *percent < SPAWNED.1 {
                    *stage = SPAWNED.0.to_owned();
                    *percent = SPAWNED.1;
                }
                Vec::new()
            }
            (Event::SpawnFailed { reason, hint }, ServiceState::Starting { .. }) => {
                self.state = ServiceState::Failed {
                    since: now,
                    reason,
                    hint,
                    exit: None,
                    last_lines: Vec::new(),
                };
                Vec::new()
            }
            (
                Event::Stage {
                    name,
                    percent: next,
                },
                ServiceState::Starting { stage, percent, .. },
            ) => {
                if next > *percent && next < ANSWERING {
                    *stage = name.to_owned();
                    *percent = next;
                }
                Vec::new()
            }
            (Event::ReadyLineSeen, ServiceState::Starting { stage, percent, .. })
                if !self.ready_line_seen =>
            {
                self.ready_line_seen = true;
                *stage = format!("waiting for {} to answer", self.name);
                *percent = ANSWERING;
                vec![Action::ProbeReadiness]
            }
            (Event::ReadyProbeOk, ServiceState::Starting { .. }) if self.ready_line_seen => {
                self.failed_starts = 0;
                self.state = ServiceState::Ready { since: now };
                Vec::new()
            }
            (Event::Exited { .. }, ServiceState::Stopping { .. }) => {
                if std::mem::take(&mut self.start_after_stop) {
                    self.clean_slate();
                    self.begin(now, LAUNCHING.0.to_owned())
                } else {
                    self.state = ServiceState::Stopped;
                    Vec::new()
                }
            }
            (Event::Exited { reason, last_lines }, ServiceState::Starting { .. }) => {
                self.failed_starts = self.failed_starts.saturating_add(1);
                self.failed(now, reason, last_lines, false)
            }
            (Event::Exited { reason, last_lines }, ServiceState::Ready { since }) => {
                let ran_steadily =
                    now.saturating_sub(*since) >= millis(self.restart.crash_loop_window.0);
                self.failed(now, reason, last_lines, ran_steadily)
            }
            (Event::StopRequested, ServiceState::Starting { .. } | ServiceState::Ready { .. }) => {
                self.start_after_stop = false;
                self.state = ServiceState::Stopping { since: now };
                let timer = self.next_timer();
                vec![
                    Action::SignalGroup(Signal::SIGTERM),
                    Action::ScheduleStopGrace {
                        after: self.stop_grace,
                        timer,
                    },
                ]
            }
            (
                Event::StopRequested,
                ServiceState::BackingOff { .. } | ServiceState::Failed { .. },
            ) => {
                self.state = ServiceState::Stopped;
                Vec::new()
            }
            (Event::StopRequested, ServiceState::Stopping { .. }) => {
                self.start_after_stop = false;
                Vec::new()
            }
            (Event::StopGraceElapsed(timer), ServiceState::Stopping { .. })
                if timer == TimerId(self.timer) =>
            {
                vec![Action::KillGroup]
            }
            (Event::RestartDue(timer), ServiceState::BackingOff { attempt, .. })
                if timer == TimerId(self.timer) =>
            {
                let stage = format!("restarting after {} failures in a row", attempt);
                self.restarts += 1;
                self.begin(now, stage)
            }
            _ => Vec::new(),
        }
    }

    /// Forgets past failures: a person asked for a start.
    fn clean_slate(&mut self) {
        self.failures.clear();
        self.attempt = 0;
        self.failed_starts = 0;
    }

    fn begin(&mut self, now: UnixMillis, stage: String) -> Vec<Action> {
        self.ready_line_seen = false;
        self.state = ServiceState::Starting {
            since: now,
            stage,
            percent: LAUNCHING.1,
        };
        vec![Action::Spawn]
    }

    /// It died without being asked to: restart after a backoff, or give up.
    fn failed(
        &mut self,
        now: UnixMillis,
        exit: ExitReason,
        last_lines: Vec<String>,
        ran_steadily: bool,
    ) -> Vec<Action> {
        if ran_steadily {
            self.attempt = 0;
        }
        self.attempt = self.attempt.saturating_add(1);
        let window = self.restart.crash_loop_window;
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|&failure| now.saturating_sub(failure) > millis(window.0))
        {
            self.failures.pop_front();
        }
        let reason = exit.reason(&self.name);
        let hint = exit.hint();
        let limit = self.restart.crash_loop_failures;
        let crash_loop = limit > 0 && self.failures.len() >= limit as usize;
        let start_loop = limit > 0 && self.failed_starts >= limit;
        if !exit.worth_restarting() || crash_loop || start_loop {
            let reason = if !exit.worth_restarting() {
                reason
            } else if crash_loop {
                format!(
                    "{} crashed {} times in {window}; last: {reason}",
                    self.name,
                    self.failures.len()
                )
            } else {
                format!(
                    "{} failed to start {} times in a row, never becoming ready; last: {reason}",
                    self.name, self.failed_starts
                )
            };
            self.state = ServiceState::Failed {
                since: now,
                reason,
                hint,
                exit: Some(exit),
                last_lines,
            };
            return Vec::new();
        }
        let after = self.backoff();
        let timer = self.next_timer();
        self.state = ServiceState::BackingOff {
            since: now,
            until: now.saturating_add(millis(after)),
            attempt: self.attempt,
            reason,
            hint,
            last_lines,
        };
        vec![Action::ScheduleRestart { after, timer }]
    }

    /// `backoff_initial`, doubled for each failure in a row after the first, at most
    /// `backoff_max`.
    fn backoff(&self) -> Duration {
        let doublings = self.attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.restart
            .backoff_initial
            .0
            .saturating_mul(factor)
            .min(self.restart.backoff_max.0)
    }

    fn next_timer(&mut self) -> TimerId {
        self.timer += 1;
        TimerId(self.timer)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use crate::service::exit_reason::KnownFailure;
    use crate::service::exit_reason::Termination;

    const SECOND: u64 = 1000;

    fn policy(failures: u32) -> RestartPolicy {
        RestartPolicy {
            backoff_initial: HumanDuration::from_secs(1),
            backoff_max: HumanDuration::from_secs(30),
            crash_loop_failures: failures,
            crash_loop_window: HumanDuration::from_secs(120),
        }
    }

    fn comfyui() -> Service {
        Service::new("ComfyUI", policy(5), Duration::from_secs(10))
    }

    fn exited(code: i32) -> Event {
        Event::Exited {
            reason: ExitReason::new(Termination::Exited { code }, None, None),
            last_lines: vec!["Traceback (most recent call last):".to_owned()],
        }
    }

    fn starting(since: u64, stage: &str, percent: u8) -> ServiceState {
        ServiceState::Starting {
            since,
            stage: stage.to_owned(),
            percent,
        }
    }

    /// Starts a service and makes it ready at `now`.
    fn ready(service: &mut Service, now: u64) {
        for event in [
            Event::StartRequested,
            Event::Spawned,
            Event::ReadyLineSeen,
            Event::ReadyProbeOk,
        ] {
            service.handle(event, now);
        }
        assert_eq!(service.state(), &ServiceState::Ready { since: now });
    }

    fn restart_timer(actions: &[Action]) -> (Duration, TimerId) {
        match actions {
            [Action::ScheduleRestart { after, timer }] => (*after, *timer),
            other => panic!("expected one restart, got {other:?}"),
        }
    }

    #[test]
    fn starts_through_the_stages_to_ready() {
        let mut service = comfyui();
        assert_eq!(service.state(), &ServiceState::Stopped);
        assert_eq!(service.handle(Event::StartRequested, 100), [Action::Spawn]);
        assert_eq!(service.state(), &starting(100, "launching", 0));
        assert_eq!(service.handle(Event::Spawned, 110), []);
        assert_eq!(service.state(), &starting(100, "starting Python", 5));
        service.handle(
            Event::Stage {
                name: "loading PyTorch",
                percent: 35,
            },
            120,
        );
        assert_eq!(service.state(), &starting(100, "loading PyTorch", 35));
        service.handle(
            Event::Stage {
                name: "preparing folders",
                percent: 10,
            },
            130,
        );
        assert_eq!(
            service.state(),
            &starting(100, "loading PyTorch", 35),
            "stages only move forward"
        );
        assert_eq!(
            service.handle(Event::ReadyProbeOk, 135),
            [],
            "a probe before the ready line does not count"
        );
        assert_eq!(
            service.handle(Event::ReadyLineSeen, 140),
            [Action::ProbeReadiness]
        );
        assert_eq!(
            service.state(),
            &starting(100, "waiting for ComfyUI to answer", 95)
        );
        assert_eq!(
            service.handle(Event::ReadyLineSeen, 141),
            [],
            "one probe for many listen addresses"
        );
        assert_eq!(service.handle(Event::ReadyProbeOk, 150), []);
        assert_eq!(service.state(), &ServiceState::Ready { since: 150 });
    }

    #[test]
    fn a_second_start_request_gives_one_process() {
        let mut service = comfyui();
        assert_eq!(service.handle(Event::StartRequested, 0), [Action::Spawn]);
        assert_eq!(service.handle(Event::StartRequested, 1), []);
        ready(&mut comfyui(), 2);
        let mut running = comfyui();
        ready(&mut running, 2);
        assert_eq!(running.handle(Event::StartRequested, 3), []);
    }

    #[test]
    fn stops_gracefully_then_kills_after_the_grace() {
        let mut service = comfyui();
        ready(&mut service, 0);
        let actions = service.handle(Event::StopRequested, 5 * SECOND);
        let timer = match actions[..] {
            [Action::SignalGroup(Signal::SIGTERM), Action::ScheduleStopGrace { after, timer }] => {
                assert_eq!(after, Duration::from_secs(10));
                timer
            }
            ref other => panic!("{other:?}"),
        };
        assert_eq!(
            service.state(),
            &ServiceState::Stopping { since: 5 * SECOND }
        );
        assert_eq!(
            service.handle(Event::StopGraceElapsed(timer), 15 * SECOND),
            [Action::KillGroup]
        );
        let killed = Event::Exited {
            reason: ExitReason::new(Termination::Killed { signal: 9 }, None, None),
            last_lines: Vec::new(),
        };
        assert_eq!(service.handle(killed, 15 * SECOND), []);
        assert_eq!(
            service.state(),
            &ServiceState::Stopped,
            "a requested stop is not a failure"
        );
        assert_eq!(service.restarts(), 0);
    }

    #[test]
    fn a_stale_grace_timer_does_not_kill_the_next_run() {
        let mut service = comfyui();
        ready(&mut service, 0);
        let old = match service.handle(Event::StopRequested, 1)[..] {
            [_, Action::ScheduleStopGrace { timer, .. }] => timer,
            ref other => panic!("{other:?}"),
        };
        service.handle(exited(0), 2);
        ready(&mut service, 3);
        service.handle(Event::StopRequested, 4);
        assert_eq!(service.handle(Event::StopGraceElapsed(old), 11), []);
    }

    #[test]
    fn stops_while_starting_and_starts_again_after_the_exit() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        service.handle(Event::Spawned, 0);
        assert_eq!(service.handle(Event::StopRequested, 1).len(), 2);
        assert_eq!(
            service.handle(Event::StartRequested, 2),
            [],
            "waits for the old process to go"
        );
        assert_eq!(service.state(), &ServiceState::Stopping { since: 1 });
        assert_eq!(service.handle(exited(0), 3), [Action::Spawn]);
        assert_eq!(service.state(), &starting(3, "launching", 0));
        // A stop after the start request wins.
        service.handle(Event::StopRequested, 4);
        service.handle(Event::StartRequested, 5);
        service.handle(Event::StopRequested, 6);
        assert_eq!(service.handle(exited(0), 7), []);
        assert_eq!(service.state(), &ServiceState::Stopped);
    }

    #[test]
    fn restarts_a_crash_after_a_backoff() {
        let mut service = comfyui();
        ready(&mut service, 0);
        let (after, timer) = restart_timer(&service.handle(exited(1), 10 * SECOND));
        assert_eq!(after, Duration::from_secs(1));
        assert_eq!(
            service.state(),
            &ServiceState::BackingOff {
                since: 10 * SECOND,
                until: 11 * SECOND,
                attempt: 1,
                reason: "ComfyUI exited with code 1".to_owned(),
                hint: "The last log lines show the error.".to_owned(),
                last_lines: vec!["Traceback (most recent call last):".to_owned()],
            }
        );
        assert_eq!(
            service.handle(Event::RestartDue(timer), 11 * SECOND),
            [Action::Spawn]
        );
        assert_eq!(
            service.state(),
            &starting(11 * SECOND, "restarting after 1 failures in a row", 0)
        );
        assert_eq!(service.restarts(), 1);
    }

    #[test]
    fn an_exit_while_starting_is_a_failure_and_exit_zero_too() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        restart_timer(&service.handle(exited(0), 1));
        match service.state() {
            ServiceState::BackingOff { reason, .. } => {
                assert_eq!(
                    reason,
                    "ComfyUI exited with code 0 although nobody asked it to stop"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backs_off_doubling_up_to_the_cap() {
        let mut service = Service::new("ComfyUI", policy(0), Duration::from_secs(10));
        service.handle(Event::StartRequested, 0);
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let (after, timer) = restart_timer(&service.handle(exited(1), now));
            delays.push(after.as_secs());
            now += millis(after);
            assert_eq!(
                service.handle(Event::RestartDue(timer), now),
                [Action::Spawn]
            );
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_steady_run_resets_the_backoff() {
        let mut service = comfyui();
        ready(&mut service, 0);
        let (_, timer) = restart_timer(&service.handle(exited(1), SECOND));
        service.handle(Event::RestartDue(timer), 2 * SECOND);
        service.handle(Event::Spawned, 2 * SECOND);
        service.handle(Event::ReadyLineSeen, 3 * SECOND);
        service.handle(Event::ReadyProbeOk, 3 * SECOND);
        // Ready for longer than the crash-loop window: the next crash starts over at 1 s.
        let (after, _) = restart_timer(&service.handle(exited(1), 200 * SECOND));
        assert_eq!(after, Duration::from_secs(1));
    }

    #[test]
    fn a_crash_loop_ends_in_failed_with_the_reason() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let mut now = 0;
        for _ in 0..4 {
            let (after, timer) = restart_timer(&service.handle(exited(1), now));
            now += millis(after);
            service.handle(Event::RestartDue(timer), now);
        }
        let lines = vec!["Killed".to_owned()];
        let oom = ExitReason::new(
            Termination::Killed { signal: 9 },
            Some(crate::service::exit_reason::OomEvidence {
                used_bytes: Some(31 << 30),
                limit_bytes: Some(32 << 30),
            }),
            None,
        );
        let actions = service.handle(
            Event::Exited {
                reason: oom.clone(),
                last_lines: lines.clone(),
            },
            now,
        );
        assert_eq!(actions, []);
        assert_eq!(
            service.state(),
            &ServiceState::Failed {
                since: now,
                reason: "ComfyUI crashed 5 times in 2m; last: ComfyUI was killed by the kernel's out-of-memory killer (RAM 31.0 of 32.0 GiB)".to_owned(),
                hint: "Use a smaller model or ComfyUI's --lowvram (runtime.comfyui_args), or a pod with more RAM.".to_owned(),
                exit: Some(oom),
                last_lines: lines,
            }
        );
        // A start request tries again, with a clean slate.
        assert_eq!(
            service.handle(Event::StartRequested, now + 1),
            [Action::Spawn]
        );
        let (after, _) = restart_timer(&service.handle(exited(1), now + 2));
        assert_eq!(after, Duration::from_secs(1));
    }

    #[test]
    fn crashes_after_ready_outside_the_window_do_not_make_a_loop() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let mut now = 0;
        for _ in 0..10 {
            service.handle(Event::Spawned, now);
            service.handle(Event::ReadyLineSeen, now);
            service.handle(Event::ReadyProbeOk, now);
            now += 60 * SECOND;
            let (_, timer) = restart_timer(&service.handle(exited(1), now));
            service.handle(Event::RestartDue(timer), now + SECOND);
        }
        assert!(matches!(service.state(), ServiceState::Starting { .. }));
    }

    #[test]
    fn slow_starts_that_never_get_ready_end_in_failed() {
        // Each start takes 30 s and dies: 5 of them span far more than the 2-minute window.
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let mut now = 0;
        for _ in 0..4 {
            now += 30 * SECOND;
            let (after, timer) = restart_timer(&service.handle(exited(1), now));
            now += millis(after);
            service.handle(Event::RestartDue(timer), now);
        }
        now += 30 * SECOND;
        assert_eq!(service.handle(exited(1), now), []);
        match service.state() {
            ServiceState::Failed {
                reason, last_lines, ..
            } => {
                assert_eq!(
                    reason,
                    "ComfyUI failed to start 5 times in a row, never becoming ready; last: ComfyUI exited with code 1"
                );
                assert_eq!(last_lines, &["Traceback (most recent call last):"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_a_restart_cannot_fix_fails_at_once() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let refused = ExitReason::new(
            Termination::Exited { code: 2 },
            None,
            Some(KnownFailure::ArgumentRefused {
                message: "argument --user-directory: The path '/w/users/a' does not exist."
                    .to_owned(),
            }),
        );
        let event = Event::Exited {
            reason: refused,
            last_lines: Vec::new(),
        };
        assert_eq!(service.handle(event, 1), []);
        match service.state() {
            ServiceState::Failed { reason, .. } => assert_eq!(
                reason,
                "ComfyUI exited with code 2: it refused its command line: argument --user-directory: The path '/w/users/a' does not exist."
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_spawn_failure_is_failed_with_its_reason() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let event = Event::SpawnFailed {
            reason: "could not start ComfyUI: /opt/venv/bin/python was not found".to_owned(),
            hint: "Check stack.json's comfyui.python.".to_owned(),
        };
        assert_eq!(service.handle(event, 1), []);
        assert!(matches!(
            service.state(),
            ServiceState::Failed { exit: None, .. }
        ));
    }

    #[test]
    fn stopping_while_backing_off_cancels_the_restart() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let (_, timer) = restart_timer(&service.handle(exited(1), 1));
        assert_eq!(service.handle(Event::StopRequested, 2), []);
        assert_eq!(service.state(), &ServiceState::Stopped);
        assert_eq!(service.handle(Event::RestartDue(timer), 1001), []);
        assert_eq!(service.state(), &ServiceState::Stopped);
    }

    #[test]
    fn a_start_while_backing_off_starts_now() {
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        let (_, timer) = restart_timer(&service.handle(exited(1), 1));
        assert_eq!(service.handle(Event::StartRequested, 2), [Action::Spawn]);
        assert_eq!(
            service.handle(Event::RestartDue(timer), 1001),
            [],
            "no second process"
        );
    }

    #[test]
    fn serialises_for_the_api() {
        let state = starting(1, "loading PyTorch", 35);
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"state": "starting", "since": 1, "stage": "loading PyTorch", "percent": 35})
        );
        let mut service = comfyui();
        service.handle(Event::StartRequested, 0);
        service.handle(exited(1), 1);
        let json = serde_json::to_value(service.state()).unwrap();
        assert_eq!(json["state"], "backing-off");
        assert_eq!(json["until"], 1001);
        assert_eq!(
            serde_json::to_value(ServiceState::Stopped).unwrap(),
            serde_json::json!({"state": "stopped"})
        );
    }
}
