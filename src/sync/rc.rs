//! The client of `rclone rcd`'s remote control: JSON POSTs with HTTP basic auth to loopback
//! (FACTS: every call is a POST; with a user and password every call needs them). Passes run
//! as async jobs (`sync/sync`, `sync/copy` with `_async`), polled with `job/status` and their
//! stats group `job/<id>` in `core/stats`.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Calls that only read rclone's state answer at once.
const QUICK: Duration = Duration::from_secs(10);
/// Sizing a remote folder lists it.
const LISTING: Duration = Duration::from_secs(120);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcError {
    /// rclone is not there (dead, restarting) or did not answer in time.
    #[error("rclone's remote control does not answer: {0}")]
    Unreachable(String),
    /// rclone answered with an error.
    #[error("{error}")]
    Refused { status: u16, error: String },
    #[error("rclone answered something unexpected: {0}")]
    Unexpected(String),
}

/// A finished or running job.
#[derive(Debug, Clone, Deserialize)]
pub struct JobStatus {
    pub finished: bool,
    pub success: bool,
    #[serde(default)]
    pub error: String,
}

/// Transfer figures of a job's stats group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub transfers: u64,
    #[serde(default)]
    pub total_transfers: u64,
    #[serde(default)]
    pub deletes: u64,
    /// Bytes per second, now.
    #[serde(default)]
    pub speed: f64,
    /// Errors counted so far (a file that gave up after its retries, a failed listing).
    #[serde(default)]
    pub errors: u64,
    /// The last of them, while the job goes on.
    #[serde(default)]
    pub last_error: String,
}

/// A job's stats group.
pub fn group(job: u64) -> String {
    format!("job/{job}")
}

/// The remote control of one `rclone rcd` process.
#[derive(Clone)]
pub struct RcClient {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl fmt::Debug for RcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RcClient {
    pub fn new(http: reqwest::Client, port: u16, user: &str, password: &str) -> Self {
        Self {
            http,
            base: format!("http://127.0.0.1:{port}"),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, RcError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| RcError::Unreachable(err.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| RcError::Unreachable(err.without_url().to_string()))?;
        if !status.is_success() {
            let error = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|value| value["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(RcError::Refused {
                status: status.as_u16(),
                error,
            });
        }
        serde_json::from_str(&text).map_err(|err| RcError::Unexpected(format!("{method}: {err}")))
    }

    /// Answers when rclone is up.
    pub async fn noop(&self) -> Result<(), RcError> {
        self.call::<Value>("rc/noop", &json!({}), QUICK)
            .await
            .map(|_| ())
    }

    /// Starts `method` (`sync/sync`, `sync/copy`) as an async job with `body`; its id.
    pub async fn start_job(&self, method: &str, mut body: Value) -> Result<u64, RcError> {
        body["_async"] = json!(true);
        let answer: Value = self.call(method, &body, QUICK).await?;
        answer["jobid"]
            .as_u64()
            .ok_or_else(|| RcError::Unexpected(format!("{method} gave no job id: {answer}")))
    }

    /// Asks rclone to stop a running job.
    pub async fn stop_job(&self, job: u64) -> Result<(), RcError> {
        self.call::<Value>("job/stop", &json!({ "jobid": job }), QUICK)
            .await
            .map(|_| ())
    }

    pub async fn job_status(&self, job: u64) -> Result<JobStatus, RcError> {
        self.call("job/status", &json!({ "jobid": job }), QUICK)
            .await
    }

    pub async fn stats(&self, job: u64) -> Result<Stats, RcError> {
        self.call("core/stats", &json!({ "group": group(job) }), QUICK)
            .await
    }

    /// Drops a finished job's stats group, which rclone would keep for good.
    pub async fn forget_stats(&self, job: u64) {
        let _ = self
            .call::<Value>("core/stats-delete", &json!({ "group": group(job) }), QUICK)
            .await;
    }

    /// Makes the folder `fs` (`remote:path`); nothing happens when it exists.
    pub async fn mkdir(&self, fs: &str) -> Result<(), RcError> {
        self.call::<Value>(
            "operations/mkdir",
            &json!({ "fs": fs, "remote": "" }),
            LISTING,
        )
        .await
        .map(|_| ())
    }

    /// Removes the folder `fs` and everything in it.
    pub async fn purge(&self, fs: &str) -> Result<(), RcError> {
        self.call::<Value>(
            "operations/purge",
            &json!({ "fs": fs, "remote": "" }),
            LISTING,
        )
        .await
        .map(|_| ())
    }

    /// The paths of every file under the folder `fs`, relative to it; empty when it does not
    /// exist.
    pub async fn list_files(&self, fs: &str) -> Result<Vec<String>, RcError> {
        let body = json!({
            "fs": fs,
            "remote": "",
            "opt": {"recurse": true, "filesOnly": true, "noModTime": true, "noMimeType": true},
        });
        match self.call::<Value>("operations/list", &body, LISTING).await {
            Ok(answer) => Ok(answer["list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry["Path"].as_str().map(str::to_owned))
                .collect()),
            Err(RcError::Refused { status: 404, .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// Moves the file `path` of the folder `from` to the same path under the folder `to`
    /// (server-side where the remote can).
    pub async fn move_file(&self, from: &str, to: &str, path: &str) -> Result<(), RcError> {
        let body = json!({"srcFs": from, "srcRemote": path, "dstFs": to, "dstRemote": path});
        self.call::<Value>("operations/movefile", &body, LISTING)
            .await
            .map(|_| ())
    }

    /// Removes the empty folders under the folder `fs`, leaving `fs` itself.
    pub async fn remove_empty_folders(&self, fs: &str) -> Result<(), RcError> {
        self.call::<Value>(
            "operations/rmdirs",
            &json!({ "fs": fs, "remote": "", "leaveRoot": true }),
            LISTING,
        )
        .await
        .map(|_| ())
    }

    /// Deletes the file `path` of the folder `fs`.
    pub async fn delete_file(&self, fs: &str, path: &str) -> Result<(), RcError> {
        self.call::<Value>(
            "operations/deletefile",
            &json!({ "fs": fs, "remote": path }),
            LISTING,
        )
        .await
        .map(|_| ())
    }

    /// How many files the remote folder `fs` (`remote:path`) holds; `None` when it does not
    /// exist. Whether it exists is asked of the remote's top first (`operations/stat` finds no
    /// item there instead of failing), so a folder not yet on the remote is no error in
    /// rclone's log.
    pub async fn count_files(&self, fs: &str) -> Result<Option<u64>, RcError> {
        let (top, path) = fs.split_once(':').unwrap_or((fs, ""));
        let stat: Value = self
            .call(
                "operations/stat",
                &json!({ "fs": format!("{top}:"), "remote": path }),
                LISTING,
            )
            .await?;
        if stat["item"].is_null() {
            return Ok(None);
        }
        match self
            .call::<Value>("operations/size", &json!({ "fs": fs }), LISTING)
            .await
        {
            Ok(size) => Ok(size["count"].as_u64()),
            Err(RcError::Refused { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_jobs_error_is_read_from_its_stats() {
        // `core/stats` of a job's group as rclone 1.75.2 answers while a file has failed.
        let stats: Stats = serde_json::from_value(json!({
            "bytes": 3_560_576, "checks": 0, "deletes": 0, "errors": 1, "fatalError": false,
            "lastError": "Put \"http://127.0.0.1:1/a.png\": dial tcp 127.0.0.1:1: connect: connection refused",
            "retryError": true, "speed": 0.0, "totalTransfers": 8, "transfers": 1
        }))
        .unwrap();
        assert_eq!(
            (stats.errors, stats.transfers, stats.total_transfers),
            (1, 1, 8)
        );
        assert!(stats.last_error.ends_with("connection refused"));
        let quiet: Stats = serde_json::from_value(json!({"bytes": 5, "errors": 0})).unwrap();
        assert_eq!(quiet.last_error, "");
    }
}
