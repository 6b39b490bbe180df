//! The pod's models against a local file server, through the real supervisor: a download that
//! resumes after a dropped connection, a wrong hash that leaves nothing behind, two pods on one
//! volume that download a file once, a full disk, files trusted by their verification record,
//! and ComfyUI pointed at the shared folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::support::file_server::{Behaviour, FileServer};
use crate::support::pod::{pod, Pod, PodBuilder};
use crate::support::wait::eventually;

/// Bytes that are not all alike, so a resumed download that skips or repeats some is caught.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 131 + usize::from(seed)) % 251).expect("below 251"))
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn model(url: &str, sha256: Option<&str>, size: Option<usize>, dest: &str) -> Value {
    json!({"url": url, "sha256": sha256, "size": size, "dest": dest, "auth_env": null})
}

fn with_models(builder: PodBuilder, models: Vec<Value>) -> PodBuilder {
    builder.set("/models", Value::Array(models))
}

/// `GET /api/models`'s entry for `dest`.
fn state_of(pod: &Pod, dest: &str) -> Value {
    let models = pod.get("/api/models").json();
    models["models"]
        .as_array()
        .and_then(|models| models.iter().find(|model| model["dest"] == dest))
        .cloned()
        .unwrap_or_else(|| pod.fail(&format!("no model {dest} in {models:#}")))
}

/// Waits until the model leaves the busy states; returns its entry.
#[track_caller]
fn settled(pod: &Pod, dest: &str) -> Value {
    let start = Instant::now();
    loop {
        let entry = state_of(pod, dest);
        if ["present", "failed", "missing"].contains(&entry["state"].as_str().unwrap_or_default()) {
            return entry;
        }
        if start.elapsed() > crate::support::wait::DEADLINE {
            pod.fail(&format!("{dest} did not settle: {entry:#}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Partial downloads left anywhere under `dir`.
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partials(&path));
        } else if path.to_string_lossy().contains(".podstack-part") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_dropped_connection_is_resumed_and_the_model_verified_before_it_appears() {
    let server = FileServer::start();
    let body = payload(2_000_000, 1);
    server.route(
        "/m/a.safetensors",
        body.clone(),
        Behaviour::Drop {
            after: 700_000,
            times: 1,
        },
    );
    let url = server.url("/m/a.safetensors");
    let pod = with_models(
        pod(),
        vec![model(
            &url,
            Some(&sha256(&body)),
            Some(body.len()),
            "checkpoints/a.safetensors",
        )],
    )
    .start();
    let entry = settled(&pod, "checkpoints/a.safetensors");
    assert_eq!(entry["state"], "present", "{entry:#}");
    assert_eq!(entry["verified"], true);
    let path = pod.volume.join("models/checkpoints/a.safetensors");
    assert!(
        std::fs::read(&path).expect("the model") == body,
        "the bytes differ"
    );
    let ranges: Vec<Option<String>> = server.seen().into_iter().map(|seen| seen.range).collect();
    assert_eq!(
        ranges,
        [None, Some("bytes=700000-".to_owned())],
        "resumed, not restarted"
    );
    assert_eq!(server.sent("/m/a.safetensors"), body.len());
    assert!(
        partials(&pod.volume).is_empty(),
        "{:?}",
        partials(&pod.volume)
    );
    let output = pod.output();
    assert!(
        output.contains("models/checkpoints/a.safetensors: resuming at byte")
            || output.contains("models/checkpoints/a.safetensors is in place"),
        "{output}"
    );
}

#[test]
fn a_wrong_hash_removes_the_download_and_says_why() {
    let server = FileServer::start();
    let body = payload(300_000, 2);
    server.route("/m/b.bin", body.clone(), Behaviour::Serve);
    let pinned = "a".repeat(64);
    let pod = with_models(
        pod(),
        vec![model(
            &server.url("/m/b.bin"),
            Some(&pinned),
            None,
            "loras/b.bin",
        )],
    )
    .start();
    let entry = settled(&pod, "loras/b.bin");
    assert_eq!(entry["state"], "failed", "{entry:#}");
    assert_eq!(
        entry["reason"],
        format!(
            "models/loras/b.bin: {} served a file with sha256 {}, the manifest pins {pinned}; the download was removed",
            server.url("/m/b.bin"),
            sha256(&body)
        )
    );
    assert!(
        entry["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("check the model's page"),
        "{entry:#}"
    );
    assert!(!pod.volume.join("models/loras/b.bin").exists());
    assert!(
        partials(&pod.volume).is_empty(),
        "{:?}",
        partials(&pod.volume)
    );
}

#[test]
fn two_pods_on_one_volume_download_a_model_once() {
    let server = FileServer::start();
    let body = payload(1_500_000, 3);
    server.route(
        "/m/shared.ckpt",
        body.clone(),
        Behaviour::Slow {
            bytes_per_s: 1_500_000,
        },
    );
    let volume = tempfile::tempdir().expect("temp dir");
    let models = vec![model(
        &server.url("/m/shared.ckpt"),
        Some(&sha256(&body)),
        Some(body.len()),
        "checkpoints/shared.ckpt",
    )];
    let first = with_models(pod(), models.clone())
        .volume(volume.path())
        .pod_id("pod-a")
        .start();
    let second = with_models(pod(), models)
        .volume(volume.path())
        .pod_id("pod-b")
        .start();
    let waited = eventually("one pod to wait for the other", || {
        [&first, &second]
            .iter()
            .map(|pod| state_of(pod, "checkpoints/shared.ckpt"))
            .find(|entry| entry["state"] == "waiting" || entry["state"] == "present")
    });
    for pod in [&first, &second] {
        let entry = settled(pod, "checkpoints/shared.ckpt");
        assert_eq!(entry["state"], "present", "{entry:#}");
    }
    assert_eq!(
        server.sent("/m/shared.ckpt"),
        body.len(),
        "one download, not two ({waited})"
    );
    assert!(
        std::fs::read(volume.path().join("models/checkpoints/shared.ckpt")).expect("model") == body
    );
    assert!(
        !volume
            .path()
            .join(".podstack/leases/models")
            .read_dir()
            .is_ok_and(|mut entries| entries.next().is_some()),
        "the lease is released"
    );
}

/// A small tmpfs mounted at `<volume>/models`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|err| err.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(Self(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error() {
    let server = FileServer::start();
    server.route("/m/big.bin", payload(3_000_000, 4), Behaviour::Serve);
    let volume = tempfile::tempdir().expect("temp dir");
    let disk = match SmallDisk::mount(&volume.path().join("models")) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_is_a_clear_error: cannot mount a 1 MiB tmpfs ({why}); run the tests as root");
            return;
        }
    };
    let url = server.url("/m/big.bin");
    let pod = with_models(
        pod(),
        vec![
            // The size is known: refused before a byte is written.
            model(&url, None, Some(3_000_000), "checkpoints/sized.bin"),
            // The size is not known: the write fails when the disk is full.
            model(&url, None, None, "checkpoints/unsized.bin"),
        ],
    )
    .volume(volume.path())
    .start();
    let sized = settled(&pod, "checkpoints/sized.bin");
    assert_eq!(sized["state"], "failed", "{sized:#}");
    let reason = sized["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(
            "the volume is full for models/checkpoints/sized.bin: it needs 2.9 MiB more, "
        ) && reason.ends_with(" is free"),
        "{reason}"
    );
    let unsized_entry = settled(&pod, "checkpoints/unsized.bin");
    assert_eq!(unsized_entry["state"], "failed", "{unsized_entry:#}");
    let reason = unsized_entry["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("models/checkpoints/unsized.bin: no space left for "),
        "{reason}"
    );
    assert!(
        unsized_entry["hint"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the volume is full: free space"),
        "{unsized_entry:#}"
    );
    assert!(!pod.volume.join("models/checkpoints/unsized.bin").exists());
    drop(pod);
    drop(disk);
}

#[test]
fn a_file_is_trusted_by_its_record_and_checked_again_once_it_changes() {
    let server = FileServer::start();
    let body = payload(400_000, 5);
    server.route("/m/c.pt", body.clone(), Behaviour::Serve);
    let volume = tempfile::tempdir().expect("temp dir");
    let models = vec![model(
        &server.url("/m/c.pt"),
        Some(&sha256(&body)),
        Some(body.len()),
        "upscale_models/c.pt",
    )];
    let path = volume.path().join("models/upscale_models/c.pt");
    {
        let pod = with_models(pod(), models.clone())
            .volume(volume.path())
            .start();
        assert_eq!(settled(&pod, "upscale_models/c.pt")["state"], "present");
    }
    assert_eq!(server.seen().len(), 1);

    // Same size and mtime as recorded: taken as verified without reading it (it is not even
    // the model any more, which only a hash would notice).
    let mtime = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .expect("mtime");
    std::fs::write(&path, payload(400_000, 6)).expect("overwrite");
    set_mtime(&path, mtime);
    {
        let pod = with_models(pod(), models.clone())
            .volume(volume.path())
            .start();
        let entry = settled(&pod, "upscale_models/c.pt");
        assert_eq!(
            (&entry["state"], &entry["verified"]),
            (&json!("present"), &json!(true))
        );
    }
    assert_eq!(server.seen().len(), 1, "nothing fetched");

    // A changed mtime: hashed, found wrong, downloaded again.
    set_mtime(&path, SystemTime::now());
    let pod = with_models(pod(), models).volume(volume.path()).start();
    let entry = settled(&pod, "upscale_models/c.pt");
    assert_eq!(entry["state"], "present", "{entry:#}");
    assert_eq!(server.seen().len(), 2);
    assert!(std::fs::read(&path).expect("model") == body);
    assert!(
        pod.output()
            .contains("has no verification record (or changed): hashing it"),
        "{}",
        pod.output()
    );
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(when))
        .expect("set mtime");
}

#[test]
fn models_wait_for_a_request_when_not_fetched_at_start() {
    let server = FileServer::start();
    let body = payload(50_000, 7);
    server.route("/m/d.bin", body.clone(), Behaviour::Serve);
    let pod = with_models(
        pod().set("/runtime/models/fetch_at_start", json!(false)),
        vec![model(
            &server.url("/m/d.bin"),
            Some(&sha256(&body)),
            None,
            "vae/d.bin",
        )],
    )
    .start();
    assert_eq!(settled(&pod, "vae/d.bin")["state"], "missing");
    let models = pod.get("/api/models").json();
    assert_eq!(
        models["folder"],
        pod.volume.join("models").display().to_string()
    );
    let reply = pod.post("/api/models/fetch", json!({}));
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(settled(&pod, "vae/d.bin")["state"], "present");
}

#[test]
fn comfyui_finds_models_in_the_shared_folder() {
    let pod = pod().start();
    pod.start_ready("alice");
    let config = pod
        .volume
        .join(".podstack/comfyui/test-pod/extra_model_paths.yaml");
    let yaml = std::fs::read_to_string(&config).expect("the pod's extra_model_paths.yaml");
    let models = pod.volume.join("models");
    assert!(
        yaml.contains(&format!(
            "    base_path: \"{}\"\n    is_default: true\n",
            models.display()
        )),
        "{yaml}"
    );
    let argv = pod.status()["services"]["comfyui"].clone();
    let log = std::fs::read_to_string(pod.volume.join(".podstack/logs/test-pod/comfyui.log"))
        .expect("ComfyUI's log");
    assert!(
        log.contains(&format!(
            "Adding extra search path checkpoints {}",
            models.join("checkpoints").display()
        )),
        "{argv:#}\n{log}"
    );
}
