//! The sync service with the real rclone (the release the images ship, see `support::rclone`):
//! the supervisor from `pod()`, a local-filesystem remote (rclone's `alias` of a temporary
//! folder) or `rclone serve webdav` on loopback, and the Google Drive rules through a fake
//! `rclone` first on PATH (`tests/fixtures/rclone`). Every wait polls with a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::http::{free_port, http};
use crate::support::pod::{pod, Pod, PodBuilder};
use crate::support::wait::{alive, eventually};
use crate::support::{rclone, repo};

/// A password for the WebDAV and SFTP remotes; rclone gets it obscured, as
/// RUNPOD_SECRET_RCLONE_PASS. The S3 remote's secret key.
const DAV_PASSWORD: &str = "correct-horse-battery-staple";
/// The S3 remote's access key.
const S3_ACCESS_KEY: &str = "podstack-studio";

/// A `[sync]` section syncing to `options`' remote: output mirrored, input copied,
/// workflows mirrored, quick timing for tests.
pub fn sync_section(remote: &str, backend: &str, options: Value) -> Value {
    json!({
        "remote": remote,
        "backend": backend,
        "root": "ComfyUI",
        "team_drive": "",
        "options": options,
        "folders": [
            {"path": "output", "mode": "mirror"},
            {"path": "input", "mode": "copy"},
            {"path": "workflows", "mode": "mirror"}
        ],
        "transfers": 4,
        "checkers": 8,
        "tpslimit": 0,
        "bwlimit": "",
        "min_age": "1s",
        "interval": "1m",
        "trash": true,
        "max_delete": 100,
        "heartbeat": "1s",
        "final_sync": "5s"
    })
}

/// A pod syncing to the folder `remote` through rclone's `alias` backend.
fn local_remote(remote: &Path) -> PodBuilder {
    pod().set(
        "/sync",
        sync_section(
            "vault",
            "alias",
            json!({"remote": remote.display().to_string()}),
        ),
    )
}

/// A running pod, and the rclone processes it started, killed at the end even when the pod
/// could not stop them (a test that kills the supervisor).
struct SyncPod {
    pod: Option<Pod>,
    rclones: Vec<u32>,
}

impl std::ops::Deref for SyncPod {
    type Target = Pod;

    fn deref(&self) -> &Pod {
        self.pod.as_ref().expect("the pod runs until the end")
    }
}

impl std::ops::DerefMut for SyncPod {
    fn deref_mut(&mut self) -> &mut Pod {
        self.pod.as_mut().expect("the pod runs until the end")
    }
}

impl Drop for SyncPod {
    fn drop(&mut self) {
        if let Some(pod) = self.pod.take() {
            let running = http(pod.panel, "GET", "/api/sync", None, &[])
                .ok()
                .and_then(|reply| serde_json::from_str::<Value>(&reply.body).ok())
                .and_then(|report| report["service"]["pid"].as_u64())
                .and_then(|pid| u32::try_from(pid).ok());
            self.rclones.extend(running);
            drop(pod);
        }
        for pid in &self.rclones {
            if alive(*pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl SyncPod {
    fn start(builder: PodBuilder) -> Self {
        rclone();
        Self {
            pod: Some(builder.start()),
            rclones: Vec::new(),
        }
    }

    fn report(&self) -> Value {
        let reply = self.get("/api/sync");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// The running rclone's pid, once it runs (remembered for the clean-up).
    fn rclone_pid(&mut self) -> u32 {
        let pid = eventually("rclone to run", || self.report()["service"]["pid"].as_u64());
        let pid = u32::try_from(pid).expect("a pid");
        if !self.rclones.contains(&pid) {
            self.rclones.push(pid);
        }
        pid
    }

    /// Polls the sync report until `done` holds; returns it.
    #[track_caller]
    fn wait_report(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < crate::support::wait::DEADLINE {
            last = self.report();
            if done(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail(&format!(
            "gave up waiting for {what}; last sync report:\n{last:#}"
        ))
    }

    /// Starts `user`'s ComfyUI: the pod serves the user from now on.
    fn serve(&self, user: &str) {
        let reply = self.post("/api/start", json!({ "user": user, "force": true }));
        assert_eq!(reply.status, 202, "{}", reply.body);
    }

    /// Whatever the sync and supervisor logs hold, and every API answer.
    fn everything_shown(&self) -> String {
        let mut shown = self.output();
        for path in ["/api/logs", "/api/status", "/api/sync", "/metrics"] {
            shown.push_str(&self.get(path).body);
        }
        for file in files_under(&self.volume.join(".podstack/logs")).keys() {
            shown.push_str(
                &std::fs::read_to_string(self.volume.join(".podstack/logs").join(file))
                    .unwrap_or_default(),
            );
        }
        shown
    }
}

/// The folder `kind` of `user` in a sync report.
fn folder<'a>(report: &'a Value, user: &str, kind: &str) -> &'a Value {
    report["folders"]
        .as_array()
        .and_then(|folders| {
            folders
                .iter()
                .find(|f| f["user"] == user && f["folder"] == kind)
        })
        .unwrap_or(&Value::Null)
}

/// Every file under `dir`, by relative path, with its size.
fn files_under(dir: &Path) -> BTreeMap<String, u64> {
    walk(dir)
        .into_iter()
        .map(|path| {
            let size = std::fs::metadata(&path).map_or(0, |meta| meta.len());
            let relative = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            (relative, size)
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the folder");
    std::fs::write(path, bytes).expect("write the file");
}

/// `len` bytes that differ from file to file.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Waits until `read` of the remote folder `dir` gives what `want` gives; fails with both and
/// the sync report at the deadline.
#[track_caller]
fn wait_remote_as<T: PartialEq + std::fmt::Debug>(
    pod: &SyncPod,
    dir: &Path,
    want: impl Fn() -> T,
    read: impl Fn(&Path) -> T,
) {
    let start = Instant::now();
    loop {
        let (want, found) = (want(), read(dir));
        if want == found {
            return;
        }
        if start.elapsed() > crate::support::wait::DEADLINE {
            pod.fail(&format!(
                "the remote {} holds\n{found:#?}\nnot\n{want:#?}\nsync report:\n{:#}",
                dir.display(),
                pod.report()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the remote folder holds exactly `expected` (relative path -> size).
#[track_caller]
fn wait_remote(pod: &SyncPod, dir: &Path, expected: &BTreeMap<String, u64>) {
    wait_remote_as(pod, dir, || expected.clone(), files_under);
}

#[test]
fn each_users_folders_reach_their_own_place_on_the_remote_and_nothing_else() {
    let remote = tempfile::tempdir().expect("temp dir");
    let pod = SyncPod::start(local_remote(remote.path()));
    let volume = pod.volume.clone();
    write(
        &volume.join("output/alice/ComfyUI_00001_.png"),
        b"alice's image",
    );
    write(&volume.join("input/alice/photo.jpg"), b"alice's upload");
    write(
        &volume.join("users/alice/default/workflows/portrait.json"),
        b"{}",
    );
    write(&volume.join("output/alice/half.png.tmp"), b"being written");
    write(
        &volume.join("output/bob/ComfyUI_00001_.png"),
        b"bob's image!",
    );
    pod.serve("alice");
    let alice_only = BTreeMap::from([
        ("ComfyUI/output/alice/ComfyUI_00001_.png".to_owned(), 13),
        ("ComfyUI/input/alice/photo.jpg".to_owned(), 14),
        ("ComfyUI/workflows/alice/portrait.json".to_owned(), 2),
    ]);
    wait_remote(&pod, remote.path(), &alice_only);
    // Bob's folder waits until the pod serves bob.
    let report = pod.report();
    assert!(folder(&report, "bob", "output").is_null(), "{report:#}");
    pod.serve("bob");
    write(&volume.join("output/bob/ComfyUI_00002_.png"), b"bob again");
    let mut both = alice_only;
    both.insert("ComfyUI/output/bob/ComfyUI_00001_.png".to_owned(), 12);
    both.insert("ComfyUI/output/bob/ComfyUI_00002_.png".to_owned(), 9);
    wait_remote(&pod, remote.path(), &both);

    let report = pod.wait_report("bob's output to be synced twice over", |report| {
        folder(report, "bob", "output")["total"]["files"] == 2
    });
    let alice = folder(&report, "alice", "output");
    assert_eq!(alice["remote"], "vault:ComfyUI/output/alice", "{report:#}");
    assert_eq!(alice["mode"], "mirror");
    assert_eq!(alice["held_by"], Value::Null);
    assert!(alice["last_success_ms"].as_u64().is_some(), "{alice:#}");
    assert_eq!(report["users"], json!(["alice", "bob"]));
    let metrics = pod.get("/metrics").body;
    assert!(
        metrics.contains("podstack_sync_files_total{user=\"alice\",folder=\"output\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("podstack_service_state{service=\"sync\",state=\"ready\"} 1"),
        "{metrics}"
    );
    let status = pod.status();
    assert_eq!(status["services"]["sync"]["state"], "ready", "{status:#}");
    assert_eq!(status["services"]["sync"]["log"], "/api/logs?service=sync");
}

#[test]
fn mirror_deletions_and_overwrites_land_in_the_dated_trash() {
    let remote = tempfile::tempdir().expect("temp dir");
    let pod = SyncPod::start(local_remote(remote.path()));
    let output = pod.volume.join("output/alice");
    write(&output.join("keep.png"), b"version 1");
    write(&output.join("drop.png"), b"to be deleted");
    pod.serve("alice");
    let synced = BTreeMap::from([
        ("ComfyUI/output/alice/drop.png".to_owned(), 13),
        ("ComfyUI/output/alice/keep.png".to_owned(), 9),
    ]);
    wait_remote(&pod, remote.path(), &synced);
    std::fs::remove_file(output.join("drop.png")).expect("delete");
    write(&output.join("keep.png"), b"version 2 is longer");
    let start = Instant::now();
    let trash = loop {
        let files = files_under(remote.path());
        let dated: Vec<&String> = files
            .keys()
            .filter(|path| path.starts_with("ComfyUI/.trash/"))
            .collect();
        if files.get("ComfyUI/output/alice/keep.png") == Some(&19)
            && !files.contains_key("ComfyUI/output/alice/drop.png")
            && dated.len() == 2
        {
            break files;
        }
        assert!(
            start.elapsed() < crate::support::wait::DEADLINE,
            "the remote holds {files:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let dated: Vec<(&String, &u64)> = trash
        .iter()
        .filter(|(path, _)| path.starts_with("ComfyUI/.trash/"))
        .collect();
    let day = dated[0].0.split('/').nth(2).expect("a date folder");
    assert_eq!(day.len(), 10, "{day}");
    assert_eq!(
        dated,
        [
            (&format!("ComfyUI/.trash/{day}/output/alice/drop.png"), &13),
            (&format!("ComfyUI/.trash/{day}/output/alice/keep.png"), &9),
        ]
    );
    pod.wait_report("the deletion to be counted", |report| {
        folder(report, "alice", "output")["total"]["deleted"]
            .as_u64()
            .is_some_and(|deleted| deleted >= 1)
    });
}

#[test]
fn an_empty_source_is_refused_and_nothing_is_deleted() {
    let remote = tempfile::tempdir().expect("temp dir");
    let kept = remote
        .path()
        .join("ComfyUI/output/alice/ComfyUI_00001_.png");
    write(&kept, b"made last week");
    let pod = SyncPod::start(local_remote(remote.path()));
    // ComfyUI's start creates output/alice empty: what an unmounted volume looks like.
    pod.serve("alice");
    let report = pod.wait_report("the mirror pass to be refused", |report| {
        folder(report, "alice", "output")["state"] == "refused"
    });
    let error = &folder(&report, "alice", "output")["last_error"];
    let message = error["error"].as_str().unwrap_or_default();
    assert!(
        message.ends_with(
            "output/alice is empty on the volume while the remote folder holds 1 file(s): the mirror pass was refused and nothing was deleted"
        ),
        "{error:#}"
    );
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|hint| hint.contains("volume is mounted")),
        "{error:#}"
    );
    assert!(kept.is_file());
    assert!(!remote.path().join("ComfyUI/.trash").exists());
    // A file appears: the folder is not empty any more, and the mirror goes ahead.
    write(
        &pod.volume.join("output/alice/ComfyUI_00002_.png"),
        b"today's",
    );
    let report = pod.wait_report("the next pass to sync", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    assert!(
        pod.output().contains("the mirror pass was refused"),
        "{report:#}"
    );
}

#[test]
fn files_younger_than_min_age_wait_and_then_arrive_promptly() {
    let remote = tempfile::tempdir().expect("temp dir");
    // The periodic pass comes once an hour: a file that arrives within the wait's deadline was
    // synced by its own trigger once min_age had passed.
    let pod = SyncPod::start(
        local_remote(remote.path())
            .set("/sync/min_age", json!("3s"))
            .set("/sync/interval", json!("1h")),
    );
    pod.serve("alice");
    pod.wait_report("the first pass", |report| {
        folder(report, "alice", "output")["last_success_ms"].is_u64()
    });
    let workflows = pod.volume.join("users/alice/default/workflows");
    assert!(!workflows.exists());
    let written = Instant::now();
    write(&pod.volume.join("output/alice/new.png"), b"fresh");
    // A folder that did not exist when the user was served is watched once it appears.
    write(&workflows.join("saved.json"), b"{}");
    for arrived in [
        remote.path().join("ComfyUI/output/alice/new.png"),
        remote.path().join("ComfyUI/workflows/alice/saved.json"),
    ] {
        eventually("the new file on the remote", || {
            arrived.is_file().then_some(())
        });
        let took = written.elapsed();
        assert!(took >= Duration::from_secs(3), "uploaded after {took:?}");
    }
}

#[test]
fn rclone_killed_mid_transfer_is_restarted_and_every_file_arrives() {
    let remote = tempfile::tempdir().expect("temp dir");
    // rclone's bandwidth limit lets a burst of 4 MiB through first, then 1 MiB/s: a pass of
    // 12 MB is under way for seconds, long enough to be seen on a loaded machine.
    let mut pod = SyncPod::start(local_remote(remote.path()).set("/sync/bwlimit", json!("1M")));
    let output = pod.volume.join("output/alice");
    let mut expected = BTreeMap::new();
    for i in 0..6u8 {
        write(&output.join(format!("big-{i}.png")), &content(i, 2_000_000));
        expected.insert(format!("ComfyUI/output/alice/big-{i}.png"), 2_000_000);
    }
    pod.serve("alice");
    pod.wait_report("a pass under way", |report| {
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    let first = pod.rclone_pid();
    let sent = Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status();
    assert!(sent.is_ok_and(|status| status.success()));
    // How soon it is back is the restart policy's (unit-tested in sync::rcd), not a clock's.
    pod.wait_report("rclone to be back", |report| {
        report["service"]["state"] == "ready"
            && report["service"]["restarts"].as_u64() >= Some(1)
            && report["service"]["pid"].as_u64() != Some(u64::from(first))
    });
    pod.rclone_pid();
    wait_remote(&pod, remote.path(), &expected);
    for i in 0..6u8 {
        let uploaded = std::fs::read(
            remote
                .path()
                .join(format!("ComfyUI/output/alice/big-{i}.png")),
        )
        .expect("uploaded");
        assert!(uploaded == content(i, 2_000_000), "big-{i}.png differs");
    }
    assert!(
        pod.output()
            .contains("rclone was killed by signal 9 (SIGKILL)"),
        "{}",
        pod.output()
    );
}

/// `rclone serve webdav` (or another protocol) of a folder on a fixed port, as a remote that
/// can go away; a WebDAV server's log (`-v`: one line per request) says what was uploaded where.
struct Server {
    child: Child,
    protocol: &'static str,
    port: u16,
    dir: PathBuf,
    log: tempfile::TempDir,
}

impl Server {
    fn webdav(dir: &Path, port: u16) -> Self {
        Self::spawn("webdav", dir, port, tempfile::tempdir().expect("temp dir"))
    }

    /// `rclone serve sftp` of `dir`.
    fn sftp(dir: &Path, port: u16) -> Self {
        Self::spawn("sftp", dir, port, tempfile::tempdir().expect("temp dir"))
    }

    /// `rclone serve s3` of `dir`: its top folders are the buckets.
    fn s3(dir: &Path, port: u16) -> Self {
        Self::spawn("s3", dir, port, tempfile::tempdir().expect("temp dir"))
    }

    fn spawn(protocol: &'static str, dir: &Path, port: u16, log: tempfile::TempDir) -> Self {
        let login = match protocol {
            "s3" => vec![
                "--auth-key".to_owned(),
                format!("{S3_ACCESS_KEY},{DAV_PASSWORD}"),
            ],
            _ => ["--user", "podstack", "--pass", DAV_PASSWORD]
                .map(str::to_owned)
                .to_vec(),
        };
        let child = Command::new(rclone())
            .args(["serve", protocol, &dir.display().to_string()])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(login)
            .args(["--config", ""])
            .args([
                "-v",
                "--log-file",
                &log.path().join("webdav.log").display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone serve webdav starts");
        eventually("the WebDAV server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self {
            child,
            protocol,
            port,
            dir: dir.to_owned(),
            log,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        let log = std::mem::replace(&mut self.log, tempfile::tempdir().expect("temp dir"));
        *self = Self::spawn(self.protocol, &self.dir.clone(), self.port, log);
    }

    /// The path of every PUT the server answered, in order.
    fn uploads(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path().join("webdav.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once("INFO  : ")?.1.rsplit_once(": PUT from"))
            .map(|(path, _)| path.trim_start_matches('/').to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pod syncing to `rclone serve webdav` on `port` with vendor `other`, which cannot set
/// modification times: a file's time on the remote is its upload's.
fn webdav_remote(port: u16) -> PodBuilder {
    pod()
        .set(
            "/sync",
            sync_section(
                "dav",
                "webdav",
                json!({"url": format!("http://127.0.0.1:{port}"), "vendor": "other", "user": "podstack"}),
            ),
        )
        .env("RUNPOD_SECRET_RCLONE_PASS", &obscured(DAV_PASSWORD))
}

/// A pod syncing to `rclone serve sftp` on `port`.
fn sftp_remote(port: u16) -> PodBuilder {
    pod()
        .set(
            "/sync",
            sync_section(
                "box",
                "sftp",
                json!({"host": "127.0.0.1", "port": port.to_string(), "user": "podstack"}),
            ),
        )
        .env("RUNPOD_SECRET_RCLONE_PASS", &obscured(DAV_PASSWORD))
}

/// A pod syncing to `rclone serve s3` on `port`, into the bucket `studio` (a bucket's name is
/// lower case): the remote's root is `studio/ComfyUI`.
fn s3_remote(port: u16) -> PodBuilder {
    pod()
        .set(
            "/sync",
            sync_section(
                "bucket",
                "s3",
                json!({"provider": "Rclone", "endpoint": format!("http://127.0.0.1:{port}"), "force_path_style": "true"}),
            ),
        )
        .set("/sync/root", json!("studio/ComfyUI"))
        .env("RUNPOD_SECRET_RCLONE_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("RUNPOD_SECRET_RCLONE_SECRET_ACCESS_KEY", DAV_PASSWORD)
}

/// The remotes the integrity tests run against: a local folder (rclone's `alias`), and
/// `rclone serve webdav` (vendor `other`), `serve sftp` and `serve s3` of a folder on loopback.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Local,
    WebDav,
    Sftp,
    S3,
}

/// A remote of one backend, and the folder on this machine that holds its files.
struct Remote {
    backend: Backend,
    dir: tempfile::TempDir,
    port: u16,
    _server: Option<Server>,
}

impl Remote {
    fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let server = match backend {
            Backend::Local => None,
            Backend::WebDav => Some(Server::webdav(dir.path(), port)),
            Backend::Sftp => Some(Server::sftp(dir.path(), port)),
            Backend::S3 => Some(Server::s3(dir.path(), port)),
        };
        Self {
            backend,
            dir,
            port,
            _server: server,
        }
    }

    /// A pod syncing to it.
    fn pod(&self) -> PodBuilder {
        match self.backend {
            Backend::Local => local_remote(self.dir.path()),
            Backend::WebDav => webdav_remote(self.port),
            Backend::Sftp => sftp_remote(self.port),
            Backend::S3 => s3_remote(self.port),
        }
    }

    /// Where the sync's root (`ComfyUI`) is on this machine.
    fn root(&self) -> PathBuf {
        match self.backend {
            Backend::S3 => self.dir.path().join("studio/ComfyUI"),
            _ => self.dir.path().join("ComfyUI"),
        }
    }

    /// Whether the backend keeps folders of their own (S3 has only object names).
    fn has_folders(&self) -> bool {
        !matches!(self.backend, Backend::S3)
    }
}

/// Every file under `dir` by relative path, with the sha256 of its content. A file that a
/// pass under way moves away between the listing and the read is not there.
fn digests(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    files_under(dir)
        .into_keys()
        .filter_map(|path| {
            let bytes = match std::fs::read(dir.join(&path)) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
                Err(err) => panic!("cannot read {path}: {err}"),
            };
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            Some((path, digest))
        })
        .collect()
}

/// Waits until the remote folder `remote` holds exactly the files of `local`, byte for byte.
#[track_caller]
fn wait_same_content(pod: &SyncPod, local: &Path, remote: &Path) {
    wait_remote_as(pod, remote, || digests(local), digests);
}

#[test]
fn a_steady_run_uploads_each_file_once_and_never_under_its_final_name() {
    let served = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let webdav = Server::webdav(served.path(), port);
    // Passes come from the files' own triggers, each once the newest file is 2 s old; files
    // keep coming meanwhile, so each pass finds files uploaded by the one before, younger than
    // min_age on a remote that gives them the upload's time.
    let pod = steady_run(webdav_remote(port), 24);
    let output = pod.volume.join("output/alice");
    let remote = served.path().join("ComfyUI/output/alice");
    wait_same_content(&pod, &output, &remote);
    // Two more passes over the same files: nothing to upload.
    let passes = |report: &Value| folder(report, "alice", "output")["total"]["passes"].as_u64();
    let before = passes(&pod.report()).unwrap_or(0);
    write(&output.join("one-more.png"), b"one more");
    pod.wait_report("a pass after the last file", |report| {
        passes(report) > Some(before) && folder(report, "alice", "output")["state"] == "idle"
    });
    wait_same_content(&pod, &output, &remote);
    let uploads = webdav.uploads();
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for path in &uploads {
        assert!(
            path.starts_with("ComfyUI/.podstack/upload/output/alice/"),
            "an upload went straight to its final name: {path}\n{uploads:#?}"
        );
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        *per_file.entry(name).or_default() += 1;
    }
    assert_eq!(per_file.len(), 25, "{uploads:#?}");
    assert!(
        per_file.values().all(|&count| count == 1),
        "uploads per file: {per_file:#?}"
    );
    let leftovers = files_under(&served.path().join("ComfyUI/.podstack"));
    assert!(leftovers.is_empty(), "{leftovers:#?}");
    // A folder new on the remote is no error: rclone logs none in a steady run.
    assert_no_rclone_error(&sync_log(&pod.volume, "test-pod"));
}

#[test]
fn an_outage_mid_pass_is_shown_while_the_pass_hangs_and_a_stop_does_not_wait_for_the_dead_remote() {
    let served = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut webdav = Server::webdav(served.path(), port);
    // A burst of 4 MiB, then 1 MiB/s: the pass is under way for seconds; the final sync could
    // wait ten minutes, far past the wait's deadline.
    let mut pod = SyncPod::start(
        webdav_remote(port)
            .set("/sync/bwlimit", json!("1M"))
            .set("/sync/final_sync", json!("10m")),
    );
    let output = pod.volume.join("output/alice");
    for i in 0..6u8 {
        write(
            &output.join(format!("shot-{i}.png")),
            &content(i, 2_000_000),
        );
    }
    pod.serve("alice");
    pod.wait_report("a pass under way", |report| {
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    webdav.stop();
    // rclone retries each call against the dead server for minutes without an error of its
    // own: the status shows the probe's while the pass still hangs.
    let report = pod.wait_report("the outage to be shown", |report| {
        folder(report, "alice", "output")["last_error"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("connection refused"))
    });
    let alice = folder(&report, "alice", "output");
    assert_eq!(alice["state"], "syncing", "{alice:#}");
    assert!(
        alice["last_error"]["error"].as_str().is_some_and(
            |error| error.starts_with("the remote does not answer while a pass is under way: ")
        ),
        "{alice:#}"
    );
    assert!(
        alice["last_error"]["hint"]
            .as_str()
            .is_some_and(|hint| hint.contains("cannot be reached")),
        "{alice:#}"
    );
    let status = pod.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(0), "{}", pod.output());
    let said = pod.output();
    assert!(
        said.contains("trying it once before the final sync")
            && said.contains(
                "the final sync is skipped; the changes stay on the volume for the next start"
            ),
        "{said}"
    );
    assert!(
        said.contains("sync: final sync incomplete after")
            && said.contains("output/alice: not run: the remote cannot be reached ("),
        "{said}"
    );
    assert!(!said.contains("did not finish within 10m"), "{said}");
}

fn obscured(password: &str) -> String {
    let output = Command::new(rclone())
        .args(["obscure", password])
        .output()
        .expect("rclone obscure runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn the_remote_going_away_mid_transfer_loses_nothing_doubles_nothing_and_shows_no_secret() {
    let served = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut webdav = Server::webdav(served.path(), port);
    let secret = obscured(DAV_PASSWORD);
    // A burst of 4 MiB, then 1 MiB/s: the pass is under way for seconds.
    let builder = webdav_remote(port).set("/sync/bwlimit", json!("1M"));
    let pod = SyncPod::start(builder);
    let output = pod.volume.join("output/alice");
    let mut expected = BTreeMap::new();
    for i in 0..6u8 {
        write(
            &output.join(format!("shot-{i}.png")),
            &content(i, 2_000_000),
        );
        expected.insert(format!("ComfyUI/output/alice/shot-{i}.png"), 2_000_000);
    }
    pod.serve("alice");
    pod.wait_report("a pass under way", |report| {
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    webdav.stop();
    eventually("the WebDAV server to be gone", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    webdav.restart();
    wait_remote(&pod, served.path(), &expected);
    let report = pod.report();
    let alice = folder(&report, "alice", "output");
    if let Some(hint) = alice["last_error"]["hint"].as_str() {
        assert!(hint.contains("cannot be reached"), "{alice:#}");
    }

    let comfyui = eventually("ComfyUI's pid", || pod.comfyui_pid());
    let environ = std::fs::read(format!("/proc/{comfyui}/environ")).expect("ComfyUI runs");
    assert!(
        !String::from_utf8_lossy(&environ).contains("RUNPOD_SECRET_RCLONE_PASS"),
        "ComfyUI does not get the sync's secrets"
    );
    // rclone logs a copy once the file is in place: wait for the line.
    let shown = eventually("the sync log to show a copy", || {
        let shown = pod.everything_shown();
        shown.contains("Copied (new)").then_some(shown)
    });
    for secret in [secret.as_str(), DAV_PASSWORD] {
        assert!(!shown.contains(secret), "a secret was shown");
    }
    let options = report["options"].to_string();
    assert!(
        options.contains("RUNPOD_SECRET_RCLONE_PASS"),
        "where the password came from is shown: {options}"
    );
}

#[test]
fn two_supervisors_on_one_volume_sync_each_folder_exactly_once() {
    let shared = tempfile::tempdir().expect("temp dir");
    let remote = tempfile::tempdir().expect("temp dir");
    let volume = shared.path().join("volume");
    let mut first = SyncPod::start(local_remote(remote.path()).volume(&volume).pod_id("pod-a"));
    let second = SyncPod::start(local_remote(remote.path()).volume(&volume).pod_id("pod-b"));
    first.serve("alice");
    first.wait_report("pod-a to hold alice's output", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    second.serve("alice");
    second.serve("bob");
    let report = second.wait_report("pod-b to see who holds alice's folders", |report| {
        folder(report, "alice", "output")["held_by"] == "pod-a"
            && folder(report, "bob", "output")["held_by"].is_null()
            && folder(report, "bob", "output")["state"].is_string()
    });
    assert_eq!(
        folder(&report, "alice", "output")["state"],
        "held-elsewhere"
    );
    let mut expected = BTreeMap::new();
    for i in 0..5 {
        write(&volume.join(format!("output/alice/a{i}.png")), b"alice");
        write(&volume.join(format!("output/bob/b{i}.png")), b"bob");
        expected.insert(format!("ComfyUI/output/alice/a{i}.png"), 5);
        expected.insert(format!("ComfyUI/output/bob/b{i}.png"), 3);
    }
    wait_remote(&first, remote.path(), &expected);
    let log = |pod: &str| {
        std::fs::read_to_string(volume.join(format!(".podstack/logs/{pod}/sync.log")))
            .unwrap_or_default()
    };
    for i in 0..5 {
        // rclone logs the copy after the file is in place: wait for the line, then count.
        eventually("pod-a's sync log to name the copy", || {
            log("pod-a")
                .contains(&format!("a{i}.png: Copied"))
                .then_some(())
        });
        eventually("pod-b's sync log to name the copy", || {
            log("pod-b")
                .contains(&format!("b{i}.png: Copied"))
                .then_some(())
        });
        assert_eq!(
            log("pod-a").matches(&format!("a{i}.png: Copied")).count(),
            1
        );
        assert_eq!(
            log("pod-b").matches(&format!("b{i}.png: Copied")).count(),
            1
        );
        assert!(!log("pod-b").contains(&format!("a{i}.png")));
        assert!(!log("pod-a").contains(&format!("b{i}.png")));
    }
    assert!(folder(&first.report(), "bob", "output").is_null());

    // pod-a dies without a word: pod-b takes alice's folder over once the lease is stale.
    let rclone = first.rclone_pid();
    first.signal_and_wait("KILL");
    let _ = Command::new("kill")
        .args(["-KILL", &rclone.to_string()])
        .status();
    write(&volume.join("output/alice/after.png"), b"later");
    expected.insert("ComfyUI/output/alice/after.png".to_owned(), 5);
    wait_remote(&second, remote.path(), &expected);
    // The report follows the pass that uploaded the file: wait for it too.
    second.wait_report("pod-b to hold alice's output", |report| {
        folder(report, "alice", "output")["held_by"].is_null()
    });
    eventually("pod-b's sync log to name the copy", || {
        log("pod-b").contains("after.png: Copied").then_some(())
    });
}

#[test]
fn sigterm_runs_the_final_sync_before_the_supervisor_exits() {
    let remote = tempfile::tempdir().expect("temp dir");
    let mut pod = SyncPod::start(
        local_remote(remote.path())
            .set("/sync/min_age", json!("1m"))
            .set("/sync/final_sync", json!("20s")),
    );
    pod.serve("alice");
    pod.wait_report("the first pass", |report| {
        folder(report, "alice", "output")["last_success_ms"].is_u64()
    });
    let last = pod.volume.join("output/alice/last.png");
    // Saved right before the stop, as the real ComfyUI image run found: the final pass runs
    // after every service stopped, so it takes files however young they are.
    write(&last, b"the last image");
    let status = pod.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(0), "{}", pod.output());
    assert!(
        remote
            .path()
            .join("ComfyUI/output/alice/last.png")
            .is_file(),
        "{}",
        pod.output()
    );
    let output = pod.output();
    assert!(
        output.contains("sync: final sync done in")
            && output.contains("output/alice: synced 1 file(s)"),
        "{output}"
    );
    assert!(output.contains("rclone stopped"), "{output}");
}

/// PATH with the fake rclone first (it runs the real one, FAKE_RCLONE_REAL, for the rest).
fn fake_rclone(builder: PodBuilder) -> PodBuilder {
    let path = format!(
        "{}:{}",
        repo().join("tests/fixtures/rclone").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    builder
        .env("PATH", &path)
        .env("FAKE_RCLONE_REAL", &rclone().display().to_string())
}

#[test]
fn duplicates_reported_by_rclone_get_one_dedupe_of_that_folder() {
    let remote = tempfile::tempdir().expect("temp dir");
    let calls = remote.path().join("dedupe-calls");
    let pod = SyncPod::start(
        fake_rclone(local_remote(&remote.path().join("remote")))
            .env("FAKE_RCLONE_DUPLICATE", "twice.png")
            .env("FAKE_RCLONE_CALLS", &calls.display().to_string()),
    );
    write(
        &pod.volume.join("output/alice/twice.png"),
        b"uploaded twice",
    );
    write(&pod.volume.join("output/bob/once.png"), b"uploaded once");
    pod.serve("bob");
    pod.serve("alice");
    let report = pod.wait_report("the dedupe to be reported", |report| {
        folder(report, "alice", "output")["dedupe"].is_object()
    });
    let alice = folder(&report, "alice", "output");
    assert_eq!(
        alice["dedupe"]["outcome"], "kept the newest copy of each duplicate",
        "{alice:#}"
    );
    // The folder syncs again after the dedupe, and finds nothing to dedupe.
    let passes = alice["total"]["passes"].as_u64().unwrap_or_default();
    pod.wait_report("a pass after the dedupe", |report| {
        folder(report, "alice", "output")["total"]["passes"].as_u64() > Some(passes)
    });
    let called = std::fs::read_to_string(&calls).expect("dedupe was called");
    assert_eq!(
        called,
        "dedupe --dedupe-mode newest --config  vault:ComfyUI/output/alice\n"
    );
    assert!(
        folder(&pod.report(), "bob", "output")["dedupe"].is_null(),
        "only the folder with duplicates"
    );
    assert!(
        pod.output()
            .contains("rclone reported duplicates in vault:ComfyUI/output/alice"),
        "{}",
        pod.output()
    );
}

/// A pod whose Google Drive remote is discovered through the fake rclone.
fn drive_pod(drives: &str) -> SyncPod {
    SyncPod::start(
        fake_rclone(pod().set("/sync", sync_section("gdrive", "drive", json!({}))))
            .env("FAKE_RCLONE_DRIVES", drives)
            .env(
                "RUNPOD_SECRET_RCLONE_SERVICE_ACCOUNT_CREDENTIALS",
                SERVICE_ACCOUNT,
            ),
    )
}

const SERVICE_ACCOUNT: &str = r#"{"type": "service_account", "client_email": "sync@studio.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-real-key\n-----END PRIVATE KEY-----\n"}"#;

#[test]
fn drive_uses_the_only_shared_drive_and_refuses_none_or_several_or_an_unreachable_google() {
    let one = drive_pod("one");
    let report = one.wait_report("rclone to be ready", |report| {
        report["service"]["state"] == "ready"
    });
    assert_eq!(
        report["shared_drive"],
        json!({"id": "0AHx3Ak9pZtRkUk9PVA", "name": "Studio Outputs", "found": "discovered"})
    );
    assert!(
        one.output().contains(
            "using the Shared Drive `Studio Outputs` (0AHx3Ak9pZtRkUk9PVA), the only one"
        ),
        "{}",
        one.output()
    );
    assert!(!one.everything_shown().contains("not-a-real-key"));
    drop(one);

    for (drives, reason, hint) in [
        (
            "several",
            "the service account sees 2 Shared Drives and sync.team_drive does not say which one to use: `Studio Outputs` (0AHx3Ak9pZtRkUk9PVA), `Archive 2025` (0AJq7Lm2Vb1sWUk9PVA)",
            "set sync.team_drive",
        ),
        (
            "none",
            "the service account sees no Shared Drive, and service accounts have no storage quota of their own: every upload would fail with storageQuotaExceeded (L21)",
            "create a Shared Drive",
        ),
        (
            "fail",
            "`rclone backend drives` could not list the Shared Drives: 2026/05/01 10:00:00 Failed to backend: command \"drives\" failed: listing drives: Get \"https://www.googleapis.com/drive/v3/drives\": dial tcp: lookup www.googleapis.com: no such host",
            "podstack tries again in a minute",
        ),
    ] {
        let pod = drive_pod(drives);
        let status = pod.wait_for("the sync service to fail", |status| {
            status["services"]["sync"]["state"] == "failed"
        });
        let sync = &status["services"]["sync"];
        assert_eq!(sync["reason"], reason, "{sync:#}");
        assert!(
            sync["hint"].as_str().is_some_and(|h| h.contains(hint)),
            "{sync:#}"
        );
        assert!(!pod.everything_shown().contains("not-a-real-key"));
    }
}

/// A pod killed without a word (and its rclone with it) while uploading, then started again on
/// the same volume: whatever the remote holds under a final name is, at every moment checked,
/// a whole file of the volume; the restarted pod empties the upload place (the killed pass's
/// folder included), finishes, and the trash holds nothing (no version a user made was
/// replaced).
fn a_pod_killed_mid_upload_leaves_no_partial_file_under_a_final_name(backend: Backend) {
    let server = Remote::start(backend);
    let shared = tempfile::tempdir().expect("temp dir");
    let volume = shared.path().join("volume");
    // rclone's bandwidth limit lets a burst of 4 MiB through first, then 1 MiB/s: 16 MB are
    // under way for seconds, long enough to be seen on a loaded machine.
    let mut first = SyncPod::start(
        server
            .pod()
            .volume(&volume)
            .pod_id("pod-a")
            .set("/sync/bwlimit", json!("1M")),
    );
    let output = volume.join("output/alice");
    for i in 0..8u8 {
        write(&output.join(format!("big-{i}.png")), &content(i, 2_000_000));
    }
    first.serve("alice");
    let remote = server.root().join("output/alice");
    let whole = |at: &str| {
        let local = digests(&output);
        for (path, digest) in digests(&remote) {
            assert_eq!(
                local.get(&path),
                Some(&digest),
                "{at}: {path} on the remote is not the file on the volume"
            );
        }
    };
    first.wait_report("a pass under way", |report| {
        whole("while uploading");
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    let rclone = first.rclone_pid();
    first.signal_and_wait("KILL");
    let _ = Command::new("kill")
        .args(["-KILL", &rclone.to_string()])
        .status();
    eventually("rclone to be gone", || (!alive(rclone)).then_some(()));
    whole("after the kill");
    drop(first);

    let second = SyncPod::start(server.pod().volume(&volume).pod_id("pod-a"));
    second.serve("alice");
    wait_same_content(&second, &output, &remote);
    second.wait_report("the pass to end", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    let upload = server.root().join(".podstack/upload/output/alice");
    let leftovers = files_under(&server.root().join(".podstack"));
    assert!(leftovers.is_empty(), "{leftovers:#?}");
    if server.has_folders() {
        let passes: Vec<_> = std::fs::read_dir(&upload)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name())
            .collect();
        assert!(passes.is_empty(), "the upload place holds {passes:?}");
    }
    let trash = files_under(&server.root().join(".trash"));
    assert!(trash.is_empty(), "the trash holds {trash:#?}");
}

#[test]
fn a_pod_killed_mid_upload_to_a_local_folder_leaves_no_partial_file_under_a_final_name() {
    a_pod_killed_mid_upload_leaves_no_partial_file_under_a_final_name(Backend::Local);
}

#[test]
fn a_pod_killed_mid_upload_to_webdav_leaves_no_partial_file_under_a_final_name() {
    a_pod_killed_mid_upload_leaves_no_partial_file_under_a_final_name(Backend::WebDav);
}

#[test]
fn a_pod_killed_mid_upload_to_sftp_leaves_no_partial_file_under_a_final_name() {
    a_pod_killed_mid_upload_leaves_no_partial_file_under_a_final_name(Backend::Sftp);
}

#[test]
fn a_pod_killed_mid_upload_to_s3_leaves_no_partial_file_under_a_final_name() {
    a_pod_killed_mid_upload_leaves_no_partial_file_under_a_final_name(Backend::S3);
}

/// The pod's sync log (rclone's lines and the service's own).
/// A pod whose passes come from the files' own triggers (each once the newest file is 2 s
/// old, no timed pass), serving alice, after `count` files were written into her output 250 ms
/// apart: files keep coming while passes run.
fn steady_run(remote: PodBuilder, count: u8) -> SyncPod {
    let pod = SyncPod::start(
        remote
            .set("/sync/min_age", json!("2s"))
            .set("/sync/interval", json!("1h")),
    );
    pod.serve("alice");
    let output = pod.volume.join("output/alice");
    for i in 0..count {
        write(
            &output.join(format!("ComfyUI_{i:05}_.png")),
            &content(i, 20_000 + usize::from(i) * 1000),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    pod
}

/// A steady run logs no rclone error (a folder not yet on the remote is none).
fn assert_no_rclone_error(log: &str) {
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" ERROR : "))
        .collect();
    assert!(
        errors.is_empty(),
        "rclone logged errors in a steady run: {errors:#?}"
    );
}

fn sync_log(volume: &Path, pod: &str) -> String {
    std::fs::read_to_string(volume.join(format!(".podstack/logs/{pod}/sync.log")))
        .unwrap_or_default()
}

/// Files written one after another while passes run: each is uploaded once (rclone's
/// `Copied` lines in the sync log, one per file), the remote ends up with the volume's
/// contents, and rclone logs no error on the way (a folder not yet on the remote is none).
fn a_steady_run_uploads_each_file_once(backend: Backend) {
    let server = Remote::start(backend);
    let pod = steady_run(server.pod(), 12);
    let output = pod.volume.join("output/alice");
    let remote = server.root().join("output/alice");
    wait_same_content(&pod, &output, &remote);
    pod.wait_report("the passes to end", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    let log = eventually("rclone's lines for every file", || {
        let log = sync_log(&pod.volume, "test-pod");
        (0..12u8)
            .all(|i| log.contains(&format!("ComfyUI_{i:05}_.png: Copied (new)")))
            .then_some(log)
    });
    for i in 0..12u8 {
        let name = format!("ComfyUI_{i:05}_.png");
        let uploads = log
            .lines()
            .filter(|line| {
                line.contains(&format!("{name}: Copied (new)"))
                    || line.contains(&format!("{name}: Copied (replaced existing)"))
            })
            .count();
        assert_eq!(uploads, 1, "{name} uploaded {uploads} times:\n{log}");
    }
    assert_no_rclone_error(&log);
}

#[test]
fn a_steady_run_to_a_local_folder_uploads_each_file_once() {
    a_steady_run_uploads_each_file_once(Backend::Local);
}

#[test]
fn a_steady_run_to_sftp_uploads_each_file_once() {
    a_steady_run_uploads_each_file_once(Backend::Sftp);
}

#[test]
fn a_steady_run_to_s3_uploads_each_file_once() {
    a_steady_run_uploads_each_file_once(Backend::S3);
}

/// The deletion budget outlives the supervisor: half of it spent, the pod SIGKILLed, the
/// restarted one (nobody served: the ledger's catch-up) deletes only what is left of it and
/// holds the rest, and a folder its deletions emptied is gone from the remote.
fn the_deletion_budget_survives_a_kill_and_a_restart_catches_up(backend: Backend) {
    let server = Remote::start(backend);
    let shared = tempfile::tempdir().expect("temp dir");
    let volume = shared.path().join("volume");
    let builder = || {
        server
            .pod()
            .volume(&volume)
            .pod_id("pod-a")
            .set("/sync/max_delete", json!(6))
            .set("/sync/trash", json!(false))
    };
    let mut first = SyncPod::start(builder());
    let output = volume.join("output/alice");
    for i in 0..6u8 {
        write(&output.join(format!("gone/a-{i}.png")), &content(i, 1000));
        write(&output.join(format!("z-{i}.png")), &content(i + 10, 1000));
    }
    first.serve("alice");
    let remote = server.root().join("output/alice");
    wait_same_content(&first, &output, &remote);
    for i in 0..3u8 {
        std::fs::remove_file(output.join(format!("gone/a-{i}.png"))).expect("delete");
    }
    wait_same_content(&first, &output, &remote);
    first.wait_report("half the budget spent", |report| {
        let alice = folder(report, "alice", "output");
        alice["deleted_in_window"] == 3 && alice["state"] == "idle"
    });
    let rclone = first.rclone_pid();
    first.signal_and_wait("KILL");
    let _ = Command::new("kill")
        .args(["-KILL", &rclone.to_string()])
        .status();
    drop(first);
    // While it is down: six more deletions (the rest of `gone/` first), one new file.
    let held: BTreeMap<String, String> = digests(&output)
        .into_iter()
        .filter(|(path, _)| ["z-0.png", "z-1.png", "z-2.png"].contains(&path.as_str()))
        .collect();
    for path in [
        "gone/a-3.png",
        "gone/a-4.png",
        "gone/a-5.png",
        "z-0.png",
        "z-1.png",
        "z-2.png",
    ] {
        std::fs::remove_file(output.join(path)).expect("delete");
    }
    write(&output.join("new.png"), b"made while the pod was down");
    let second = SyncPod::start(builder());
    let report = second.wait_report("the rest of the budget spent and 3 held", |report| {
        let alice = folder(report, "alice", "output");
        alice["deletions_held"] == 3
            && alice["deleted_in_window"] == 6
            && alice["total"]["files"] == 1
            && alice["state"] == "idle"
    });
    assert_eq!(
        folder(&report, "alice", "output")["total"]["deleted"],
        3,
        "{report:#}"
    );
    let mut expected = digests(&output);
    expected.extend(held);
    assert_eq!(digests(&remote), expected);
    assert!(
        second
            .everything_shown()
            .contains("output/alice: changed since its last pass before this start: catching up"),
        "{}",
        second.output()
    );
    if server.has_folders() {
        assert!(
            !remote.join("gone").exists(),
            "the emptied folder stays on the remote"
        );
        assert!(remote.is_dir());
    }
}

#[test]
fn the_deletion_budget_survives_a_kill_on_a_local_folder() {
    the_deletion_budget_survives_a_kill_and_a_restart_catches_up(Backend::Local);
}

#[test]
fn the_deletion_budget_survives_a_kill_on_webdav() {
    the_deletion_budget_survives_a_kill_and_a_restart_catches_up(Backend::WebDav);
}

#[test]
fn the_deletion_budget_survives_a_kill_on_sftp() {
    the_deletion_budget_survives_a_kill_and_a_restart_catches_up(Backend::Sftp);
}

#[test]
fn the_deletion_budget_survives_a_kill_on_s3() {
    the_deletion_budget_survives_a_kill_and_a_restart_catches_up(Backend::S3);
}

#[test]
fn max_delete_is_a_budget_per_folder_past_which_deletions_wait_for_a_person() {
    let remote = tempfile::tempdir().expect("temp dir");
    let pod = SyncPod::start(
        local_remote(remote.path())
            .set("/sync/max_delete", json!(5))
            .set("/sync/trash", json!(false)),
    );
    let output = pod.volume.join("output/alice");
    for i in 0..12u8 {
        write(&output.join(format!("shot-{i:02}.png")), &content(i, 1000));
    }
    pod.serve("alice");
    let synced = remote.path().join("ComfyUI/output/alice");
    wait_same_content(&pod, &output, &synced);
    pod.wait_report("the first pass to end", |report| {
        folder(report, "alice", "output")["total"]["files"] == 12
            && folder(report, "alice", "output")["state"] == "idle"
    });
    // The user replaces the folder's content by one new file: 12 deletions, 5 allowed.
    for i in 0..12u8 {
        std::fs::remove_file(output.join(format!("shot-{i:02}.png"))).expect("delete");
    }
    write(&output.join("new.png"), b"the only one now");
    let report = pod.wait_report("deletions to be held and the new file uploaded", |report| {
        folder(report, "alice", "output")["deletions_held"] == 7
            && folder(report, "alice", "output")["total"]["files"] == 13
            && folder(report, "alice", "output")["state"] == "idle"
    });
    let alice = folder(&report, "alice", "output");
    assert_eq!(alice["total"]["deleted"], 5, "{alice:#}");
    assert_eq!(alice["deleted_in_window"], 5, "{alice:#}");
    assert_eq!(files_under(&synced).len(), 1 + 7);
    assert!(synced.join("new.png").is_file());
    // Later passes delete nothing more: the window's budget is spent.
    write(&output.join("newer.png"), b"and another");
    pod.wait_report("the next pass", |report| {
        folder(report, "alice", "output")["total"]["files"] == 14
            && folder(report, "alice", "output")["state"] == "idle"
    });
    assert_eq!(files_under(&synced).len(), 2 + 7);

    let refused = pod.post(
        "/api/sync/release",
        json!({"user": "bob", "folder": "output"}),
    );
    assert_eq!(refused.status, 404, "{}", refused.body);
    let released = pod.post(
        "/api/sync/release",
        json!({"user": "alice", "folder": "output"}),
    );
    assert_eq!(released.status, 202, "{}", released.body);
    assert_eq!(released.json()["released"], 7);
    wait_same_content(&pod, &output, &synced);
    let report = pod.wait_report("the released deletions to be counted", |report| {
        folder(report, "alice", "output")["total"]["deleted"] == 12
    });
    assert_eq!(folder(&report, "alice", "output")["deletions_held"], 0);
    let again = pod.post(
        "/api/sync/release",
        json!({"user": "alice", "folder": "output"}),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    let log = pod.get("/api/logs?service=sync").body;
    assert!(
        log.contains("output/alice: 7 held deletion(s) released through POST /api/sync/release"),
        "{log}"
    );
}

#[test]
fn a_frozen_holder_that_lost_its_lease_stops_its_job_and_never_writes_the_final_folder() {
    let served = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _webdav = Server::webdav(served.path(), port);
    let shared = tempfile::tempdir().expect("temp dir");
    let volume = shared.path().join("volume");
    // pod-a uploads slowly: 16 MB behind rclone's 4 MiB burst at 512 KiB/s.
    let mut first = SyncPod::start(
        webdav_remote(port)
            .volume(&volume)
            .pod_id("pod-a")
            .set("/sync/bwlimit", json!("512k")),
    );
    let output = volume.join("output/alice");
    for i in 0..8u8 {
        write(&output.join(format!("big-{i}.png")), &content(i, 2_000_000));
    }
    first.serve("alice");
    first.wait_report("pod-a's pass under way", |report| {
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    first.rclone_pid();
    let frozen = first.pid().to_string();
    let stopped = Command::new("kill").args(["-STOP", &frozen]).status();
    assert!(stopped.is_ok_and(|status| status.success()));
    // pod-b takes the stale lease over and syncs everything while pod-a's rclone still runs.
    let second = SyncPod::start(webdav_remote(port).volume(&volume).pod_id("pod-b"));
    second.serve("alice");
    let remote = served.path().join("ComfyUI/output/alice");
    wait_same_content(&second, &output, &remote);
    let woken = Command::new("kill").args(["-CONT", &frozen]).status();
    assert!(woken.is_ok_and(|status| status.success()));
    first.wait_report(
        "pod-a to see pod-b hold the folder and its pass end",
        |report| {
            let alice = folder(report, "alice", "output");
            alice["held_by"] == "pod-b" && alice["speed_bps"] == 0.0
        },
    );
    let log = |pod: &str| {
        std::fs::read_to_string(volume.join(format!(".podstack/logs/{pod}/sync.log")))
            .unwrap_or_default()
    };
    // Woken, pod-a stops its rclone job (`job/stop`), or, when the job ended meanwhile, finds
    // the lease gone before it touches the final folder.
    let said = first.output();
    assert!(said.contains("sync: output/alice: stopped"), "{said}");
    // pod-a never moved anything into place, and pod-b's next pass leaves no upload behind.
    assert!(!log("pod-a").contains("Moved"), "{}", log("pod-a"));
    assert!(!log("pod-a").contains("directory move"), "{}", log("pod-a"));
    write(&output.join("later.png"), b"after the wake-up");
    wait_same_content(&second, &output, &remote);
    second.wait_report("pod-b's pass to end", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    let leftovers = files_under(&served.path().join("ComfyUI/.podstack"));
    assert!(leftovers.is_empty(), "{leftovers:#?}");
    let trash = files_under(&served.path().join("ComfyUI/.trash"));
    assert!(trash.is_empty(), "{trash:#?}");
}

#[test]
fn a_lease_taken_by_another_pod_mid_upload_stops_the_rclone_job() {
    let remote = tempfile::tempdir().expect("temp dir");
    // 16 MB behind rclone's 4 MiB burst at 512 KiB/s: the job runs long after the takeover.
    let pod = SyncPod::start(local_remote(remote.path()).set("/sync/bwlimit", json!("512k")));
    let output = pod.volume.join("output/alice");
    for i in 0..8u8 {
        write(&output.join(format!("big-{i}.png")), &content(i, 2_000_000));
    }
    pod.serve("alice");
    pod.wait_report("a pass under way", |report| {
        let alice = folder(report, "alice", "output");
        alice["state"] == "syncing" && alice["speed_bps"].as_f64().is_some_and(|s| s > 0.0)
    });
    // Another pod's fresh lease, as its takeover leaves it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let lease =
        json!({"pod": "pod-x", "renewed_ms": now, "heartbeat_ms": 600_000, "claimed_ms": now});
    let path = pod.volume.join(".podstack/leases/output/alice.json");
    let fresh = path.with_extension("test.tmp");
    // A renewal that read the lease just before the takeover writes its own over it (the lease
    // file has no compare-and-swap; the fencing token keeps that safe): take over again until
    // the pod has seen pod-x.
    let report = pod.wait_report("the pass to stop", |report| {
        let alice = folder(report, "alice", "output");
        if alice["held_by"] != "pod-x" {
            std::fs::write(&fresh, lease.to_string()).expect("write the lease");
            std::fs::rename(&fresh, &path).expect("replace the lease");
        }
        alice["held_by"] == "pod-x" && alice["speed_bps"] == 0.0
    });
    eventually("the stop in the supervisor's log", || {
        pod.output()
            .contains("output/alice: stopped (rclone's job/stop): the lease went to another pod")
            .then_some(())
    });
    let finals = files_under(&remote.path().join("ComfyUI/output/alice"));
    assert!(
        finals.is_empty(),
        "moved into place after the stop: {finals:#?}\n{report:#}"
    );
}

#[test]
fn a_restarted_pod_catches_up_every_folder_changed_while_it_was_down_served_or_not() {
    let remote = tempfile::tempdir().expect("temp dir");
    let shared = tempfile::tempdir().expect("temp dir");
    let volume = shared.path().join("volume");
    let mut first = SyncPod::start(local_remote(remote.path()).volume(&volume).pod_id("pod-a"));
    let output = volume.join("output/alice");
    write(&output.join("before.png"), b"synced before the kill");
    first.serve("alice");
    let synced = remote.path().join("ComfyUI/output/alice");
    wait_same_content(&first, &output, &synced);
    first.wait_report("the pass to end", |report| {
        folder(report, "alice", "output")["state"] == "idle"
    });
    // Files written just before the kill, and while the supervisor is down.
    write(&output.join("unsynced-1.png"), b"written before the kill");
    let rclone = first.rclone_pid();
    first.signal_and_wait("KILL");
    let _ = Command::new("kill")
        .args(["-KILL", &rclone.to_string()])
        .status();
    drop(first);
    for i in 2..6u8 {
        write(&output.join(format!("unsynced-{i}.png")), &content(i, 5000));
    }
    std::fs::remove_file(output.join("before.png")).expect("delete");
    // Restarted, nobody served yet: the ledger brings alice's output back.
    let second = SyncPod::start(local_remote(remote.path()).volume(&volume).pod_id("pod-a"));
    wait_same_content(&second, &output, &synced);
    let report = second.report();
    assert!(
        folder(&report, "alice", "output")["held_by"].is_null(),
        "{report:#}"
    );
    let shown = second.everything_shown();
    assert!(
        shown.contains("output/alice: changed since its last pass before this start: catching up"),
        "{shown}"
    );
}

#[test]
fn an_rclone_crash_loop_cools_down_and_a_person_can_restart_it() {
    let remote = tempfile::tempdir().expect("temp dir");
    let crash = remote.path().join("crash");
    std::fs::write(&crash, b"").expect("write the marker");
    let pod = SyncPod::start(
        fake_rclone(local_remote(&remote.path().join("remote")))
            .env("FAKE_RCLONE_RCD_CRASH", &crash.display().to_string()),
    );
    write(
        &pod.volume.join("output/alice/a.png"),
        b"waiting for rclone",
    );
    pod.serve("alice");
    // Ten deaths within two minutes: failed, with a cool-down instead of for good.
    let report = pod.wait_report("the crash loop and its cool-down", |report| {
        report["service"]["state"] == "failed" && report["restart_at_ms"].is_u64()
    });
    assert!(
        report["restart_at_ms"].as_u64() > report["now_ms"].as_u64(),
        "{report:#}"
    );
    assert!(
        pod.output()
            .contains("rclone keeps crashing; it is started again in 30s"),
        "{}",
        pod.output()
    );
    std::fs::remove_file(&crash).expect("remove the marker");
    let restarted = pod.post("/api/sync/restart", json!({}));
    assert_eq!(restarted.status, 202, "{}", restarted.body);
    pod.wait_report("rclone to be ready and alice synced", |report| {
        report["service"]["state"] == "ready"
            && report["restart_at_ms"].is_null()
            && folder(report, "alice", "output")["total"]["files"] == 1
    });
    let again = pod.post("/api/sync/restart", json!({}));
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains("rclone is ready, not failed"),
        "{}",
        again.body
    );
    let log = pod.get("/api/logs?service=sync").body;
    assert!(
        log.contains("rclone restarted through POST /api/sync/restart"),
        "{log}"
    );
}
