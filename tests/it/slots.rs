//! Several artists on one pod: a ComfyUI per GPU (the fake nvidia-smi's four RTX 4090s),
//! each start in its own slot on its own port and GPU, and nobody's session taken without
//! their name and queue shown first.

use serde_json::{json, Value};

use crate::support::http::http;
use crate::support::pod::{pod, Pod, PROMPT};
use crate::support::wait::eventually;

fn four_gpus() -> Pod {
    pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .start()
}

fn slot_of<'a>(status: &'a Value, user: &str) -> Option<&'a Value> {
    status["slots"]
        .as_array()?
        .iter()
        .find(|slot| slot["user"] == user)
}

fn ready_in_slot(status: &Value, user: &str) -> bool {
    slot_of(status, user).is_some_and(|slot| slot["comfyui"]["state"] == "ready")
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

#[test]
fn concurrent_starts_land_in_their_own_slots_with_their_port_and_gpu() {
    let pod = four_gpus();
    let status = pod.status();
    assert_eq!(
        status["slots"].as_array().map(Vec::len),
        Some(4),
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
        assert_eq!(start.join().unwrap().unwrap(), 202);
    }
    let status = pod.wait_for("alice and bob ready", |status| {
        ready_in_slot(status, "alice") && ready_in_slot(status, "bob")
    });
    for user in ["alice", "bob"] {
        let slot = slot_of(&status, user).unwrap();
        let index = slot["slot"].as_u64().unwrap();
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
        let port = u16::try_from(slot["port"].as_u64().unwrap()).unwrap();
        let reply = http(port, "POST", "/prompt", Some(PROMPT), &[]).expect("ComfyUI answers");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let folder = pod.volume.join("output").join(user);
        eventually(&format!("{user}'s image in {}", folder.display()), || {
            std::fs::read_dir(&folder).ok()?.next().map(|_| ())
        });
    }
    assert_ne!(
        slot_of(&status, "alice").unwrap()["slot"],
        slot_of(&status, "bob").unwrap()["slot"]
    );
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
    let reply = pod.post("/api/start", json!({"user": "alice", "slot": 2}));
    assert_eq!(reply.status, 202, "{}", reply.body);
    pod.wait_for("alice ready in slot 2", |status| {
        status["slots"][2]["comfyui"]["state"] == "ready"
    });

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
