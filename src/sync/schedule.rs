//! When a folder's next pass runs. A file event schedules a pass late enough for rclone's
//! `--min-age` to let the new file through (a file still being written keeps moving its
//! modification time and its events along), so a finished file reaches the remote within
//! `min_age` plus the debounce, the margin and its upload. Events in a burst share one pass.
//! A pass covers the changes older than its start minus `min_age`; younger ones get a pass of
//! their own. A failed pass is retried after a backoff.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

/// Events closer together than this share a pass.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
/// A file exactly `min_age` old when a pass starts may still be filtered out by rclone's clock.
const MIN_AGE_MARGIN: Duration = Duration::from_millis(300);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The timing rules of one stack's sync.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub min_age: Duration,
}

impl Timing {
    /// When to pass for a change noticed at `at`.
    pub fn after_change(self, at: Instant) -> Instant {
        at + DEBOUNCE.max(self.min_age + MIN_AGE_MARGIN)
    }

    /// Changes noticed up to this instant were old enough for a pass that started at
    /// `started` (a final pass takes everything: nothing is being written any more).
    pub fn covered_until(self, started: Instant, final_pass: bool) -> Instant {
        if final_pass {
            started
        } else {
            started.checked_sub(self.min_age).unwrap_or(started)
        }
    }

    /// The wait before retrying after `failures` failed passes in a row: 1 s, doubling, at
    /// most a minute.
    pub fn retry_after(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
    }
}

/// Changes noticed in a folder that no finished pass has covered yet.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    changes: BTreeMap<PathBuf, Instant>,
}

impl Pending {
    pub fn notice(&mut self, path: PathBuf, at: Instant) {
        self.changes.insert(path, at);
    }

    /// Paths changed and not yet synced.
    pub fn count(&self) -> usize {
        self.changes.len()
    }

    /// When the oldest pending change was noticed.
    pub fn oldest(&self) -> Option<Instant> {
        self.changes.values().min().copied()
    }

    /// When the newest pending change was noticed.
    pub fn newest(&self) -> Option<Instant> {
        self.changes.values().max().copied()
    }

    /// Forgets the changes a finished pass covered.
    pub fn covered(&mut self, until: Instant) {
        self.changes.retain(|_, at| *at > until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_change_waits_for_min_age_and_at_least_the_debounce() {
        let now = Instant::now();
        let timing = Timing {
            min_age: 10 * SECOND,
        };
        assert_eq!(timing.after_change(now), now + 10 * SECOND + MIN_AGE_MARGIN);
        let eager = Timing {
            min_age: Duration::ZERO,
        };
        assert_eq!(eager.after_change(now), now + DEBOUNCE);
    }

    #[test]
    fn a_pass_covers_only_changes_older_than_min_age_unless_final() {
        let start = Instant::now();
        let timing = Timing {
            min_age: 5 * SECOND,
        };
        let started = start + 20 * SECOND;
        let mut pending = Pending::default();
        pending.notice("old.png".into(), start + 10 * SECOND);
        pending.notice("young.png".into(), start + 18 * SECOND);
        pending.covered(timing.covered_until(started, false));
        assert_eq!(pending.count(), 1);
        assert_eq!(pending.oldest(), Some(start + 18 * SECOND));
        pending.covered(timing.covered_until(started, true));
        assert_eq!(pending.count(), 0);
        assert_eq!(pending.newest(), None);
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| Timing::retry_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
