//! Waiting in tests: every wait polls with one deadline, long enough for a loaded machine.

use std::time::{Duration, Instant};

/// How long anything may take on a loaded machine (the suite runs under `stress-ng --cpu 2`
/// on two cores): a wait past this is a failure, never a measure of speed. Benchmarks in ci/
/// measure speed.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `probe` until it gives a value or the deadline passes.
#[track_caller]
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gave up waiting {} s for {what}",
            DEADLINE.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}
