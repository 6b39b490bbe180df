//! The JSON results the benchmark scripts write (`ci/bench-results.sh`): what each chart reads of
//! them. Fields the charts do not draw are left unread.

use serde::Deserialize;

/// How a benchmark was run: the command, when, on which commit, and how loaded the shared
/// machine was.
#[derive(Debug, Deserialize)]
pub struct Run {
    pub command: String,
    pub measured_at: String,
    pub commit: String,
    pub cores: u32,
    pub load_average_at_start: Vec<f64>,
    pub load_average_at_end: Vec<f64>,
}

impl Run {
    /// One line for a chart's foot.
    pub fn note(&self) -> String {
        let load = |averages: &[f64]| {
            averages
                .first()
                .map_or("?".to_owned(), |l| format!("{l:.1}"))
        };
        format!(
            "measured {} at {} by `{}`, {} cores, load average {} at start, {} at end",
            self.measured_at,
            self.commit,
            self.command,
            self.cores,
            load(&self.load_average_at_start),
            load(&self.load_average_at_end)
        )
    }
}

/// `ci/bench-sync.sh`: podstack's sync and the field's loop on one workload.
#[derive(Debug, Deserialize)]
pub struct SyncBench {
    pub run: Run,
    pub workload: SyncWorkload,
    pub podstack: SyncFigures,
    pub field_loop: SyncFigures,
}

#[derive(Debug, Deserialize)]
pub struct SyncWorkload {
    pub users: u32,
    pub files_per_user: u32,
    pub gigabytes: f64,
    pub min_age_s: f64,
}

#[derive(Debug, Deserialize)]
pub struct SyncFigures {
    pub p50_s: f64,
    pub p95_s: f64,
    pub all_remote_s: Option<f64>,
    pub uploads_per_file: f64,
}

/// `ci/bench-supervisor.sh`: among its figures, `GET /api/status` under concurrent load.
#[derive(Debug, Deserialize)]
pub struct SupervisorBench {
    pub run: Run,
    pub status_under_load: Vec<StatusRound>,
}

#[derive(Debug, Deserialize)]
pub struct StatusRound {
    pub connections: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests_per_s: f64,
}

/// `ci/plan-vs-docker.sh`: the bytes `podstack plan` predicted per change against the bytes of
/// the layers Docker rebuilt.
#[derive(Debug, Deserialize)]
pub struct PlanBench {
    pub run: Run,
    pub stack: String,
    pub changes: Vec<PlanChange>,
}

#[derive(Debug, Deserialize)]
pub struct PlanChange {
    pub change: String,
    pub planned_bytes: u64,
    pub planned_unknown_layers: u32,
    pub docker_bytes: u64,
    pub verdicts_that_differ: Vec<String>,
}
