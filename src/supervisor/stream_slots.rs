//! How many live streams the panel serves at once: every server-sent-event stream holds a
//! connection (and a log stream a reader of the log broadcast) for as long as the browser stays,
//! so each kind has a fixed number of slots, and one more is refused with a 503 that says
//! what to do instead of piling up until the pod runs out of memory or file descriptors.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::api_error::ApiError;

/// Live log streams at once (`/api/logs/stream`).
pub const LOG_STREAMS: usize = 32;
/// Live status streams at once (`/api/status/stream`).
pub const STATUS_STREAMS: usize = 128;

/// The free slots of each kind of stream.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    logs: Slots,
    status: Slots,
}

#[derive(Debug, Clone)]
struct Slots {
    free: Arc<Semaphore>,
    limit: usize,
}

/// A stream's slot, given back when the stream ends (the client left).
#[derive(Debug)]
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl Default for StreamSlots {
    fn default() -> Self {
        Self::new(LOG_STREAMS, STATUS_STREAMS)
    }
}

impl StreamSlots {
    /// `logs` log streams and `status` status streams at once.
    pub fn new(logs: usize, status: usize) -> Self {
        let slots = |limit| Slots {
            free: Arc::new(Semaphore::new(limit)),
            limit,
        };
        Self {
            logs: slots(logs),
            status: slots(status),
        }
    }

    /// A slot for a live log stream, or the 503 to answer.
    pub fn log_stream(&self) -> Result<StreamSlot, ApiError> {
        take(
            &self.logs,
            "live log streams",
            "close other panel tabs, or page through GET /api/logs?after=<cursor> instead",
        )
    }

    /// A slot for a live status stream, or the 503 to answer.
    pub fn status_stream(&self) -> Result<StreamSlot, ApiError> {
        take(
            &self.status,
            "live status streams",
            "close other panel tabs, or poll GET /api/status instead",
        )
    }
}

fn take(slots: &Slots, what: &str, hint: &str) -> Result<StreamSlot, ApiError> {
    Arc::clone(&slots.free)
        .try_acquire_owned()
        .map(|permit| StreamSlot { _permit: permit })
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the pod already serves {} {what}, its limit", slots.limit),
                hint,
            )
        })
}
