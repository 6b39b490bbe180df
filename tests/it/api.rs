//! The control panel's API over real HTTP, served by the real `podstack supervise`.

use std::io::BufRead as _;
use std::time::Duration;

use serde_json::json;

use crate::support::http::{event_stream, http};
use crate::support::pod::pod;

#[test]
fn a_panel_token_guards_the_api_by_bearer_or_login_cookie() {
    let pod = pod().env("PODSTACK_PANEL_TOKEN", "s3cret").start();
    let port = pod.panel;
    let status = http(port, "GET", "/api/status", None, &[]).expect("answers");
    assert_eq!(status.status, 401, "{}", status.body);
    assert_eq!(status.json()["error"], "this panel needs its token");
    let start =
        http(port, "POST", "/api/start", Some(r#"{"user":"alice"}"#), &[]).expect("answers");
    assert_eq!(start.status, 401);
    assert_eq!(
        http(port, "GET", "/api/health", None, &[])
            .expect("answers")
            .status,
        200
    );
    let page = http(port, "GET", "/", None, &[]).expect("answers");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/api/status"));

    let bearer = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        http(port, "GET", "/api/status", None, &bearer)
            .expect("answers")
            .status,
        200
    );
    let wrong = [("Authorization", "Bearer s3cret2")];
    assert_eq!(
        http(port, "GET", "/api/status", None, &wrong)
            .expect("answers")
            .status,
        401
    );

    let refused = http(
        port,
        "POST",
        "/api/login",
        Some(r#"{"token":"guess"}"#),
        &[],
    )
    .expect("answers");
    assert_eq!(refused.status, 401);
    let login = http(
        port,
        "POST",
        "/api/login",
        Some(r#"{"token":"s3cret"}"#),
        &[],
    )
    .expect("answers");
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .expect("a login cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value");
    let with_cookie = [("Cookie", session)];
    let start = http(
        port,
        "POST",
        "/api/start",
        Some(r#"{"user":"alice"}"#),
        &with_cookie,
    )
    .expect("answers");
    assert_eq!(start.status, 202, "{}", start.body);
    let cross_site = [("Cookie", session), ("Origin", "https://evil.example")];
    let stop = http(port, "POST", "/api/stop", Some("{}"), &cross_site).expect("answers");
    assert_eq!(stop.status, 403, "{}", stop.body);
    pod.wait_comfyui("ready");
}

#[test]
fn bad_user_names_are_refused_with_the_rule() {
    let pod = pod().start();
    let long = "a".repeat(33);
    for name in ["../x", "a b", "$(id)", "", long.as_str()] {
        let reply = pod.post("/api/start", json!({ "user": name }));
        assert_eq!(reply.status, 400, "{name}: {}", reply.body);
        let error = reply.json();
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("is not a valid user name")),
            "{error}"
        );
        assert_eq!(
            error["hint"],
            "user names are 1-32 characters: lower-case letters, digits, `_` and `-`, starting with a letter or digit"
        );
    }
    let reply = pod.post("/api/users", json!({"name": "../x"}));
    assert_eq!(reply.status, 400);
    assert_eq!(pod.status()["services"]["comfyui"]["state"], "stopped");
}

#[test]
fn added_users_are_kept_in_this_pods_file() {
    let pod = pod().set("/runtime/allow_new_users", json!(true)).start();
    let reply = pod.post("/api/users", json!({"name": "carol"}));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["users"], json!(["alice", "bob", "carol"]));
    let saved = std::fs::read_to_string(pod.volume.join(".podstack/users/test-pod.json"))
        .expect("the pod's user file");
    assert!(saved.contains("carol"), "{saved}");
    pod.start_ready("carol");
    assert!(pod.volume.join("output/carol").is_dir());
}

#[test]
fn logs_page_by_cursor_and_stream_live() {
    let pod = pod().start();
    let first = pod.get("/api/logs?service=supervisor").json();
    let next = first["next"].as_u64().expect("a cursor");
    assert!(
        first["lines"]
            .as_array()
            .is_some_and(|lines| !lines.is_empty()),
        "{first}"
    );
    assert_eq!(first["dropped"], false);

    let mut reader = event_stream(pod.panel, "/api/logs/stream?service=comfyui");
    pod.post("/api/start", json!({"user": "alice"}));
    let mut seen = String::new();
    while !seen.contains("To see the GUI go to") {
        let mut line = String::new();
        let read = reader.read_line(&mut line).expect("the stream stays open");
        assert!(read > 0, "the stream ended early: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("event: line"), "{seen}");
    drop(reader);

    let later = pod.get(&format!("/api/logs?after={next}")).json();
    let lines = later["lines"].as_array().expect("lines");
    assert!(
        lines
            .iter()
            .all(|line| line["cursor"].as_u64() > Some(next)),
        "{later}"
    );
    assert!(
        lines.iter().any(|line| line["service"] == "comfyui"),
        "{later}"
    );
    assert!(
        pod.get("/api/health").status == 200,
        "the panel still serves after a client left a stream"
    );
}

#[test]
fn usage_and_metrics_count_what_ran() {
    let pod = pod().gpu("rtx4090", "NVIDIA GeForce RTX 4090").start();
    pod.start_ready("alice");
    pod.post("/api/stop", json!({}));
    pod.wait_comfyui("stopped");
    let usage = pod.get("/api/usage").json();
    let alice = &usage["users"][0];
    assert_eq!(alice["user"], "alice", "{usage}");
    assert_eq!(alice["sessions"], 1);
    assert!(
        alice["gpu_hours"].as_f64().is_some_and(|hours| hours > 0.0),
        "{usage}"
    );
    assert!(
        alice["hours_by_gpu"]["NVIDIA GeForce RTX 4090"].is_number(),
        "{usage}"
    );

    let metrics = pod.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("podstack_service_state{service=\"comfyui\",slot=\"0\",state=\"stopped\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("podstack_service_start_seconds{service=\"comfyui\",slot=\"0\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("podstack_uptime_seconds"),
        "{}",
        metrics.body
    );
}

#[test]
fn the_status_streams_every_change_as_server_sent_events() {
    let pod = pod().start();
    let mut reader = event_stream(pod.panel, "/api/status/stream");
    let mut head = String::new();
    let mut states = Vec::new();
    let mut started = false;
    while states.last().map(String::as_str) != Some("ready") {
        let mut line = String::new();
        let read = reader.read_line(&mut line).expect("the stream stays open");
        assert!(read > 0, "the stream ended early: {head}{states:?}");
        let Some(data) = line.strip_prefix("data: ") else {
            head.push_str(&line);
            continue;
        };
        let status: serde_json::Value = serde_json::from_str(data).expect("JSON status");
        assert_eq!(
            status["comfyui_url"],
            format!("http://127.0.0.1:{}", pod.comfyui)
        );
        let state = status["services"]["comfyui"]["state"]
            .as_str()
            .expect("a state")
            .to_owned();
        if states.last() != Some(&state) {
            states.push(state);
        }
        if !started {
            // The current status came first, without asking.
            assert_eq!(states, ["stopped"]);
            started = true;
            pod.post("/api/start", json!({"user": "alice"}));
        }
    }
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(head.contains("event: status"), "{head}");
    assert!(head.contains("retry: 1000"), "{head}");
    assert_eq!(states, ["stopped", "starting", "ready"]);
}

#[test]
fn the_panels_files_are_served_with_their_types_and_nothing_else() {
    let pod = pod().env("PODSTACK_PANEL_TOKEN", "s3cret").start();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ] {
        let reply = http(pod.panel, "GET", path, None, &[]).expect("answers");
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    for path in [
        "/ui/../runtime/stack.json",
        "/ui/..%2Fruntime%2Fstack.json",
        "/ui/%2e%2e",
        "/ui/files.sha256",
        "/ui/nope.js",
        "/ui/.hidden.js",
    ] {
        let reply = http(pod.panel, "GET", path, None, &[]).expect("answers");
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(reply.json()["hint"].is_string(), "{path}");
    }
}

#[test]
fn outputs_are_listed_and_served_only_from_the_users_own_folder() {
    let pod = pod().start();
    let output = pod.volume.join("output");
    for (path, bytes) in [
        ("alice/first.png", &b"\x89PNG first"[..]),
        ("alice/2026-05/second.webp", b"RIFF second"),
        ("alice/notes.txt", b"not an image"),
        ("bob/bobs.png", b"\x89PNG bob"),
    ] {
        let file = output.join(path);
        std::fs::create_dir_all(file.parent().expect("a folder")).expect("folder");
        std::fs::write(&file, bytes).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(pod.volume.join("secret.png"), b"\x89PNG secret").expect("write");
    std::os::unix::fs::symlink(pod.volume.join("secret.png"), output.join("alice/link.png"))
        .expect("symlink");

    let list = pod.get("/api/outputs?user=alice");
    assert_eq!(list.status, 200, "{}", list.body);
    let images: Vec<String> = list.json()["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(images, ["2026-05/second.webp", "first.png"]);

    let image = pod.get("/api/outputs/alice/2026-05/second.webp");
    assert_eq!(image.status, 200, "{}", image.body);
    assert_eq!(image.header("content-type"), Some("image/webp"));
    assert_eq!(image.body, "RIFF second");

    for (path, status, error) in [
        (
            "/api/outputs/alice/../bob/bobs.png",
            400,
            "`..` is not a plain file name",
        ),
        (
            "/api/outputs/alice/..%2Fbob%2Fbobs.png",
            400,
            "`..` is not a plain file name",
        ),
        (
            "/api/outputs/alice/link.png",
            400,
            "leads outside the user's output folder",
        ),
        ("/api/outputs/alice/notes.txt", 400, "is not an image"),
        (
            "/api/outputs/alice/bobs.png",
            404,
            "is not in the user's output folder",
        ),
        (
            "/api/outputs/..%2Fbob/bobs.png",
            400,
            "is not a valid user name",
        ),
        (
            "/api/outputs/carol/first.png",
            404,
            "`carol` is not a user of this pod",
        ),
        (
            "/api/outputs?user=..%2Fbob",
            400,
            "is not a valid user name",
        ),
    ] {
        let reply = pod.get(path);
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        let answer = reply.json();
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(error)),
            "{path}: {answer}"
        );
        assert!(answer["hint"].is_string(), "{path}");
    }
}
