//! Several artists on one pod: a ComfyUI per GPU (the fake nvidia-smi's one, two and four
//! GPUs), each start in its own slot on its own port and GPU, and nobody's session taken
//! without their name and queue shown first; each slot's queue, its shared GPU, its memory
//! relief, and the slots a RunPod template does not publish.

use serde_json::{json, Value};

use crate::support::http::http;
use crate::support::pod::{pod, ready_in_slot, slot_of, Pod, PROMPT};
use crate::support::wait::eventually;

fn four_gpus() -> Pod {
    pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .start()
}

/// The command line of a slot's ComfyUI, as the kernel has it.
fn argv(slot: &Value) -> Vec<String> {
    let pid = slot["comfyui"]["pid"].as_u64().expect("a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|arg| !arg.is_empty())
        .map(str::to_owned)
        .collect()
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let at = argv.iter().position(|arg| arg == name)?;
    argv.get(at + 1).map(String::as_str)
}

/// Alice and bob start at once on `pod`, a pod of `gpus` GPUs, one slot each: each lands in a slot of their own, with its port and GPU on the real argv and their image in
/// their own folder.
fn concurrent_starts_land_in_their_own_slots(pod: &Pod, gpus: usize) -> Value {
    let status = pod.status();
    assert_eq!(
        status["slots"].as_array().map(Vec::len),
        Some(gpus),
        "{status:#}"
    );
    let panel = pod.panel;
    let starts: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|user| {
            std::thread::spawn(move || {
                let body = format!(r#"{{"user": "{user}"}}"#);
                http(panel, "POST", "/api/start", Some(&body), &[]).map(|reply| reply.status)
            })
        })
        .collect();
    for start in starts {
        let status = start
            .join()
            .expect("the start's thread")
            .expect("the panel answers");
        assert_eq!(status, 202);
    }
    let status = pod.wait_for("alice and bob ready", |status| {
        ready_in_slot(status, "alice") && ready_in_slot(status, "bob")
    });
    for user in ["alice", "bob"] {
        let slot = slot_of(&status, user).expect("the user's slot");
        let index = slot["slot"].as_u64().expect("a slot number");
        let argv = argv(slot);
        assert_eq!(
            flag(&argv, "--port"),
            Some((u64::from(pod.comfyui) + index).to_string().as_str()),
            "{argv:?}"
        );
        assert_eq!(
            flag(&argv, "--cuda-device"),
            Some(index.to_string().as_str())
        );
        assert_eq!(slot["port"], u64::from(pod.comfyui) + index);
        assert_eq!(slot["gpus"][0]["index"], index);
        // Each user's prompt writes into their own folder.
        let port = u16::try_from(u64::from(pod.comfyui) + index).expect("a port");
        let reply = http(port, "POST", "/prompt", Some(PROMPT), &[]).expect("ComfyUI answers");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let folder = pod.volume.join("output").join(user);
        eventually(&format!("{user}'s image in {}", folder.display()), || {
            std::fs::read_dir(&folder).ok()?.next().map(|_| ())
        });
    }
    assert_ne!(
        slot_of(&status, "alice").map(|slot| &slot["slot"]),
        slot_of(&status, "bob").map(|slot| &slot["slot"])
    );
    status
}

#[test]
fn two_gpus_concurrent_starts_land_in_slots_0_and_1_with_their_port_and_gpu() {
    let pod = pod()
        .gpu("two", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .start();
    let status = concurrent_starts_land_in_their_own_slots(&pod, 2);
    let mut taken: Vec<u64> = ["alice", "bob"]
        .iter()
        .filter_map(|user| slot_of(&status, user)?["slot"].as_u64())
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, [0, 1]);
    let full = pod.post("/api/start", json!({"user": "carol"}));
    assert_eq!(full.status, 409, "both slots are taken: {}", full.body);
}

#[test]
fn four_gpus_concurrent_starts_land_in_their_own_slots_and_a_user_gets_hers_back() {
    let pod = four_gpus();
    let status = concurrent_starts_land_in_their_own_slots(&pod, 4);
    let again = pod.post("/api/start", json!({"user": "alice", "slot": 3}));
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        slot_of(&again.json(), "alice").unwrap()["slot"],
        slot_of(&status, "alice").unwrap()["slot"],
        "a user already in a slot gets it back, never a second"
    );
}

#[test]
fn a_busy_slot_refuses_without_force_and_a_forced_switch_is_logged() {
    let pod = four_gpus();
    pod.start_in_slots(&[("alice", Some(2))]);

    let refused = pod.post("/api/start", json!({"user": "bob", "slot": 2}));
    assert_eq!(refused.status, 409, "{}", refused.body);
    let refused = refused.json();
    assert_eq!(refused["error"], "slot 2 runs alice's ComfyUI");
    assert_eq!(refused["user"], "alice");
    assert_eq!(refused["slot"], 2);
    assert_eq!(
        refused["queue"],
        json!({"queue_running": 0, "queue_pending": 0})
    );
    assert!(
        refused["hint"]
            .as_str()
            .unwrap()
            .contains("\"force\": true"),
        "{refused:#}"
    );

    let stop = pod.post("/api/stop", json!({"user": "bob", "slot": 2}));
    assert_eq!(stop.status, 409, "stopping alice's session: {}", stop.body);

    let forced = pod.post(
        "/api/start",
        json!({"user": "bob", "slot": 2, "force": true}),
    );
    assert_eq!(forced.status, 202, "{}", forced.body);
    pod.wait_for("bob ready in slot 2", |status| {
        status["slots"][2]["user"] == "bob" && status["slots"][2]["comfyui"]["state"] == "ready"
    });
    let log = pod.output();
    assert!(
        log.contains("bob forced slot 2: alice's ComfyUI is stopped"),
        "{log}"
    );
}

#[test]
fn a_one_gpu_pod_is_one_slot_as_before_slots() {
    let pod = pod().gpu("rtx4090", "NVIDIA GeForce RTX 4090").start();
    let status = pod.start_ready("alice");
    let slots = status["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 1, "{status:#}");
    assert_eq!(slots[0]["port"], pod.comfyui);
    assert_eq!(status["comfyui_port"], pod.comfyui);
    assert_eq!(status["user"], "alice");
    assert_eq!(slots[0]["gpus_shared_by"], json!([]));
    let argv = argv(&slots[0]);
    assert_eq!(
        flag(&argv, "--port"),
        Some(pod.comfyui.to_string().as_str())
    );
    assert!(
        !argv.iter().any(|arg| arg == "--cuda-device"),
        "a one-GPU pod's ComfyUI sees its GPU as before slots: {argv:?}"
    );
    let refused = pod.post("/api/start", json!({"user": "bob"}));
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.json()["user"], "alice");
}

/// The lines of a service's log the pod holds.
fn log_lines(pod: &Pod, service: &str) -> Vec<String> {
    let logs = pod.get(&format!("/api/logs?service={service}")).json();
    logs["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|line| line["text"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn memory_relief_after_a_prompt_goes_to_that_slots_comfyui_only() {
    let pod = pod()
        .gpu("two", "NVIDIA GeForce RTX 4090")
        // Every prompt is followed by memory relief.
        .set(
            "/runtime/memory",
            json!({"free_above_ram_percent": 0, "free_above_vram_percent": 0}),
        )
        .start();
    pod.start_in_slots(&[("alice", Some(0)), ("bob", Some(1))]);
    let reply = http(pod.comfyui + 1, "POST", "/prompt", Some(PROMPT), &[]).expect("slot 1");
    assert_eq!(reply.status, 200, "{}", reply.body);
    eventually("the relief in slot 1's ComfyUI", || {
        log_lines(&pod, "comfyui-1")
            .iter()
            .any(|line| line.contains("/free acted on"))
            .then_some(())
    });
    eventually("the relief in the supervisor's log", || {
        log_lines(&pod, "supervisor")
            .iter()
            .any(|line| line.contains("slot 1: memory relief"))
            .then_some(())
    });
    let slot0 = log_lines(&pod, "comfyui");
    assert!(
        slot0
            .iter()
            .any(|line| line.contains("To see the GUI go to")),
        "{slot0:#?}"
    );
    assert!(
        !slot0.iter().any(|line| line.contains("/free")),
        "alice's ComfyUI ran no prompt and was not asked to free memory: {slot0:#?}"
    );
}

/// Two slots sharing one GPU, `user` in slot 1 with a prompt running (ten minutes long) and
/// one waiting there, the host sampled every second.
pub(crate) fn two_slots_on_one_gpu_busy_in_slot_1(user: &str) -> Pod {
    let pod = pod()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .set("/runtime/slots", json!(2))
        .env("STANDIN_PROMPT_SECONDS", "600")
        .env("PODSTACK_HOST_SAMPLE_INTERVAL", "1s")
        .start();
    pod.start_in_slots(&[(user, Some(1))]);
    for _ in 0..2 {
        let reply = http(pod.comfyui + 1, "POST", "/prompt", Some(PROMPT), &[]).expect("slot 1");
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    pod
}

#[test]
fn each_slot_reports_its_own_queue_and_the_gpu_it_shares() {
    let pod = two_slots_on_one_gpu_busy_in_slot_1("alice");
    let status = pod.wait_for("slot 1's queue in the status", |status| {
        status["slots"][1]["queue"] == json!({"queue_running": 1, "queue_pending": 1})
    });
    assert_eq!(
        status["slots"][0]["queue"],
        Value::Null,
        "slot 0 runs nothing"
    );
    assert_eq!(
        status["host"]["queues"],
        json!([{"slot": 1, "queue_running": 1, "queue_pending": 1}])
    );
    assert_eq!(
        status["host"]["comfyui"],
        Value::Null,
        "slot 0's queue, as before slots"
    );
    for slot in 0..2 {
        assert_eq!(status["slots"][slot]["gpus_shared_by"], json!([0, 1]));
    }
}

#[test]
fn a_runpod_pod_with_more_gpus_than_its_template_publishes_names_the_unreachable_slots() {
    let pod = pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .env("RUNPOD_POD_ID", "abc123")
        .set("/published_slots", json!(2))
        // On RunPod the pod makes a panel token; the status stays readable for the test.
        .set("/runtime/anonymous_status", json!(true))
        .start();
    let status = pod.status();
    assert_eq!(status["slots"].as_array().map(Vec::len), Some(4));
    let warnings: Vec<&str> = status["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .filter(|warning| warning.contains("RunPod's proxy"))
        .collect();
    let expected: Vec<String> = (2..4)
        .map(|slot| {
            format!(
                "Slot {slot}'s ComfyUI (port {}) cannot be reached through RunPod's proxy: the pod's template publishes the ComfyUI ports of 2 slot(s) and this pod runs 4 (one per GPU). Set deploy.gpus_per_pod = 4 (the GPUs these pods are rented with), run podstack build and update the RunPod template",
                pod.comfyui + slot
            )
        })
        .collect();
    assert_eq!(warnings, expected, "{status:#}");
    let log = pod.output();
    for warning in &expected {
        assert!(log.contains(warning.as_str()), "{log}");
    }
    // The published slots link through RunPod's proxy; the others have no link to give.
    let published: Vec<&Value> = (0..4)
        .map(|slot| &status["slots"][slot]["published"])
        .collect();
    assert_eq!(published, [true, true, false, false], "{status:#}");
    let links: Vec<Value> = (0..4u16)
        .map(|slot| match slot {
            0 | 1 => json!(format!(
                "https://abc123-{}.proxy.runpod.net",
                pod.comfyui + slot
            )),
            _ => Value::Null,
        })
        .collect();
    assert_eq!(status["slot_urls"], json!(links), "{status:#}");
}

#[test]
fn every_busy_slot_counts_in_the_usage_on_its_own_gpu_and_in_the_metrics_under_its_slot() {
    let pod = pod()
        .gpu("two", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob"]))
        .start();
    let status = pod.start_in_slots(&[("alice", None), ("bob", None)]);
    let usage = pod.get("/api/usage").json();
    for user in ["alice", "bob"] {
        // The two GPUs differ (an RTX 4090 and an RTX 3090): each user's hours are on hers.
        let gpu = slot_of(&status, user)
            .and_then(|slot| slot["gpus"][0]["name"].as_str())
            .unwrap_or_else(|| panic!("{user}'s GPU in {status:#}"));
        let row = usage["users"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["user"] == user))
            .unwrap_or_else(|| panic!("{user} in {usage:#}"));
        assert_eq!(row["running"], true, "{user}: {usage:#}");
        assert_eq!(row["sessions"], 1, "{user}: {usage:#}");
        assert!(
            row["hours_by_gpu"][gpu]
                .as_f64()
                .is_some_and(|hours| hours > 0.0),
            "{user}'s hours count up to now, on {gpu}: {usage:#}"
        );
        assert_eq!(
            row["hours_by_gpu"].as_object().map(serde_json::Map::len),
            Some(1),
            "{usage:#}"
        );
    }
    let metrics = pod.get("/metrics").body;
    for slot in 0..2 {
        for line in [
            format!(
                "podstack_service_state{{service=\"comfyui\",slot=\"{slot}\",state=\"ready\"}} 1"
            ),
            format!("podstack_service_restarts_total{{service=\"comfyui\",slot=\"{slot}\"}} 0"),
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
        }
    }
}
