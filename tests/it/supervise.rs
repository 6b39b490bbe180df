//! `podstack supervise` as a pod runs it: the real binary, a temporary volume, the stand-in
//! ComfyUI and the fake nvidia-smi, over real HTTP (the pod itself is `support::pod`). Every
//! wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::http::http;
use crate::support::pod::{pod, Pod, PROMPT};
use crate::support::repo;
use crate::support::wait::{alive, eventually};

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

/// The environment of a process, from /proc.
fn environ(pid: u32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|byte| *byte == 0)
        .filter_map(|pair| {
            String::from_utf8_lossy(pair)
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn env_of(pid: u32, name: &str) -> Option<String> {
    environ(pid)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[test]
fn start_answers_at_once_and_outputs_land_only_in_the_users_folder() {
    let pod = pod()
        .env("STANDIN_STARTUP_SECONDS", "3")
        // Every prompt is followed by memory relief.
        .set(
            "/runtime/memory",
            json!({"free_above_ram_percent": 0, "free_above_vram_percent": 0}),
        )
        .start();
    let reply = pod.post("/api/start", json!({"user": "alice"}));
    assert_eq!(reply.status, 202, "{}", reply.body);
    // The answer comes while ComfyUI is still starting: the start does not wait for it (how
    // fast it answers is measured by ci/bench-supervisor.sh, not here).
    let answered = reply.json();
    assert_eq!(
        answered["services"]["comfyui"]["state"], "starting",
        "{answered:#}"
    );
    assert_eq!(answered["user"], "alice");
    let starting = pod.wait_for("a start-up stage from ComfyUI's log", |status| {
        let comfyui = &status["services"]["comfyui"];
        comfyui["state"] == "starting"
            && comfyui["percent"]
                .as_u64()
                .is_some_and(|percent| percent >= 10)
    });
    assert!(starting["services"]["comfyui"]["stage"]
        .as_str()
        .is_some_and(|stage| !stage.is_empty()));
    let ready = pod.wait_comfyui("ready");
    assert_eq!(
        ready["attention"]["confirmed"]["kernel"], "sub-quadratic",
        "{ready:#}"
    );
    assert!(ready["services"]["comfyui"]["last_start_s"]
        .as_f64()
        .is_some_and(|s| s >= 2.0));

    let prompt =
        http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
    assert_eq!(prompt.status, 200, "{}", prompt.body);
    let output = pod.volume.join("output");
    let png = eventually("the PNG", || {
        files_under(&output)
            .into_iter()
            .find(|f| f.extension().is_some_and(|e| e == "png"))
    });
    assert_eq!(
        png.parent(),
        Some(output.join("alice").as_path()),
        "{}",
        png.display()
    );
    assert_eq!(files_under(&output).len(), 1, "{:?}", files_under(&output));
    eventually("memory relief after the prompt", || {
        let logs = pod.get("/api/logs?service=comfyui").json();
        logs["lines"]
            .as_array()?
            .iter()
            .any(|line| {
                line["text"]
                    .as_str()
                    .is_some_and(|text| text.contains("/free acted on"))
            })
            .then_some(())
    });
    let log = pod.volume.join(".podstack/logs/test-pod/comfyui.log");
    assert!(
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("To see the GUI go to")),
        "{}",
        log.display()
    );
}

#[test]
fn a_crash_restarts_with_backoff_and_a_crash_loop_fails_with_the_reason() {
    let pod = pod()
        .env("STANDIN_CRASH_AFTER", "0.2")
        .set("/runtime/restart/crash_loop_failures", json!(3))
        .start();
    pod.post("/api/start", json!({"user": "alice"}));
    let backing_off = pod.wait_comfyui("backing-off");
    let comfyui = &backing_off["services"]["comfyui"];
    assert_eq!(
        comfyui["reason"], "ComfyUI exited with code 1",
        "{comfyui:#}"
    );
    assert!(comfyui["until"].as_u64() > comfyui["since"].as_u64());
    let failed = pod.wait_comfyui("failed");
    let comfyui = &failed["services"]["comfyui"];
    let reason = comfyui["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("ComfyUI crashed 3 times in 2m; last: ComfyUI exited with code 1"),
        "{reason}"
    );
    assert_eq!(comfyui["restarts"], 2);
    let lines = comfyui["last_lines"].to_string();
    assert!(lines.contains("simulated crash"), "{lines}");
    assert_eq!(failed["user"], "alice");
}

#[test]
fn a_plain_sigkill_says_killed_by_signal_9() {
    let pod = pod()
        .env("STANDIN_SIGKILL_AFTER", "0.2")
        .set("/runtime/restart/crash_loop_failures", json!(1))
        .start();
    pod.post("/api/start", json!({"user": "alice"}));
    let failed = pod.wait_comfyui("failed");
    let reason = failed["services"]["comfyui"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.ends_with("ComfyUI was killed by signal 9 (SIGKILL)"),
        "{reason}"
    );
    assert!(!reason.contains("out-of-memory"), "{reason}");
}

/// A memory cgroup v1 of its own, removed when dropped.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn create(limit_mb: u64) -> Result<Self, String> {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("cgroup.procs").exists() {
            return Err("no cgroup v1 memory controller at /sys/fs/cgroup/memory".into());
        }
        let dir = root.join(format!("podstack-test-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let cgroup = Self(dir);
        let limit = (limit_mb * 1024 * 1024).to_string();
        std::fs::write(cgroup.0.join("memory.limit_in_bytes"), &limit)
            .map_err(|err| format!("cannot set the limit: {err}"))?;
        // With swap accounting the limit must cover swap too, or the allocation swaps instead.
        let _ = std::fs::write(cgroup.0.join("memory.memsw.limit_in_bytes"), &limit);
        let _ = std::fs::write(cgroup.0.join("memory.swappiness"), "0");
        Ok(cgroup)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_real_oom_kill_says_out_of_memory() {
    let cgroup = match MemoryCgroup::create(150) {
        Ok(cgroup) => cgroup,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let pod = pod()
        .env("PODSTACK_COMFYUI_CGROUP", &cgroup.0.display().to_string())
        .env("STANDIN_ALLOCATE_MB", "600")
        .set("/runtime/restart/crash_loop_failures", json!(1))
        .start();
    pod.post("/api/start", json!({"user": "alice"}));
    let failed = pod.wait_comfyui("failed");
    let comfyui = &failed["services"]["comfyui"];
    let reason = comfyui["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ComfyUI was killed by the kernel's out-of-memory killer (RAM"),
        "{reason}"
    );
    assert!(comfyui["exit"]["oom"].is_object(), "{comfyui:#}");
    drop(pod);
}

#[test]
fn the_start_user_gets_comfyui_at_boot_without_a_request() {
    let pod = pod().env("PODSTACK_START_USER", "bob").start();
    let ready = pod.wait_comfyui("ready");
    assert_eq!(ready["user"], "bob", "{ready:#}");
    assert!(pod.volume.join("users/bob").is_dir());
}

#[test]
fn stop_is_graceful_and_starts_again() {
    // A grace far beyond the wait's deadline: stopped within the wait means SIGTERM ended it.
    let pod = pod().set("/runtime/stop_grace", json!("10m")).start();
    pod.start_ready("alice");
    let pid = pod.comfyui_pid().expect("the stand-in wrote its pid");
    let reply = pod.post("/api/stop", json!({}));
    assert_eq!(reply.status, 202, "{}", reply.body);
    let status = pod.wait_comfyui("stopped");
    assert_eq!(status["user"], Value::Null);
    assert!(!alive(pid));
    assert!(!pod.output().contains("SIGKILL"), "{}", pod.output());
    let sessions = std::fs::read_to_string(pod.volume.join(".podstack/sessions/test-pod.jsonl"))
        .expect("usage log");
    let events: Vec<Value> = sessions
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|event| event["event"].as_str())
        .collect();
    assert_eq!(kinds, ["started", "ready", "stopped"], "{sessions}");
    assert_eq!(events[2]["reason"], "stopped");
    pod.start_ready("alice");
}

#[test]
fn sigterm_to_the_supervisor_leaves_no_process() {
    let mut pod = pod().start();
    pod.start_ready("alice");
    let comfyui = pod.comfyui_pid().expect("the stand-in wrote its pid");
    let supervisor = pod.pid();
    assert!(alive(comfyui));
    let status = pod.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(0), "{}", pod.output());
    assert!(!alive(supervisor));
    eventually("the stand-in to be gone", || {
        (!alive(comfyui)).then_some(())
    });
    assert!(
        pod.output().contains("SIGTERM: stopping every service"),
        "{}",
        pod.output()
    );
}

#[test]
fn another_user_replaces_the_first_only_when_forced_and_concurrent_starts_give_one_comfyui() {
    let pod = pod().start();
    let panel = pod.panel;
    let starts: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                http(
                    panel,
                    "POST",
                    "/api/start",
                    Some(r#"{"user": "alice"}"#),
                    &[],
                )
                .map(|reply| reply.status)
            })
        })
        .collect();
    for start in starts {
        assert_eq!(start.join().expect("thread").expect("answer"), 202);
    }
    let ready = pod.wait_comfyui("ready");
    let first = ready["services"]["comfyui"]["pid"].as_u64().expect("a pid") as u32;
    let children = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| {
                            rest.split_whitespace()
                                .nth(1)
                                .map(|ppid| ppid == pod.pid().to_string())
                        })
                        .unwrap_or(false)
                })
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(children(), [first], "one ComfyUI for six starts");
    assert_eq!(ready["services"]["comfyui"]["restarts"], 0);

    let refused = pod.post("/api/start", json!({"user": "bob"}));
    assert_eq!(refused.status, 409, "{}", refused.body);
    let refused = refused.json();
    assert_eq!(refused["user"], "alice", "{refused:#}");
    assert_eq!(
        refused["queue"],
        json!({"queue_running": 0, "queue_pending": 0})
    );
    assert_eq!(
        refused["error"],
        "every ComfyUI slot is taken: alice in slot 0"
    );
    assert!(
        alive(first),
        "alice's ComfyUI runs on after a refused switch"
    );
    let reply = pod.post("/api/start", json!({"user": "bob", "force": true}));
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json()["user"], "bob");
    let bobs = pod.wait_for("bob's ComfyUI", |status| {
        status["services"]["comfyui"]["state"] == "ready"
            && status["services"]["comfyui"]["pid"] != first
    });
    assert_eq!(bobs["user"], "bob");
    assert!(!alive(first), "alice's ComfyUI was stopped first");
    let pid = bobs["services"]["comfyui"]["pid"].as_u64().expect("a pid") as u32;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    assert!(
        argv.contains(&format!(
            "--output-directory {}",
            pod.volume.join("output/bob").display()
        )),
        "{argv}"
    );
}

#[test]
fn b200_never_gets_sage_and_an_rtx_4090_does() {
    let b200 = pod().with_sage().gpu("b200", "NVIDIA B200").start();
    let status = b200.start_ready("alice");
    assert_eq!(status["gpus"][0]["name"], "NVIDIA B200");
    assert_eq!(
        status["attention"]["requested"]["kernel"], "pytorch",
        "{:#}",
        status["attention"]
    );
    assert_eq!(status["attention"]["confirmed"]["kernel"], "pytorch");
    assert_eq!(status["attention"]["mismatch"], Value::Null);
    let stats = http(b200.comfyui, "GET", "/system_stats", None, &[])
        .expect("the stand-in answers")
        .json();
    let argv = stats["system"]["argv"].to_string();
    assert!(!argv.contains("--use-sage-attention"), "{argv}");
    assert!(argv.contains("--use-pytorch-cross-attention"), "{argv}");
    drop(b200);

    let rtx = pod()
        .with_sage()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .env("STANDIN_SAGE_RUNTIME_ERROR", "boom")
        .start();
    let status = rtx.start_ready("alice");
    assert_eq!(
        status["attention"]["requested"]["kernel"], "sage",
        "{:#}",
        status["attention"]
    );
    assert_eq!(
        status["attention"]["requested"]["flag"],
        "--use-sage-attention"
    );
    assert_eq!(
        status["attention"]["confirmed"],
        json!({"kind": "using", "kernel": "sage"})
    );
    let stats = http(rtx.comfyui, "GET", "/system_stats", None, &[])
        .expect("the stand-in answers")
        .json();
    assert!(stats["system"]["argv"]
        .to_string()
        .contains("--use-sage-attention"));
    // Sage failing at run time (what a B200 would print) turns into a visible mismatch.
    http(rtx.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
    let status = rtx.wait_for("the sage failure", |status| {
        status["attention"]["mismatch"].is_string()
    });
    assert_eq!(status["attention"]["confirmed"]["kind"], "sage-failed");
    assert!(
        status["warnings"]
            .to_string()
            .contains("sage attention failing at run time (boom)"),
        "{:#}",
        status["warnings"]
    );
}

#[test]
fn two_pods_with_different_gpus_on_one_volume_keep_separate_caches() {
    let volume = tempfile::tempdir().expect("temp dir");
    let ada = pod()
        .with_sage()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .volume(volume.path())
        .pod_id("pod-ada")
        .start();
    let blackwell = pod()
        .with_sage()
        .gpu("b200", "NVIDIA B200")
        .volume(volume.path())
        .pod_id("pod-b200")
        .start();
    ada.start_ready("alice");
    blackwell.start_ready("bob");
    let caches = volume.path().join(".podstack/cache");
    let triton = |pod: &Pod| {
        let pid = pod.comfyui_pid().expect("the stand-in wrote its pid");
        env_of(pid, "TRITON_CACHE_DIR").unwrap_or_else(|| pod.fail("TRITON_CACHE_DIR is not set"))
    };
    assert_eq!(
        triton(&ada),
        caches.join("sm_89-torch2.8.0/triton").display().to_string()
    );
    assert_eq!(
        triton(&blackwell),
        caches
            .join("sm_100-torch2.8.0/triton")
            .display()
            .to_string()
    );
    for key in ["sm_89-torch2.8.0", "sm_100-torch2.8.0"] {
        assert!(caches.join(key).join("inductor").is_dir(), "{key}");
    }
    for pod in [&ada, &blackwell] {
        let pid = pod.comfyui_pid().expect("pid");
        assert_eq!(env_of(pid, "PODSTACK_PANEL_TOKEN"), None);
    }
    assert!(volume
        .path()
        .join(".podstack/logs/pod-ada/comfyui.log")
        .is_file());
    assert!(volume
        .path()
        .join(".podstack/logs/pod-b200/comfyui.log")
        .is_file());
}

#[test]
fn jupyter_refuses_to_start_without_a_token() {
    let pod = pod().set("/runtime/jupyter/enabled", json!(true)).start();
    let status = pod.wait_for("JupyterLab's refusal", |status| {
        status["services"]["jupyter"]["state"] == "failed"
    });
    let jupyter = &status["services"]["jupyter"];
    assert_eq!(
        jupyter["reason"],
        "JupyterLab is not started: JUPYTER_TOKEN is not set"
    );
    assert!(jupyter["hint"]
        .as_str()
        .unwrap_or_default()
        .contains("allow_without_token"));
}

#[test]
fn a_missing_stack_file_or_comfyui_fails_with_code_1_and_a_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_podstack"))
        .args([
            "supervise",
            "--config",
            &dir.path().join("nope.json").display().to_string(),
        ])
        .env_remove("PODSTACK_CONFIG")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read the stack file")
            && stderr.contains("hint: set PODSTACK_CONFIG"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_podstack"))
        .args([
            "supervise",
            "--config",
            &repo()
                .join("generated/smoke/stack.json")
                .display()
                .to_string(),
        ])
        .args(["--comfyui-dir", &dir.path().display().to_string()])
        .args(["--volume", &dir.path().join("volume").display().to_string()])
        .env_remove("PODSTACK_COMFYUI_DIR")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds no ComfyUI (main.py is missing)"),
        "{stderr}"
    );
}
