//! The mirror's deletion budget (issue 11): `max_delete` deletions per user folder within
//! `delete_window`, counted from the deletions made. They are kept in the sync ledger on the
//! volume (`ledger`), booked there before they are made and settled after, so a supervisor
//! that restarts (or crashes in a loop) finds the window as it was: a crash between booking and
//! settling counts the whole batch as made, never less.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Deletions made (or booked) at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub at_ms: u64,
    pub count: u64,
}

/// The deletions of one folder, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Deletions(VecDeque<Batch>);

impl Deletions {
    /// Forgets the batches older than `window` before `now_ms`.
    pub fn prune(&mut self, now_ms: u64, window: Duration) {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        while self
            .0
            .front()
            .is_some_and(|batch| batch.at_ms.saturating_add(window_ms) <= now_ms)
        {
            self.0.pop_front();
        }
    }

    /// Deletions within the window (after [`Deletions::prune`]).
    pub fn count(&self) -> u64 {
        self.0
            .iter()
            .fold(0, |sum, batch| sum.saturating_add(batch.count))
    }

    /// How many more `max_delete` allows within `window` before `now_ms`.
    pub fn left(&mut self, now_ms: u64, window: Duration, max_delete: u32) -> u64 {
        self.prune(now_ms, window);
        u64::from(max_delete).saturating_sub(self.count())
    }

    /// Books `count` deletions at `at_ms`, before they are made.
    pub fn book(&mut self, at_ms: u64, count: u64) {
        if count > 0 {
            self.0.push_back(Batch { at_ms, count });
        }
    }

    /// The batch booked at `at_ms` made only `made` of its deletions.
    pub fn settle(&mut self, at_ms: u64, made: u64) {
        if let Some(batch) = self.0.iter_mut().rev().find(|batch| batch.at_ms == at_ms) {
            batch.count = batch.count.min(made);
        }
        self.0.retain(|batch| batch.count > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_budget_is_what_the_window_has_not_spent() {
        let mut deletions = Deletions::default();
        assert_eq!(deletions.left(0, HOUR, 100), 100);
        deletions.book(1000, 60);
        deletions.book(2000, 50);
        deletions.settle(2000, 40);
        assert_eq!(deletions.left(3000, HOUR, 100), 0);
        // An hour after the first batch, its part of the budget is back.
        assert_eq!(deletions.left(1000 + 3_600_000, HOUR, 100), 60);
        assert_eq!(deletions.left(2000 + 3_600_000, HOUR, 100), 100);
        assert_eq!(deletions, Deletions::default());
    }

    #[test]
    fn a_batch_that_made_nothing_is_forgotten_and_one_never_settled_counts_whole() {
        let mut deletions = Deletions::default();
        deletions.book(1000, 5);
        deletions.settle(1000, 0);
        assert_eq!(deletions.count(), 0);
        deletions.book(2000, 5);
        let saved = serde_json::to_string(&deletions).unwrap();
        assert_eq!(saved, r#"[{"at_ms":2000,"count":5}]"#);
        let mut read: Deletions = serde_json::from_str(&saved).unwrap();
        assert_eq!(read.left(2500, HOUR, 8), 3);
    }
}
