//! `podstack build`, `check`, `digest`, `schema` and `wheel-compat` as a user runs them.

use crate::support::{copy_project, podstack, read_all, repo};

const SHIPPED: [&str; 3] = ["comfyui-cu128", "comfyui-cu129", "smoke"];

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The DIGEST file's value: its last line.
fn digest_file(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("DIGEST")).expect("DIGEST");
    text.lines().last().expect("a digest line").to_owned()
}

#[test]
fn renders_each_shipped_stack_as_in_its_snapshot() {
    let out = tempdir();
    let mut args = vec![
        "build".to_owned(),
        "--out".to_owned(),
        out.path().display().to_string(),
    ];
    args.extend(SHIPPED.iter().map(|s| s.to_string()));
    let run = podstack(args).run().expect_code(0);
    for stack in SHIPPED {
        let files = read_all(&out.path().join(stack));
        let mut all = String::new();
        for (name, bytes) in &files {
            all.push_str(&format!(
                "==== {name} ====\n{}",
                String::from_utf8_lossy(bytes)
            ));
        }
        let digest = digest_file(&out.path().join(stack));
        let hex = digest.trim_start_matches("sha256:");
        assert!(
            run.stdout.contains(&format!("{stack}:"))
                && run.stdout.contains(&format!("-{}\n", &hex[..12])),
            "tag printed: {}",
            run.stdout
        );
        insta::with_settings!({ filters => vec![(hex, "[digest]"), (&hex[..12], "[digest12]")] }, {
            insta::assert_snapshot!(stack, all);
        });
    }
}

#[test]
fn prints_the_image_tag_per_stack() {
    let out = tempdir();
    let run = podstack(["build", "smoke", "--out", &out.path().display().to_string()])
        .run()
        .expect_code(0);
    let digest = digest_file(&out.path().join("smoke"));
    let short = &digest["sha256:".len().."sha256:".len() + 12];
    assert_eq!(run.stdout.trim(), format!("smoke:0.1.0-{short}"));
}

#[test]
fn building_twice_from_elsewhere_gives_identical_bytes() {
    let (a, b) = (tempdir(), tempdir());
    podstack(["build", "--out", &a.path().display().to_string()])
        .run()
        .expect_code(0);
    podstack(["build", "--out", &b.path().display().to_string()])
        .current_dir(repo().join("tests/fixtures"))
        .run()
        .expect_code(0);
    let (first, second) = (read_all(a.path()), read_all(b.path()));
    assert!(first.len() >= SHIPPED.len() * 6, "{:?}", first.keys());
    assert_eq!(first, second);
}

#[test]
fn any_changed_input_byte_changes_the_digest() {
    let project = tempdir();
    copy_project(project.path());
    let digest = || {
        podstack(["digest", "smoke"])
            .current_dir(project.path())
            .run()
            .expect_code(0)
            .stdout
    };
    let original = digest();
    assert!(
        original.starts_with("sha256:") && original.trim().len() == 71,
        "{original}"
    );

    let ui = project.path().join("templates/ui/index.html");
    let mut bytes = std::fs::read(&ui).expect("ui");
    bytes.push(b' ');
    std::fs::write(&ui, &bytes).expect("write ui");
    let after_ui = digest();
    assert_ne!(original, after_ui, "a control panel byte");

    let standin = project.path().join("tests/fixtures/comfyui/main.py");
    let mut bytes = std::fs::read(&standin).expect("stand-in");
    bytes.push(b'\n');
    std::fs::write(&standin, &bytes).expect("write stand-in");
    let after_tree = digest();
    assert_ne!(
        after_ui, after_tree,
        "a byte of the ComfyUI folder the image copies"
    );

    let manifest = project.path().join("stacks/smoke.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace("stop_grace = \"3s\"", "stop_grace = \"4s\""),
    )
    .expect("write");
    assert_ne!(after_tree, digest(), "a runtime setting");
}

#[test]
fn digest_command_matches_the_digest_file() {
    let out = tempdir();
    podstack([
        "build",
        "comfyui-cu129",
        "--out",
        &out.path().display().to_string(),
    ])
    .run()
    .expect_code(0);
    let printed = podstack(["digest", "comfyui-cu129"])
        .run()
        .expect_code(0)
        .stdout;
    assert_eq!(
        printed.trim(),
        digest_file(&out.path().join("comfyui-cu129"))
    );
}

#[test]
fn check_fails_with_a_diff_and_the_fix_when_generated_is_stale() {
    let out = tempdir();
    let out_arg = out.path().display().to_string();
    podstack(["build", "smoke", "--out", &out_arg])
        .run()
        .expect_code(0);
    podstack(["build", "smoke", "--check", "--out", &out_arg])
        .run()
        .expect_code(0);

    let dockerfile = out.path().join("smoke/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    std::fs::write(&dockerfile, text.replace("EXPOSE", "EXPOSE 22")).expect("edit");
    std::fs::write(out.path().join("smoke/leftover.txt"), "old").expect("extra file");
    let run = podstack(["build", "smoke", "--check", "--out", &out_arg])
        .run()
        .expect_code(1);
    assert!(
        run.stderr
            .contains("-EXPOSE 22 7777 8188\n+EXPOSE 7777 8188\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("only on disk: ") && run.stderr.contains("leftover.txt"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("is stale\n  hint: run `podstack build smoke` and commit the result"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "no tag for a stale stack: {}",
        run.stdout
    );

    podstack(["build", "smoke", "--out", &out_arg])
        .run()
        .expect_code(0);
    assert!(
        !out.path().join("smoke/leftover.txt").exists(),
        "build removes files it no longer renders"
    );
    podstack(["build", "smoke", "--check", "--out", &out_arg])
        .run()
        .expect_code(0);
}

#[test]
fn committed_generated_files_are_current() {
    podstack(["build", "--check"]).run().expect_code(0);
}

#[test]
fn start_script_is_executable() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempdir();
    podstack(["build", "smoke", "--out", &out.path().display().to_string()])
        .run()
        .expect_code(0);
    let mode = std::fs::metadata(out.path().join("smoke/start.sh"))
        .expect("start.sh")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
}

#[test]
fn strict_lists_every_unpinned_input() {
    let run = podstack(["check", "--strict", "comfyui-cu129"])
        .run()
        .expect_code(1);
    for expected in [
        "stacks/comfyui-cu129.toml:17:9: error: base image `debian:bookworm-slim` is not pinned by digest",
        "error: supervisor builder image `rust:1.95-alpine` is not pinned by digest",
        "error: wheel `sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl` is not pinned by sha256",
        "error: model `checkpoints/sd_xl_base_1.0.safetensors` is not pinned by sha256",
        "error: `https://huggingface.co/MonsterMMORPG/Wan_GGUF/resolve/main/sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl` points at a moving branch, and no sha256 pins the file behind it",
    ] {
        assert!(run.stderr.contains(expected), "missing {expected:?} in:\n{}", run.stderr);
    }
    let without_strict = podstack(["check", "comfyui-cu129"]).run().expect_code(0);
    assert!(
        without_strict
            .stderr
            .contains("warning: base image `debian:bookworm-slim` is not pinned by digest"),
        "{}",
        without_strict.stderr
    );
    assert_eq!(
        without_strict.stdout,
        "stacks/comfyui-cu129.toml: ok (comfyui-cu129)\n"
    );
}

#[test]
fn schema_is_json_that_the_stacks_point_at() {
    let run = podstack(["schema"]).run().expect_code(0);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let properties = schema["properties"].as_object().expect("properties");
    for section in [
        "stack", "base", "torch", "wheel", "python", "comfyui", "gpu", "runtime", "sync", "model",
    ] {
        assert!(properties.contains_key(section), "{section}");
    }
    let committed = std::fs::read_to_string(repo().join("generated/stack.schema.json"))
        .expect("committed schema");
    assert_eq!(committed, run.stdout);
    for stack in SHIPPED {
        let text =
            std::fs::read_to_string(repo().join(format!("stacks/{stack}.toml"))).expect("stack");
        assert!(
            text.starts_with("#:schema ../generated/stack.schema.json\n"),
            "{stack}"
        );
    }
}

#[test]
fn wheel_compat_says_why_a_wheel_does_not_install() {
    let ok = podstack([
        "wheel-compat",
        "sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl",
        "--python",
        "3.11",
    ])
    .run()
    .expect_code(0);
    assert!(
        ok.stdout.contains("installs on CPython 3.11"),
        "{}",
        ok.stdout
    );
    let no = podstack([
        "wheel-compat",
        "flash_attn-2.8.3-cp311-cp311-manylinux_2_28_x86_64.whl",
        "--python",
        "3.10",
        "--glibc",
        "2.27",
    ])
    .run()
    .expect_code(1);
    assert!(no.stdout.contains("cp311"), "{}", no.stdout);
    assert!(no.stdout.contains("2.28"), "{}", no.stdout);
    let bad = podstack(["wheel-compat", "not-a-wheel.zip", "--python", "3.11"])
        .run()
        .expect_code(1);
    assert!(bad.stderr.contains("not-a-wheel.zip"), "{}", bad.stderr);
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let run = podstack(["build", "no-such-stack"]).run().expect_code(2);
    assert!(
        run.stderr.contains("no stack `no-such-stack`: stacks/no-such-stack.toml does not exist\n  hint: stacks here: comfyui-cu128, comfyui-cu129, smoke"),
        "{}",
        run.stderr
    );
    podstack(["build", "--no-such-flag"]).run().expect_code(2);
    podstack(["wheel-compat", "x.whl", "--python", "three"])
        .run()
        .expect_code(2);
    let help = podstack(["--help"]).run().expect_code(0);
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
}

#[test]
fn a_manifest_outside_the_project_builds_by_path() {
    let project = tempdir();
    copy_project(project.path());
    let elsewhere = tempdir();
    let manifest = elsewhere.path().join("mine.toml");
    std::fs::copy(project.path().join("stacks/smoke.toml"), &manifest).expect("copy");
    let out = tempdir();
    let run = podstack([
        "build",
        &manifest.display().to_string(),
        "--out",
        &out.path().display().to_string(),
    ])
    .current_dir(project.path())
    .run()
    .expect_code(0);
    assert!(run.stdout.starts_with("smoke:0.1.0-"), "{}", run.stdout);
    let dockerfile =
        std::fs::read_to_string(out.path().join("smoke/Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.starts_with(&format!(
        "# generated by podstack from {}; do not edit\n",
        manifest.display()
    )));
}

#[test]
fn the_field_stack_documents_every_key_of_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&podstack(["schema"]).run().expect_code(0).stdout).expect("JSON");
    let mut keys = std::collections::BTreeSet::new();
    let mut stack = vec![&schema];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                    keys.extend(properties.keys().cloned());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    keys.remove("$schema");
    assert!(keys.len() > 40, "{keys:?}");
    let text =
        std::fs::read_to_string(repo().join("stacks/comfyui-cu129.toml")).expect("field stack");
    let undocumented: Vec<&String> = keys
        .iter()
        .filter(|key| {
            ![
                format!("{key} ="),
                format!("[{key}]"),
                format!("[[{key}]]"),
                format!(".{key}]"),
            ]
            .iter()
            .any(|form| text.contains(form.as_str()))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from stacks/comfyui-cu129.toml: {undocumented:?}"
    );
}

#[test]
fn every_shipped_stack_ships_the_rclone_the_tests_run() {
    let tested = podstack::compat::Compat::embedded()
        .rclone()
        .package
        .tested
        .to_string();
    for stack in SHIPPED {
        let text = std::fs::read_to_string(repo().join(format!("generated/{stack}/stack.json")))
            .expect("stack.json");
        let resolved: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(resolved["rclone"], tested.as_str(), "{stack}");
    }
}

/// Every URL a shipped stack fetches from says where it comes from: a `Source:` comment on its
/// line or in the comment block right above it (an invented release URL once shipped).
#[test]
fn every_url_in_a_shipped_stack_names_its_source() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("stacks")).expect("stacks/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("stack");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split(" #").next().unwrap_or(line);
            if line.trim_start().starts_with('#') || !code.contains("://") {
                continue;
            }
            checked += 1;
            let above = lines[..i]
                .iter()
                .rev()
                .take_while(|line| line.trim_start().starts_with('#'));
            let sourced =
                line.contains("Source:") || above.into_iter().any(|l| l.contains("# Source:"));
            assert!(
                sourced,
                "{}:{}: a URL without a `# Source:` comment: {line}",
                path.display(),
                i + 1
            );
        }
    }
    assert!(checked >= 5, "only {checked} URLs found");
}
