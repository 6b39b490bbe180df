//! What the sync service shows: `GET /api/sync` (the rclone service's state, the remote and
//! where each option came from, and per user and folder: who syncs it, the last success, the
//! files and bytes, what is pending and for how long, the speed now, the last error with a
//! hint) and the `podstack_sync_*` figures in `/metrics`.

use std::fmt::Write as _;

use serde::Serialize;

use super::pass::PassFigures;
use super::remote::OptionSummary;
use super::shared_drive::SharedDrive;
use crate::manifest::{SyncFolderKind, SyncMode};
use crate::service::state::UnixMillis;
use crate::service::status::ServiceStatus;

/// The whole sync service.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The `rclone rcd` service.
    pub service: ServiceStatus,
    /// `remote:root`.
    pub remote: String,
    pub backend: String,
    /// Option names and where each came from; values only when they are not secret.
    pub options: Vec<OptionSummary>,
    /// The Google Shared Drive synced into, and how it was found.
    pub shared_drive: Option<SharedDriveNote>,
    /// Users this pod has served: their folders are this pod's to sync (when it holds the lease).
    pub users: Vec<String>,
    pub folders: Vec<FolderReport>,
    /// The final sync at shutdown, once it ran.
    pub final_sync: Option<FinalSync>,
    /// When rclone, failed after a crash loop, is started again (its cool-down's end).
    pub restart_at_ms: Option<u64>,
}

/// The Shared Drive in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedDriveNote {
    #[serde(flatten)]
    pub drive: SharedDrive,
    /// `configured` (sync.team_drive) or `discovered` (the only one `rclone backend drives` lists).
    pub found: &'static str,
}

/// Where a folder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderState {
    /// Another pod holds the lease and syncs it.
    HeldElsewhere,
    /// Up to date as far as this pod knows.
    Idle,
    /// Changes wait for their pass (min_age, debounce, or rclone coming back).
    Pending,
    Syncing,
    /// The empty-source guard refused the last mirror pass.
    Refused,
    /// The last pass failed; it is retried.
    Failing,
}

/// One user's folder.
#[derive(Debug, Clone, Serialize)]
pub struct FolderReport {
    pub user: String,
    pub folder: SyncFolderKind,
    pub mode: SyncMode,
    pub local: String,
    /// `remote:root/<folder>/<user>`.
    pub remote: String,
    pub state: FolderState,
    /// The pod holding the lease, when it is not this one.
    pub held_by: Option<String>,
    pub last_success_ms: Option<UnixMillis>,
    pub last_pass: Option<PassFigures>,
    /// Since the supervisor started.
    pub total: Totals,
    /// Files changed on the volume that no pass has covered yet.
    pub pending: u64,
    /// Seconds since the oldest pending change was noticed; 0 when nothing is pending.
    pub lag_s: f64,
    /// Bytes per second of the running pass.
    pub speed_bps: f64,
    pub last_error: Option<FolderError>,
    /// The last `rclone dedupe` on this folder.
    pub dedupe: Option<DedupeNote>,
    /// Files no longer on the volume that the mirror did not delete: `max_delete` deletions
    /// happened within `delete_window`. `POST /api/sync/release` lets them go.
    pub deletions_held: u64,
    /// Deletions counted against `max_delete` in the current window (as of the last pass).
    pub deleted_in_window: u64,
}

/// Counters since the supervisor started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub passes: u64,
    pub failures: u64,
    pub files: u64,
    pub bytes: u64,
    pub deleted: u64,
}

/// A failure, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderError {
    pub at_ms: UnixMillis,
    pub error: String,
    pub hint: String,
}

/// A dedupe run after rclone reported duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DedupeNote {
    pub at_ms: UnixMillis,
    pub outcome: String,
}

/// The final sync at shutdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalSync {
    pub seconds: f64,
    pub folders: Vec<FinalFolder>,
    /// Every folder's final pass finished, and none failed or was refused.
    pub complete: bool,
}

/// How one folder's final pass ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinalFolder {
    /// `output/alice`.
    pub folder: String,
    pub outcome: String,
}

/// A metric family: name, type, help, and its value for a folder (none: no sample).
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&FolderReport) -> Option<f64>,
);

impl SyncReport {
    /// The `podstack_sync_*` lines of `/metrics`.
    pub fn metrics(&self, out: &mut String) {
        let labels = |folder: &FolderReport| {
            format!(
                "{{user=\"{}\",folder=\"{}\"}}",
                folder.user,
                folder.folder.as_str()
            )
        };
        #[allow(clippy::cast_precision_loss)] // counters far below 2^53
        let families: [Family; 9] = [
            (
                "podstack_sync_files_total",
                "counter",
                "Files uploaded.",
                |f| Some(f.total.files as f64),
            ),
            (
                "podstack_sync_bytes_total",
                "counter",
                "Bytes uploaded.",
                |f| Some(f.total.bytes as f64),
            ),
            (
                "podstack_sync_deleted_total",
                "counter",
                "Files deleted on the remote (to the trash).",
                |f| Some(f.total.deleted as f64),
            ),
            (
                "podstack_sync_failures_total",
                "counter",
                "Failed or refused passes.",
                |f| Some(f.total.failures as f64),
            ),
            (
                "podstack_sync_pending_files",
                "gauge",
                "Changed files no pass has covered yet.",
                |f| Some(f.pending as f64),
            ),
            (
                "podstack_sync_lag_seconds",
                "gauge",
                "Age of the oldest pending change.",
                |f| Some(f.lag_s),
            ),
            (
                "podstack_sync_speed_bytes_per_second",
                "gauge",
                "Upload speed of the running pass.",
                |f| Some(f.speed_bps),
            ),
            (
                "podstack_sync_last_success_timestamp_seconds",
                "gauge",
                "When the last pass succeeded.",
                |f| f.last_success_ms.map(|ms| ms as f64 / 1000.0),
            ),
            (
                "podstack_sync_held_by_this_pod",
                "gauge",
                "1 when this pod holds the folder's lease.",
                |f| Some(f64::from(u8::from(f.held_by.is_none()))),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for folder in &self.folders {
                if let Some(value) = value(folder) {
                    let _ = writeln!(out, "{name}{} {value}", labels(folder));
                }
            }
        }
    }
}
