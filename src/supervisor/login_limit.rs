//! How fast anyone may guess the panel token: `/api/login` spends one attempt from a bucket
//! that holds [`BURST`] and refills one a second, shared by every client (behind RunPod's
//! proxy they all arrive from the same address). A person who mistypes gets ten tries at
//! once; a script gets one a second instead of a thousand.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Attempts at once.
pub const BURST: u32 = 10;
/// One attempt comes back every this long.
const REFILL: Duration = Duration::from_secs(1);

/// The attempts left.
#[derive(Debug)]
pub struct LoginLimit {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    left: u32,
    /// When the last attempt came back (or the bucket was full).
    refilled: Instant,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl LoginLimit {
    fn new(now: Instant) -> Self {
        Self {
            bucket: Mutex::new(Bucket {
                left: BURST,
                refilled: now,
            }),
        }
    }

    /// Spends one attempt at `now`, or says how long until the next one.
    pub fn attempt(&self, now: Instant) -> Result<(), Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.refilled);
        let back = u32::try_from(elapsed.as_secs() / REFILL.as_secs()).unwrap_or(u32::MAX);
        if back > 0 {
            bucket.left = bucket.left.saturating_add(back).min(BURST);
            bucket.refilled += REFILL * back.min(BURST);
            if bucket.left == BURST {
                bucket.refilled = now;
            }
        }
        if bucket.left == 0 {
            return Err(REFILL.saturating_sub(now.saturating_duration_since(bucket.refilled)));
        }
        bucket.left -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_at_once_then_one_a_second() {
        let start = Instant::now();
        let limit = LoginLimit::new(start);
        for _ in 0..BURST {
            assert_eq!(limit.attempt(start), Ok(()));
        }
        assert_eq!(limit.attempt(start), Err(Duration::from_secs(1)));
        let later = start + Duration::from_millis(1500);
        assert_eq!(limit.attempt(later), Ok(()));
        assert!(limit.attempt(later).is_err());
        // A quiet minute fills the bucket again, no more than full.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..BURST {
            assert_eq!(limit.attempt(much_later), Ok(()));
        }
        assert!(limit.attempt(much_later).is_err());
    }
}
