//! The pod under stress (issue 14): live data that never goes missing, connections that
//! cannot crowd out `/api/health`, failures that end and explain themselves, and the host
//! figures the panel charts. The real binary, the stand-in ComfyUI, the fake nvidia-smi.

use std::io::{BufRead as _, Write as _};
use std::net::TcpStream;

use serde_json::{json, Value};

use crate::support::http::{event_stream, http};
use crate::support::pod::pod;
use crate::support::wait::{alive, eventually};

/// The `line` events of a log stream until one whose text contains `until`.
fn stream_lines(port: u16, path: &str, until: &str) -> Vec<Value> {
    let mut stream = event_stream(port, path);
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the stream ended before `{until}`: {lines:?}");
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            if let Ok(value) = serde_json::from_str::<Value>(data) {
                let done = value["text"]
                    .as_str()
                    .is_some_and(|text| text.contains(until));
                lines.push(value);
                if done {
                    return lines;
                }
            }
        }
    }
}

#[test]
fn a_log_stream_replays_the_ring_after_its_cursor() {
    let pod = pod().start();
    pod.start_ready("alice");
    // Every line from the ring's start: the ready line came before this stream opened.
    let all = stream_lines(
        pod.panel,
        "/api/logs/stream?service=comfyui",
        "To see the GUI",
    );
    let ring = pod.get("/api/logs?service=comfyui").json();
    assert_eq!(all[0]["cursor"], ring["lines"][0]["cursor"], "{all:?}");
    assert!(
        all.iter().any(|line| line["text"]
            .as_str()
            .unwrap()
            .starts_with("Setting output directory to:")),
        "{all:?}"
    );
    // From a cursor: only what came after it.
    let cursor = all[2]["cursor"].as_u64().unwrap();
    let after = stream_lines(
        pod.panel,
        &format!("/api/logs/stream?service=comfyui&after={cursor}"),
        "To see the GUI",
    );
    assert_eq!(after[0]["cursor"], all[3]["cursor"]);
}

/// The status line of a stream's answer (`HTTP/1.1 200 OK`), read from its open connection.
fn answered(stream: &mut std::io::BufReader<TcpStream>) -> String {
    let mut status = String::new();
    stream.read_line(&mut status).expect("an answer");
    status.trim_end().to_owned()
}

#[test]
fn a_log_stream_past_the_slots_is_refused_and_a_slot_comes_back_when_a_reader_leaves() {
    let pod = pod().start();
    let path = "/api/logs/stream?service=supervisor";
    let mut open: Vec<_> = (0..32)
        .map(|_| {
            let mut stream = event_stream(pod.panel, path);
            assert_eq!(answered(&mut stream), "HTTP/1.1 200 OK");
            stream
        })
        .collect();
    let refused = http(pod.panel, "GET", path, None, &[]).expect("the panel answers");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("page through GET /api/logs?after=<cursor>"),
        "{}",
        refused.body
    );
    // The health check is not a log stream: it still answers.
    assert_eq!(pod.get("/api/health").status, 200);
    // One reader leaves: its slot is free again once the server sees the connection gone.
    open.pop();
    eventually("a log stream slot to come back", || {
        let mut stream = event_stream(pod.panel, path);
        (answered(&mut stream) == "HTTP/1.1 200 OK").then_some(())
    });
}

#[test]
fn idle_and_half_sent_connections_do_not_crowd_out_health() {
    let pod = pod().start();
    // More than the panel's 512 connections: half idle, half with a request head never ended.
    let mut sockets = Vec::new();
    for n in 0..600 {
        let mut socket = TcpStream::connect(("127.0.0.1", pod.panel)).expect("connects");
        if n % 2 == 0 {
            socket
                .write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
        }
        sockets.push(socket);
    }
    let health = http(pod.panel, "GET", "/api/health", None, &[]).expect("health answers");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["ok"], true);
    let status = pod.get("/api/status");
    assert_eq!(status.status, 200);
}

#[test]
fn a_detached_process_of_a_custom_node_ends_with_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("detached.pid");
    let pod = pod()
        .env("STANDIN_DETACHED_PIDFILE", pidfile.to_str().unwrap())
        .start();
    pod.start_ready("alice");
    let detached: u32 = eventually("the detached process's pid", || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    assert!(alive(detached));
    let comfyui = pod.comfyui_pid().expect("ComfyUI runs");
    assert_ne!(
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(detached as i32))).unwrap(),
        nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(comfyui as i32))).unwrap(),
        "the stand-in's helper runs in a session of its own"
    );
    pod.post("/api/stop", json!({}));
    pod.wait_comfyui("stopped");
    eventually("the detached process to end", || {
        (!alive(detached)).then_some(())
    });
    assert!(
        pod.output().contains("which the service's process"),
        "{}",
        pod.output()
    );
}

#[test]
fn a_custom_node_that_fails_to_import_is_a_warning_with_its_name() {
    let pod = pod().env("STANDIN_FAILED_NODES", "ComfyUI-Broken").start();
    let status = pod.start_ready("alice");
    let status = if status["import_failed"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        status
    } else {
        pod.status()
    };
    assert_eq!(status["import_failed"][0]["node"], "ComfyUI-Broken");
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("Custom node ComfyUI-Broken failed to import (IMPORT FAILED)"),
        "{warnings}"
    );
    // Its database is the user's, on the volume: no "Failed to initialize database".
    assert!(pod.volume.join("users/alice/comfyui.db").is_file());
    let log = pod.get("/api/logs?service=comfyui").body;
    assert!(!log.contains("Failed to initialize database"), "{log}");
}

#[test]
fn a_taken_comfyui_port_fails_at_once_without_a_boot() {
    let pod = pod().start();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", pod.comfyui)).expect("takes the port");
    pod.post("/api/start", json!({"user": "alice"}));
    let status = pod.wait_comfyui("failed");
    let comfyui = &status["services"]["comfyui"];
    assert_eq!(
        comfyui["reason"],
        format!(
            "ComfyUI cannot start: port {} is already in use on address 127.0.0.1",
            pod.comfyui
        )
    );
    assert_eq!(
        comfyui["hint"],
        format!(
            "Stop the other program on port {}, or set runtime.comfyui_port to a free port.",
            pod.comfyui
        )
    );
    assert_eq!(comfyui["restarts"], 0);
}

#[test]
fn a_crash_while_backing_off_shows_its_last_lines() {
    let pod = pod().env("STANDIN_CRASH_AFTER", "0").start();
    pod.post("/api/start", json!({"user": "alice"}));
    let status = pod.wait_for("backing off", |status| {
        status["services"]["comfyui"]["state"] == "backing-off"
    });
    let lines = status["services"]["comfyui"]["last_lines"].to_string();
    assert!(lines.contains("RuntimeError: simulated crash"), "{lines}");
}

#[test]
fn host_samples_carry_the_gpu_cpu_ram_and_volume() {
    let pod = pod().gpu("rtx4090", "NVIDIA GeForce RTX 4090").start();
    let status = pod.wait_for("a host sample", |status| !status["host"].is_null());
    let host = &status["host"];
    assert_eq!(host["gpus"][0]["name"], "NVIDIA GeForce RTX 4090");
    assert_eq!(host["gpus"][0]["utilization_pct"], 37);
    assert_eq!(host["gpus"][0]["memory_total_mib"], 24564);
    assert_eq!(host["gpus"][0]["temperature_c"], 45);
    assert_eq!(host["gpus"][0]["power_w"], 120.53);
    assert!(host["ram_total_bytes"].as_u64().unwrap() > 0, "{host}");
    assert!(
        host["volume"]["total_bytes"].as_u64().unwrap() > 0,
        "{host}"
    );
    let history = pod.get("/api/metrics/history").json();
    assert_eq!(history["interval_s"], 5);
    assert_eq!(history["samples"][0]["gpus"][0]["index"], 0);
}

#[test]
fn a_log_downloads_as_a_file() {
    let pod = pod().pod_id("pod-dl").start();
    pod.start_ready("alice");
    let reply = pod.get("/api/logs/download?source=comfyui");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"pod-dl-comfyui.log\"")
    );
    assert!(
        reply.body.contains("Z To see the GUI go to:"),
        "{}",
        reply.body
    );
}

#[test]
fn login_attempts_are_limited() {
    let pod = pod().env("PODSTACK_PANEL_TOKEN", "s3cret").start();
    let guess = || {
        http(
            pod.panel,
            "POST",
            "/api/login",
            Some(r#"{"token":"guess"}"#),
            &[],
        )
        .expect("answers")
    };
    let statuses: Vec<u16> = (0..15).map(|_| guess().status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let refused = guess();
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.json()["error"], "too many login attempts");
}

#[test]
fn on_runpod_without_a_token_the_pod_makes_one() {
    let pod = pod().env("RUNPOD_POD_ID", "abc123").start();
    let file = pod.volume.join(".podstack/panel-token");
    let token = std::fs::read_to_string(&file).expect("the token file");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(pod
        .output()
        .contains(&format!("Panel token: {}", token.trim())));
    let open = http(pod.panel, "GET", "/api/status", None, &[]).expect("answers");
    assert_eq!(open.status, 401);
    let bearer = format!("bearer {}", token.trim());
    let with = http(
        pod.panel,
        "GET",
        "/api/status",
        None,
        &[("Authorization", &bearer)],
    )
    .expect("answers");
    assert_eq!(with.status, 200);
}
