//! The fleet view with real supervisors sharing one volume: heartbeats, stale digests, a pod
//! killed without a clean stop, a clean stop, hostile files in the pods folder, and
//! `podstack fleet` reading the same volume from outside.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::pod::{pod, Pod};
use crate::support::podstack;
use crate::support::wait::eventually;

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// A supervisor on `volume` running the build `digest` of stack version `version`.
fn fleet_pod(volume: &Path, id: &str, digest: &str, version: &str) -> Pod {
    pod()
        .volume(volume)
        .pod_id(id)
        .set("/version", json!(version))
        .env("PODSTACK_DIGEST", digest)
        .env("PODSTACK_HEARTBEAT_INTERVAL", "200ms")
        .start()
}

/// The pods of a fleet answer, by id.
fn pod_of<'a>(fleet: &'a Value, id: &str) -> Option<&'a Value> {
    fleet["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|pod| pod["pod"] == id))
}

/// Polls `/api/fleet` until `done` holds.
#[track_caller]
fn fleet_until(pod: &Pod, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || {
        let fleet = pod.get("/api/fleet").json();
        done(&fleet).then_some(fleet)
    })
}

#[test]
fn fleet_of_three_pods_names_the_stale_one_and_the_one_killed() {
    let volume = tempfile::tempdir().unwrap();
    let mut a = fleet_pod(volume.path(), "pod-a", OLD, "0.1.0");
    let b = fleet_pod(volume.path(), "pod-b", NEW, "0.2.0");
    let mut c = fleet_pod(volume.path(), "pod-c", OLD, "0.1.0");
    a.start_ready("alice");
    let fleet = fleet_until(&b, "three live pods, alice on pod-a", |fleet| {
        fleet["pods"].as_array().map_or(0, Vec::len) == 3
            && fleet["pods"]
                .as_array()
                .unwrap()
                .iter()
                .all(|pod| pod["state"] == "live")
            && pod_of(fleet, "pod-a").is_some_and(|pod| pod["users"] == json!(["alice"]))
    });
    assert_eq!(fleet["reference"]["digest"], NEW);
    assert_eq!(
        fleet["reference"]["source"],
        "the newest build seen (pod pod-b, smoke 0.2.0)"
    );
    let pod_a = pod_of(&fleet, "pod-a").unwrap();
    assert_eq!(pod_a["stale"], true);
    assert_eq!(pod_a["digest"], OLD);
    assert_eq!(pod_a["gpus"], json!([]));
    assert_eq!(pod_of(&fleet, "pod-b").unwrap()["stale"], false);
    assert_eq!(pod_of(&fleet, "pod-b").unwrap()["users"], json!([]));

    // Killed: no clean stop, so its heartbeat stays and goes silent.
    c.signal_and_wait("KILL");
    let fleet = fleet_until(&a, "pod-c silent", |fleet| {
        pod_of(fleet, "pod-c").is_some_and(|pod| pod["state"] == "silent")
    });
    assert_eq!(pod_of(&fleet, "pod-a").unwrap()["state"], "live");

    let run = podstack(["fleet", "--volume"])
        .arg(volume.path())
        .run()
        .expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}: 3 pod(s), 2 live", volume.path().display())
    );
    assert_eq!(
        lines[1],
        "expected build: sha256:222222222222 (the newest build seen (pod pod-b, smoke 0.2.0))"
    );
    assert_eq!(
        lines[2],
        "  pod-a  live  smoke 0.1.0  STALE sha256:111111111111  alice  CPU"
    );
    assert_eq!(
        lines[3],
        "  pod-b  live  smoke 0.2.0  current sha256:222222222222  no user  CPU"
    );
    assert!(
        lines[4].starts_with("  pod-c  SILENT for ")
            && lines[4].ends_with(" s  smoke 0.1.0  STALE sha256:111111111111  no user  CPU"),
        "{}",
        lines[4]
    );

    // A clean stop removes the heartbeat: the stale live pod is gone, the silent one is not
    // live, so nothing live is stale any more.
    assert!(a.signal_and_wait("TERM").success());
    assert!(!volume.path().join(".podstack/pods/pod-a.json").exists());
    let run = podstack(["fleet", "--volume"])
        .arg(volume.path())
        .arg("--json")
        .run()
        .expect_code(0);
    let fleet: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(pod_of(&fleet, "pod-a").is_none());
    assert_eq!(pod_of(&fleet, "pod-c").unwrap()["state"], "silent");
}

#[test]
fn fleet_of_two_pods_measures_against_the_expected_digest() {
    let volume = tempfile::tempdir().unwrap();
    let x = pod()
        .volume(volume.path())
        .pod_id("pod-x")
        .env("PODSTACK_DIGEST", OLD)
        .env("PODSTACK_EXPECTED_DIGEST", OLD)
        .env("PODSTACK_HEARTBEAT_INTERVAL", "200ms")
        .start();
    let _y = fleet_pod(volume.path(), "pod-y", NEW, "9.0.0");
    // pod-y runs a newer version, but pod-x was told what every pod should run.
    let fleet = fleet_until(&x, "two pods", |fleet| {
        fleet["pods"].as_array().map_or(0, Vec::len) == 2
    });
    assert_eq!(fleet["reference"]["digest"], OLD);
    assert_eq!(pod_of(&fleet, "pod-x").unwrap()["stale"], false);
    assert_eq!(pod_of(&fleet, "pod-y").unwrap()["stale"], true);
    // From outside, with the expected digest given: the same verdict and exit 1.
    let run = podstack(["fleet", "--volume"])
        .arg(volume.path())
        .arg("--expected")
        .arg(NEW)
        .run()
        .expect_code(1);
    assert!(
        run.stdout
            .contains("expected build: sha256:222222222222 (PODSTACK_EXPECTED_DIGEST)\n"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("  pod-x  live  smoke 0.1.0  STALE sha256:111111111111"));
    podstack(["fleet", "--volume"])
        .arg(volume.path())
        .arg("--expected")
        .arg("sha256:short")
        .run()
        .expect_code(2);
}

#[test]
fn fleet_reports_hostile_heartbeat_files_and_keeps_serving() {
    let volume = tempfile::tempdir().unwrap();
    let pods = volume.path().join(".podstack/pods");
    std::fs::create_dir_all(&pods).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", pods.join("evil.json")).unwrap();
    std::fs::write(pods.join("huge.json"), vec![b'{'; 1 << 20]).unwrap();
    std::fs::write(pods.join("garbage.json"), b"\xff\xfe not json").unwrap();
    std::fs::create_dir(pods.join("folder.json")).unwrap();
    nix::unistd::mkfifo(&pods.join("fifo.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let liar = json!({
        "format": 1, "pod": "someone-else", "stack": "smoke", "version": "0.1.0",
        "digest": OLD, "users": [], "gpus": [], "started_ms": 1, "beat_ms": 2, "interval_ms": 5000
    });
    std::fs::write(pods.join("liar.json"), liar.to_string()).unwrap();
    let mut escape = liar.clone();
    escape["pod"] = json!("escape");
    escape["users"] = json!(["../../etc"]);
    std::fs::write(pods.join("escape.json"), escape.to_string()).unwrap();
    std::fs::write(pods.join("notes.txt"), "hello").unwrap();

    let pod = fleet_pod(volume.path(), "pod-h", NEW, "0.1.0");
    let fleet = fleet_until(&pod, "its own beat", |fleet| {
        pod_of(fleet, "pod-h").is_some()
    });
    assert_eq!(fleet["pods"].as_array().unwrap().len(), 1);
    let problems: Vec<String> = fleet["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["file"].as_str().unwrap(),
                p["problem"].as_str().unwrap()
            )
        })
        .collect();
    let why = |file: &str| {
        problems
            .iter()
            .find(|p| p.starts_with(&format!("{file}: ")))
            .unwrap_or_else(|| panic!("{file} not reported: {problems:?}"))
            .clone()
    };
    assert_eq!(
        why("evil.json"),
        "evil.json: not a regular file (a link or a folder is never followed)"
    );
    assert_eq!(
        why("folder.json"),
        "folder.json: not a regular file (a link or a folder is never followed)"
    );
    assert_eq!(
        why("fifo.json"),
        "fifo.json: not a regular file (a link or a folder is never followed)"
    );
    assert_eq!(why("huge.json"), "huge.json: larger than 16384 bytes");
    assert!(why("garbage.json").starts_with("garbage.json: not a heartbeat: "));
    assert_eq!(
        why("liar.json"),
        "liar.json: its pod id is not the one its file is named for"
    );
    assert!(why("escape.json").starts_with("escape.json: a user name breaks the rule"));
    assert_eq!(
        why("notes.txt"),
        "notes.txt: not a heartbeat file (`<pod>.json`)"
    );
    assert_eq!(pod.get("/api/health").status, 200);
    let run = podstack(["fleet", "--volume"])
        .arg(volume.path())
        .run()
        .expect_code(0);
    assert!(
        run.stdout
            .contains("  ignored evil.json: not a regular file"),
        "{}",
        run.stdout
    );
}
