//! One service's status as the panel and `/api/status` show it: its state machine's state, its
//! process, restarts and start-up time. The pod's whole status (`supervisor::status`) holds one
//! per slot, the sync's report holds its own.

use serde::Serialize;

use super::state::ServiceState;

/// One running (or runnable) service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    #[serde(flatten)]
    pub state: ServiceState,
    /// The main pid while a process runs.
    pub pid: Option<u32>,
    /// Restarts after failures since the supervisor started.
    pub restarts: u64,
    /// Seconds from the start request to ready, of the last start that got there.
    pub last_start_s: Option<f64>,
    /// Seconds a start is expected to take at most (ComfyUI's); past it the panel says the
    /// start takes longer than expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_start_s: Option<f64>,
    /// Where its log is: `GET /api/logs?service=<name>`.
    pub log: &'static str,
}
