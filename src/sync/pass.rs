//! One pass of one user folder, in three steps, so that a file on the remote is only ever a
//! whole version a user made:
//! 1. upload: an async `sync/copy` from the volume into the folder's upload place
//!    (`layout::UserFolder::upload`), comparing against the final folder (`CompareDest`), with
//!    the excludes and `MinAge` in `_filter`. The filter only sees the source and the upload
//!    place, never the final folder: a file uploaded a moment ago is not taken for a missing
//!    one (remotes that cannot keep modification times give it the upload's time).
//! 2. into place: an async `sync/move` from the upload place into the final folder, which every
//!    backend the sync supports does server-side, file by file (overwritten versions go to the
//!    dated trash in a mirror). An upload cut short stays in the upload place, which the next
//!    pass empties first.
//! 3. deletions (mirror only): the files on the remote that are no longer on the volume (and
//!    not excluded) go to the trash or are deleted, within the folder's deletion budget (booked
//!    in the ledger first, see `budget`), and only after the first two steps succeeded; then
//!    the folders they left empty are removed (never the user's folder itself).
//!
//! Each pass uploads into its own folder of the upload place, named by the lease's fencing
//! token, and checks before steps 2 and 3 that the lease still holds that token: a pod that
//! lost the lease (frozen, then taken over) never moves or deletes anything in the final folder.
//! A pass told to stop (the lease went to another pod) stops its rclone job (`job/stop`) and
//! waits until rclone says it ended.
//!
//! The empty-source guard runs before all of it. Bandwidth and transactions-per-second limits
//! are not per call: rclone applies `_config.BwLimit`/`TPSLimit` only from its global flags,
//! so they are flags of `rclone rcd` (see `rcd`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::Deletions;
use super::guard::{self, Source};
use super::layout::{self, UserFolder, EXCLUDES};
use super::lease::Leases;
use super::ledger::Ledger;
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
    /// `remote:root/.podstack/upload/output/alice`; this pass uploads into `<upload>/<token>`.
    pub upload: String,
    /// The lease's fencing token this pass runs under.
    pub token: u64,
    /// `remote:root/.trash/<date>/output/alice` for a mirror with the trash on.
    pub trash: Option<String>,
    pub transfers: u32,
    pub checkers: u32,
    /// How many files the mirror may still delete in this folder (`max_delete` less the
    /// deletions of the window, plus what a person released).
    pub delete_budget: u64,
    /// `sync.min_age`; none on the final pass, which runs after every service of the pod
    /// stopped: nothing is being written any more, and an image saved a moment before the
    /// stop is uploaded now rather than at some later start (seen with the real ComfyUI).
    pub min_age: Option<Duration>,
    pub final_pass: bool,
}

impl PassPlan {
    /// The plan for a folder, from the manifest's `[sync]`.
    pub fn new(
        sync: &Sync,
        mode: SyncMode,
        local: PathBuf,
        (remote, upload): (String, String),
        trash: Option<String>,
        final_pass: bool,
    ) -> Self {
        Self {
            mode,
            local,
            remote,
            upload,
            token: 0,
            trash: trash.filter(|_| mode == SyncMode::Mirror && sync.trash),
            transfers: sync.transfers,
            checkers: sync.checkers,
            delete_budget: u64::from(sync.max_delete),
            min_age: (!final_pass && !sync.min_age.0.is_zero()).then_some(sync.min_age.0),
            final_pass,
        }
    }

    /// This pass's own folder in the upload place.
    pub fn upload_dir(&self) -> String {
        format!("{}/{}", self.upload, self.token)
    }

    /// The upload step's `sync/copy` body (without `_async`).
    pub fn upload_body(&self) -> Value {
        let mut filter = json!({ "ExcludeRule": EXCLUDES });
        if let Some(min_age) = self.min_age {
            filter["MinAge"] = json!(crate::duration::HumanDuration(min_age).to_string());
        }
        json!({
            "srcFs": self.local.display().to_string(),
            "dstFs": self.upload_dir(),
            // A folder whose files are all in the final folder already is not made in the
            // upload place, so rclone (1.66 and later) must not set its time there: it would
            // fail the pass on every folder whose time changed (a file deleted in it).
            "_config": {
                "Transfers": self.transfers,
                "Checkers": self.checkers,
                "CompareDest": [self.remote],
                "NoUpdateDirModTime": true,
            },
            "_filter": filter,
        })
    }

    /// The `sync/move` body (without `_async`) that puts the uploads into place.
    pub fn move_body(&self) -> Value {
        let mut config = json!({
            "Transfers": self.transfers,
            "Checkers": self.checkers,
        });
        if let Some(trash) = &self.trash {
            config["BackupDir"] = json!(trash);
        }
        json!({
            "srcFs": self.upload_dir(),
            "dstFs": self.remote,
            "deleteEmptySrcDirs": true,
            "_config": config,
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
    /// Files no longer on the volume that stay on the remote: the delete budget is spent.
    pub held: u64,
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
    /// The lease went to another pod: the pass stopped, or never touched the final folder.
    Stopped(String),
}

/// What a pass checks before it changes the final folder, where it books its deletions, and
/// what it hears when told to stop.
#[derive(Debug)]
pub struct PassControl {
    pub leases: Leases,
    pub ledger: Ledger,
    pub folder: UserFolder,
    /// Turns `true` when the pass must stop.
    pub stop: watch::Receiver<bool>,
}

impl PassControl {
    /// `Err(Stopped)` when the pass must not go on: told to stop, or the lease no longer
    /// holds the pass's token.
    async fn still_mine(&self, token: u64) -> Result<(), PassOutcome> {
        if *self.stop.borrow() {
            return Err(PassOutcome::Stopped(
                "stopped: the lease went to another pod".to_owned(),
            ));
        }
        let (leases, folder) = (self.leases.clone(), self.folder.clone());
        let holds = tokio::task::spawn_blocking(move || leases.holds(&folder, token))
            .await
            .unwrap_or(false);
        if holds {
            Ok(())
        } else {
            Err(PassOutcome::Stopped(format!(
                "stopped: {} is no longer this pod's under the lease it started with",
                self.folder
            )))
        }
    }
}

impl PassControl {
    /// Changes the folder's deletions in the ledger on the volume.
    async fn book(
        &self,
        change: impl FnOnce(&mut Deletions) + Send + 'static,
    ) -> std::io::Result<()> {
        let (ledger, folder) = (self.ledger.clone(), self.folder.clone());
        tokio::task::spawn_blocking(move || ledger.update_deletions(&folder, change))
            .await
            .map_err(std::io::Error::other)?
    }
}

impl From<RcError> for PassOutcome {
    fn from(err: RcError) -> Self {
        match err {
            RcError::Unreachable(_) => Self::Lost(err.to_string()),
            RcError::Refused { .. } | RcError::Unexpected(_) => Self::Failed(err.to_string()),
        }
    }
}

/// Runs the pass; `progress` hears the upload's figures while it runs.
pub async fn run(
    client: &RcClient,
    plan: &PassPlan,
    mut control: PassControl,
    mut progress: impl FnMut(Stats),
) -> PassOutcome {
    match steps(client, plan, &mut control, &mut progress).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

async fn steps(
    client: &RcClient,
    plan: &PassPlan,
    control: &mut PassControl,
    progress: &mut impl FnMut(Stats),
) -> Result<PassOutcome, PassOutcome> {
    let started = Instant::now();
    let local = plan.local.clone();
    let source = tokio::task::spawn_blocking(move || Source::of(&local))
        .await
        .unwrap_or(Source::Missing);
    if source != Source::HasFiles {
        match plan.mode {
            SyncMode::Copy if source == Source::Missing => return Ok(PassOutcome::NothingToSync),
            SyncMode::Copy => {}
            SyncMode::Mirror => {
                let remote_files = client.count_files(&plan.remote).await?.unwrap_or(0);
                if let Some(refusal) = guard::refusal(source, &plan.local, remote_files) {
                    return Ok(PassOutcome::Refused(refusal));
                }
                if source == Source::Missing {
                    return Ok(PassOutcome::NothingToSync);
                }
            }
        }
    }
    // What an earlier pass left on its way (rclone or the pod killed mid-upload, a pod that
    // lost the lease) goes first: only this pass's complete uploads are moved into place.
    // `mkdir` first, so that a missing folder is no error in rclone's log.
    control.still_mine(plan.token).await?;
    client.mkdir(&plan.upload).await?;
    client.purge(&plan.upload).await?;
    let uploaded = follow(
        client,
        client.start_job("sync/copy", plan.upload_body()).await?,
        &mut control.stop,
        progress,
    )
    .await?;
    if uploaded.transfers > 0 {
        control.still_mine(plan.token).await?;
        follow(
            client,
            client.start_job("sync/move", plan.move_body()).await?,
            &mut control.stop,
            &mut |_| {},
        )
        .await?;
    }
    let (deleted, held) = match plan.mode {
        SyncMode::Mirror => {
            control.still_mine(plan.token).await?;
            delete_extraneous(client, plan, control).await?
        }
        SyncMode::Copy => (0, 0),
    };
    Ok(PassOutcome::Synced(PassFigures {
        files: uploaded.transfers,
        bytes: uploaded.bytes,
        deleted,
        held,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Polls the job until it ends; its final figures. Told to stop, it stops the job and waits
/// until rclone says it ended.
async fn follow(
    client: &RcClient,
    job: u64,
    stop: &mut watch::Receiver<bool>,
    progress: &mut impl FnMut(Stats),
) -> Result<Stats, PassOutcome> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = async { drop(stop.wait_for(|stop| *stop).await) } => {
                client.stop_job(job).await?;
                while !client.job_status(job).await?.finished {
                    tokio::time::sleep(POLL).await;
                }
                client.forget_stats(job).await;
                return Err(PassOutcome::Stopped(
                    "stopped (rclone's job/stop): the lease went to another pod".to_owned(),
                ));
            }
        }
        let status = client.job_status(job).await?;
        let stats = client.stats(job).await.unwrap_or_default();
        if !status.finished {
            progress(stats);
            continue;
        }
        client.forget_stats(job).await;
        if !status.success {
            return Err(PassOutcome::Failed(status.error));
        }
        return Ok(stats);
    }
}

/// The mirror's deletions: the remote's files that the volume no longer has, to the trash
/// (or deleted without one), as many as the budget allows, booked in the ledger before they
/// are made; then the folders they left empty; how many went and how many are held.
async fn delete_extraneous(
    client: &RcClient,
    plan: &PassPlan,
    control: &PassControl,
) -> Result<(u64, u64), PassOutcome> {
    // The folder exists after a pass, and making it keeps rclone's log free of a "directory
    // not found" error for a folder not yet on the remote.
    client.mkdir(&plan.remote).await?;
    let on_remote = client.list_files(&plan.remote).await?;
    let local = plan.local.clone();
    let on_volume = tokio::task::spawn_blocking(move || files_of(&local))
        .await
        .map_err(|err| PassOutcome::Failed(format!("listing the volume failed: {err}")))?
        .map_err(|err| {
            PassOutcome::Failed(format!(
                "cannot list {} to find the deletions: {err}",
                plan.local.display()
            ))
        })?;
    let doomed = extraneous(on_remote, &on_volume);
    let allowed = usize::try_from(plan.delete_budget).unwrap_or(usize::MAX);
    let batch = doomed.len().min(allowed);
    let held = u64::try_from(doomed.len() - batch).unwrap_or(u64::MAX);
    if batch == 0 {
        return Ok((0, held));
    }
    let booked = u64::try_from(batch).unwrap_or(u64::MAX);
    let at_ms = crate::service::clock::now_ms();
    control
        .book(move |deletions| deletions.book(at_ms, booked))
        .await
        .map_err(|err| {
            PassOutcome::Failed(format!(
                "cannot book {booked} deletion(s) in the sync ledger, so none was made: {err}"
            ))
        })?;
    let mut deleted = 0;
    let made = delete_files(client, plan, &control.stop, &doomed[..batch], &mut deleted).await;
    if let Err(err) = control
        .book(move |deletions| deletions.settle(at_ms, deleted))
        .await
    {
        // The booking stands: the budget counts every deletion booked, made or not.
        tracing::warn!("sync: cannot settle the deletions booked in the sync ledger: {err}");
    }
    made?;
    // What the deletions left empty goes too; the user's folder itself stays.
    client.remove_empty_folders(&plan.remote).await?;
    Ok((deleted, held))
}

/// Deletes `paths` of the final folder (to the trash when it is on), counting into `deleted`.
async fn delete_files(
    client: &RcClient,
    plan: &PassPlan,
    stop: &watch::Receiver<bool>,
    paths: &[String],
    deleted: &mut u64,
) -> Result<(), PassOutcome> {
    for path in paths {
        if *stop.borrow() {
            return Err(PassOutcome::Stopped(
                "stopped: the lease went to another pod".to_owned(),
            ));
        }
        match &plan.trash {
            Some(trash) => client.move_file(&plan.remote, trash, path).await?,
            None => client.delete_file(&plan.remote, path).await?,
        }
        *deleted += 1;
    }
    Ok(())
}

/// The remote paths without a file on the volume, excluded ones aside (never uploaded, so
/// never deleted either), in order.
fn extraneous(on_remote: Vec<String>, on_volume: &BTreeSet<String>) -> Vec<String> {
    let mut doomed: Vec<String> = on_remote
        .into_iter()
        .filter(|path| !on_volume.contains(path) && !layout::excluded(Path::new(path)))
        .collect();
    doomed.sort();
    doomed
}

/// Every regular file under `dir`, by its path relative to it with `/` between components.
fn files_of(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            let parts: Vec<_> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect();
            found.insert(parts.join("/"));
        }
    }
    Ok(found)
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

    fn plan(sync: &Sync, mode: SyncMode, final_pass: bool) -> PassPlan {
        let mut plan = PassPlan::new(
            sync,
            mode,
            PathBuf::from("/workspace/output/alice"),
            (
                "gdrive:Out/output/alice".to_owned(),
                "gdrive:Out/.podstack/upload/output/alice".to_owned(),
            ),
            Some("gdrive:Out/.trash/2026-05-01/output/alice".to_owned()),
            final_pass,
        );
        plan.token = 1_780_000_000_000;
        plan
    }

    #[test]
    fn the_upload_filters_the_source_and_only_compares_with_the_final_folder() {
        let plan = plan(&sync(), SyncMode::Mirror, false);
        assert_eq!(
            plan.upload_body(),
            json!({
                "srcFs": "/workspace/output/alice",
                "dstFs": "gdrive:Out/.podstack/upload/output/alice/1780000000000",
                "_config": {
                    "Transfers": 6,
                    "Checkers": 12,
                    "CompareDest": ["gdrive:Out/output/alice"],
                    "NoUpdateDirModTime": true
                },
                "_filter": {"ExcludeRule": ["*.tmp", "*.partial", "/temp/**"], "MinAge": "10s"}
            })
        );
        assert_eq!(
            plan.move_body(),
            json!({
                "srcFs": "gdrive:Out/.podstack/upload/output/alice/1780000000000",
                "dstFs": "gdrive:Out/output/alice",
                "deleteEmptySrcDirs": true,
                "_config": {
                    "Transfers": 6,
                    "Checkers": 12,
                    "BackupDir": "gdrive:Out/.trash/2026-05-01/output/alice"
                }
            })
        );
    }

    #[test]
    fn a_copy_has_no_trash_and_the_final_pass_takes_files_of_any_age() {
        let plan = plan(&sync(), SyncMode::Copy, true);
        assert_eq!(plan.move_body()["_config"].get("BackupDir"), None);
        assert_eq!(plan.upload_body()["_filter"].get("MinAge"), None);
    }

    #[test]
    fn the_trash_can_be_turned_off() {
        let mut sync = sync();
        sync.trash = false;
        sync.min_age = HumanDuration::from_millis(1500);
        let plan = plan(&sync, SyncMode::Mirror, false);
        assert_eq!(plan.move_body()["_config"].get("BackupDir"), None);
        assert_eq!(plan.upload_body()["_filter"]["MinAge"], "1500ms");
    }

    #[test]
    fn deletions_are_the_remote_files_the_volume_lost_excluded_ones_aside() {
        let on_volume = BTreeSet::from(["a.png".to_owned(), "sub/b.png".to_owned()]);
        let on_remote = [
            "sub/c.png",
            "a.png",
            "old.png",
            "half.png.partial",
            "temp/x.png",
            "sub/b.png",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(extraneous(on_remote, &on_volume), ["old.png", "sub/c.png"]);
    }

    #[test]
    fn the_volume_is_listed_with_slashes_and_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/empty")).unwrap();
        std::fs::write(dir.path().join("a.png"), b"a").unwrap();
        std::fs::write(dir.path().join("sub/b.png"), b"b").unwrap();
        assert_eq!(
            files_of(dir.path()).unwrap(),
            BTreeSet::from(["a.png".to_owned(), "sub/b.png".to_owned()])
        );
    }
}
