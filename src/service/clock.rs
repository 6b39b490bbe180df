//! The wall clock every service reads: milliseconds since the Unix epoch, the unit of the state
//! machine's times, the logs' stamps, the leases and the usage log.

use std::time::{SystemTime, UNIX_EPOCH};

use super::state::UnixMillis;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
