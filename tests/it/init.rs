//! `podstack init` and `podstack --version` as a user runs them: a new project that `build`
//! accepts at once, refusals that change nothing, and the compat data's date.

use std::path::Path;

use crate::support::{podstack, read_all, repo};

const WRITTEN: [&str; 3] = [
    "stacks/studio.toml",
    ".gitignore",
    ".github/workflows/podstack.yml",
];

#[test]
fn init_then_check_build_and_build_check_in_a_new_folder() {
    let temp = tempfile::tempdir().expect("temp dir");
    let run = podstack(["init", "project"])
        .current_dir(temp.path())
        .run()
        .expect_code(0);
    assert_eq!(
        run.stdout,
        "wrote a podstack project in project:\n  stacks/studio.toml\n  .gitignore\n  \
         .github/workflows/podstack.yml\nnext:\n  cd project\n  \
         podstack check studio   every problem of the stack at once\n  \
         podstack lock studio    pin the base image and every Python package (reaches PyPI)\n  \
         podstack build          render generated/studio/; commit it with stacks/\n"
    );
    let project = temp.path().join("project");
    for file in WRITTEN {
        assert!(project.join(file).is_file(), "{file}");
    }
    let workflow =
        std::fs::read_to_string(project.join(".github/workflows/podstack.yml")).expect("workflow");
    assert!(workflow.contains("        stack: [studio]\n"), "{workflow}");

    podstack(["check", "studio"])
        .current_dir(&project)
        .run()
        .expect_code(0);
    let build = podstack(["build"])
        .current_dir(&project)
        .run()
        .expect_code(0);
    let tag = build.stdout.trim_end();
    assert!(
        tag.starts_with("studio:0.1.0-") && tag.len() == "studio:0.1.0-".len() + 12,
        "{tag}"
    );
    for file in [
        "Dockerfile",
        "start.sh",
        "stack.json",
        "DIGEST",
        "runpod-template.json",
    ] {
        assert!(
            project.join("generated/studio").join(file).is_file(),
            "{file}"
        );
    }
    let check = podstack(["build", "--check"])
        .current_dir(&project)
        .run()
        .expect_code(0);
    assert_eq!(check.stdout, build.stdout);

    // The project has no templates/ui: the image gets the panel compiled into podstack, and
    // the plan counts it.
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=init", "-c", "user.email=init@example.com"])
            .args(args)
            .current_dir(&project)
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "podstack init"]);
    let plan = podstack(["plan", "studio", "--json"])
        .current_dir(&project)
        .run()
        .expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let panel = plan["layers"]
        .as_array()
        .and_then(|layers| layers.iter().find(|l| l["layer"] == "control panel"))
        .expect("a control panel layer");
    let panel_bytes: u64 = read_all(&repo().join("templates/ui"))
        .values()
        .map(|content| content.len() as u64)
        .sum();
    assert_eq!(panel["verdict"], "kept", "{panel}");
    assert_eq!(panel["size"]["bytes"], panel_bytes, "{panel}");
    let context = temp.path().join("context");
    podstack(["context", "studio"])
        .arg(&context)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_podstack"))
        .current_dir(&project)
        .run()
        .expect_code(0);
    assert_eq!(
        read_all(&context.join("templates/ui")),
        read_all(&repo().join("templates/ui"))
    );
}

#[test]
fn init_refuses_to_write_over_any_file_and_changes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    std::fs::write(temp.path().join(".gitignore"), "mine\n").expect("write");
    let run = podstack(["init", "."])
        .current_dir(temp.path())
        .run()
        .expect_code(1);
    assert_eq!(
        run.stderr,
        "error: . already has .gitignore; podstack init writes nothing over existing files\n  \
         hint: run it in a new or empty folder (`podstack init DIR`), or move those files away first\n"
    );
    assert_eq!(run.stdout, "");
    assert_eq!(
        std::fs::read_to_string(temp.path().join(".gitignore")).expect("read"),
        "mine\n"
    );
    assert!(!temp.path().join("stacks").exists());
    assert!(!temp.path().join(".github").exists());
}

#[test]
fn init_refuses_a_name_that_cannot_name_a_stack_with_the_manifest_s_hint() {
    let temp = tempfile::tempdir().expect("temp dir");
    let run = podstack(["init", "project", "--name", "My_Studio"])
        .current_dir(temp.path())
        .run()
        .expect_code(1);
    assert_eq!(
        run.stderr,
        "error: `My_Studio` cannot name a stack:\n  \
         stack name `My_Studio` is not a valid image name\n    \
         hint: use lower-case letters, digits and dashes, starting and ending with a letter or digit (at most 64)\n  \
         `My_Studio` cannot name the stack's Kubernetes objects\n    \
         hint: start it with a letter and keep it to 52 characters: its StatefulSet and Services are named after it\n"
    );
    assert!(!temp.path().join("project").exists());
}

#[test]
fn init_help_shows_examples() {
    let help = podstack(["init", "--help"]).run().expect_code(0);
    assert!(
        help.stdout
            .contains("  podstack init my-studio --name sdxl  in ./my-studio (created): stacks/sdxl.toml, ...\n"),
        "{}",
        help.stdout
    );
    let top = podstack(["--help"]).run().expect_code(0);
    assert!(top.stdout.contains("\n  init "), "{}", top.stdout);
}

/// The oldest `checked = YYYY-MM-DD` among the compat data files, read here on its own.
fn oldest_check() -> String {
    let data = repo().join("src/compat/data");
    let mut days: Vec<String> = std::fs::read_dir(&data)
        .expect("compat data")
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.expect("entry").path()).ok()?;
            text.lines()
                .find_map(|line| line.strip_prefix("checked = ").map(str::to_owned))
        })
        .collect();
    assert!(days.len() >= 6, "{days:?}");
    days.sort();
    days.swap_remove(0)
}

#[test]
fn version_names_the_compat_data_s_date() {
    let expected = format!(
        "podstack {} (compat data {})\n",
        env!("CARGO_PKG_VERSION"),
        oldest_check()
    );
    for flag in ["--version", "-V"] {
        let run = podstack([flag])
            .current_dir(Path::new("/"))
            .run()
            .expect_code(0);
        assert_eq!(run.stdout, expected);
    }
}
