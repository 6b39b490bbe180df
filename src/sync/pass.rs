//! One pass of one user folder: the empty-source guard for a mirror, then an async rclone job
//! (`sync/sync` for a mirror, `sync/copy` for a copy) with the manifest's concurrency and the
//! safety settings in `_config` (`BackupDir` = the dated trash, `MaxDelete`) and the excludes
//! and `MinAge` in `_filter`, polled until it finishes. Bandwidth and transactions-per-second
//! limits are not per call: rclone applies `_config.BwLimit`/`TPSLimit` only from its global
//! flags, so they are flags of `rclone rcd` (see `rcd`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::guard::{self, Source};
use super::layout::{self, EXCLUDES};
use super::rc::{RcClient, RcError, Stats};
use crate::manifest::{Sync, SyncMode};

/// How often a running job is asked how it is doing.
const POLL: Duration = Duration::from_millis(300);

/// Everything one pass needs.
#[derive(Debug, Clone)]
pub struct PassPlan {
    pub mode: SyncMode,
    pub local: PathBuf,
    /// `remote:root/output/alice`.
    pub remote: String,
    /// `remote:root/.trash/<date>/output/alice` for a mirror with the trash on.
    pub trash: Option<String>,
    pub transfers: u32,
    pub checkers: u32,
    pub max_delete: u32,
    /// `None` on the final pass: nothing is being written any more.
    pub min_age: Option<Duration>,
}

impl PassPlan {
    /// The plan for a folder, from the manifest's `[sync]`.
    pub fn new(
        sync: &Sync,
        mode: SyncMode,
        local: PathBuf,
        remote: String,
        trash: Option<String>,
        final_pass: bool,
    ) -> Self {
        Self {
            mode,
            local,
            remote,
            trash: trash.filter(|_| mode == SyncMode::Mirror && sync.trash),
            transfers: sync.transfers,
            checkers: sync.checkers,
            max_delete: sync.max_delete,
            min_age: (!final_pass && !sync.min_age.0.is_zero()).then_some(sync.min_age.0),
        }
    }

    /// The remote-control call's body (without `_async`).
    pub fn body(&self) -> Value {
        let mut config = json!({
            "Transfers": self.transfers,
            "Checkers": self.checkers,
        });
        if self.mode == SyncMode::Mirror {
            config["MaxDelete"] = json!(self.max_delete);
            if let Some(trash) = &self.trash {
                config["BackupDir"] = json!(trash);
            }
        }
        let mut filter = json!({ "ExcludeRule": EXCLUDES });
        if let Some(min_age) = self.min_age {
            filter["MinAge"] = json!(crate::duration::HumanDuration(min_age).to_string());
        }
        json!({
            "srcFs": self.local.display().to_string(),
            "dstFs": self.remote,
            "_config": config,
            "_filter": filter,
        })
    }
}

/// What a finished pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PassFigures {
    /// Files uploaded.
    pub files: u64,
    pub bytes: u64,
    /// Files deleted (moved to the trash) on the remote.
    pub deleted: u64,
    pub seconds: f64,
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PassOutcome {
    Synced(PassFigures),
    /// No source folder and nothing on the remote, or a copy without a source: nothing to do.
    NothingToSync,
    /// The empty-source guard refused the mirror pass.
    Refused(String),
    /// rclone reported an error.
    Failed(String),
    /// rclone went away during the pass; it runs again once rclone is back.
    Lost(String),
}

impl From<RcError> for PassOutcome {
    fn from(err: RcError) -> Self {
        match err {
            RcError::Unreachable(_) => Self::Lost(err.to_string()),
            RcError::Refused { .. } | RcError::Unexpected(_) => Self::Failed(err.to_string()),
        }
    }
}

/// Runs the pass; `progress` hears the job's figures while it runs.
pub async fn run(
    client: &RcClient,
    plan: &PassPlan,
    mut progress: impl FnMut(Stats),
) -> PassOutcome {
    let started = Instant::now();
    let local = plan.local.clone();
    let source = tokio::task::spawn_blocking(move || Source::of(&local))
        .await
        .unwrap_or(Source::Missing);
    if source != Source::HasFiles {
        match plan.mode {
            SyncMode::Copy if source == Source::Missing => return PassOutcome::NothingToSync,
            SyncMode::Copy => {}
            SyncMode::Mirror => {
                let remote_files = match client.count_files(&plan.remote).await {
                    Ok(count) => count.unwrap_or(0),
                    Err(err) => return err.into(),
                };
                if let Some(refusal) = guard::refusal(source, &plan.local, remote_files) {
                    return PassOutcome::Refused(refusal);
                }
                if source == Source::Missing {
                    return PassOutcome::NothingToSync;
                }
            }
        }
    }
    let job = match client
        .start_job(layout::method(plan.mode), plan.body())
        .await
    {
        Ok(job) => job,
        Err(err) => return err.into(),
    };
    loop {
        tokio::time::sleep(POLL).await;
        let status = match client.job_status(job).await {
            Ok(status) => status,
            Err(err) => return err.into(),
        };
        let stats = client.stats(job).await.unwrap_or_default();
        if !status.finished {
            progress(stats);
            continue;
        }
        client.forget_stats(job).await;
        if !status.success {
            return PassOutcome::Failed(status.error);
        }
        return PassOutcome::Synced(PassFigures {
            files: stats.transfers,
            bytes: stats.bytes,
            deleted: stats.deletes,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;

    fn sync() -> Sync {
        toml::from_str(
            r#"remote = "gdrive"
backend = "drive"
root = "Out"
folders = [{ path = "output", mode = "mirror" }]
transfers = 6
checkers = 12
max_delete = 40
min_age = "10s"
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_mirror_pass_carries_the_trash_the_delete_guard_excludes_and_min_age() {
        let plan = PassPlan::new(
            &sync(),
            SyncMode::Mirror,
            PathBuf::from("/workspace/output/alice"),
            "gdrive:Out/output/alice".to_owned(),
            Some("gdrive:Out/.trash/2026-05-01/output/alice".to_owned()),
            false,
        );
        assert_eq!(
            plan.body(),
            json!({
                "srcFs": "/workspace/output/alice",
                "dstFs": "gdrive:Out/output/alice",
                "_config": {
                    "Transfers": 6,
                    "Checkers": 12,
                    "MaxDelete": 40,
                    "BackupDir": "gdrive:Out/.trash/2026-05-01/output/alice"
                },
                "_filter": {"ExcludeRule": ["*.tmp", "*.partial", "/temp/**"], "MinAge": "10s"}
            })
        );
    }

    #[test]
    fn a_copy_deletes_nothing_and_the_final_pass_takes_young_files() {
        let plan = PassPlan::new(
            &sync(),
            SyncMode::Copy,
            PathBuf::from("/workspace/input/alice"),
            "gdrive:Out/input/alice".to_owned(),
            Some("gdrive:Out/.trash/2026-05-01/input/alice".to_owned()),
            true,
        );
        let body = plan.body();
        assert_eq!(body["_config"], json!({"Transfers": 6, "Checkers": 12}));
        assert_eq!(body["_filter"].get("MinAge"), None);
    }

    #[test]
    fn the_trash_can_be_turned_off() {
        let mut sync = sync();
        sync.trash = false;
        sync.min_age = HumanDuration::from_millis(1500);
        let plan = PassPlan::new(
            &sync,
            SyncMode::Mirror,
            PathBuf::from("/v/output/a"),
            "gdrive:Out/output/a".to_owned(),
            Some("gdrive:Out/.trash/d/output/a".to_owned()),
            false,
        );
        let body = plan.body();
        assert_eq!(body["_config"].get("BackupDir"), None);
        assert_eq!(body["_filter"]["MinAge"], "1500ms");
    }
}
