//! `podstack plan` on real git repositories made from the project's stacks: each test commits
//! the rendered project, makes one change a studio makes, and reads the plan.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{copy_project, podstack, Run};

/// A git repository holding the project's stacks, rendered and committed.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_project(dir.path());
        podstack(["build"])
            .current_dir(dir.path())
            .run()
            .expect_code(0);
        let repo = Self { dir };
        repo.git(&["init", "-q"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-qm", "the stacks as shipped"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=podstack",
                "-c",
                "user.email=podstack@example.com",
            ])
            .args(args)
            .current_dir(self.path())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    /// Replaces `from` with `to` in a project file, which must contain it.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    }

    fn plan(&self, args: &[&str]) -> Run {
        podstack(["plan"]).current_dir(self.path()).run_with(args)
    }

    fn plan_json(&self, stack: &str) -> Value {
        let run = self.plan(&[stack, "--json"]).expect_code(0);
        serde_json::from_str(&run.stdout).expect("plan --json prints JSON")
    }
}

trait RunWith {
    fn run_with(self, args: &[&str]) -> Run;
}

impl RunWith for crate::support::Podstack {
    fn run_with(mut self, args: &[&str]) -> Run {
        for arg in args {
            self = self.arg(arg);
        }
        self.run()
    }
}

/// `layer name: verdict` for every layer, in order.
fn verdicts(plan: &Value) -> Vec<String> {
    plan["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| {
            format!(
                "{}: {}",
                layer["layer"].as_str().expect("a layer name"),
                layer["verdict"].as_str().expect("a verdict")
            )
        })
        .collect()
}

fn why(plan: &Value, layer: &str) -> String {
    plan["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["layer"] == layer)
        .and_then(|l| l["why"].as_str())
        .unwrap_or_else(|| panic!("no why for {layer} in {plan:#}"))
        .to_owned()
}

fn bytes(plan: &Value, layer: &str) -> u64 {
    plan["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["layer"] == layer)
        .and_then(|l| l["size"]["bytes"].as_u64())
        .unwrap_or_else(|| panic!("no size for {layer}"))
}

const SMOKE_LAYERS: [&str; 11] = [
    "base image",
    "apt packages",
    "Python venv",
    "constraints.txt",
    "requirements.lock.txt",
    "Python packages (pip)",
    "ComfyUI (folder)",
    "podstack binary",
    "control panel",
    "runtime files",
    "file seal",
];

/// The smoke stack's layers, the first `kept` of them kept and the rest rebuilt.
fn smoke_verdicts(kept: usize) -> Vec<String> {
    SMOKE_LAYERS
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name}: {}", if i < kept { "kept" } else { "rebuilt" }))
        .collect()
}

#[test]
fn plan_with_nothing_changed_keeps_every_layer() {
    let repo = Repo::new();
    let plan = repo.plan_json("smoke");
    assert_eq!(verdicts(&plan), smoke_verdicts(11));
    assert_eq!(plan["pull"]["bytes"], 0);
    assert_eq!(plan["pull"]["layers"], 0);
    let text = repo.plan(&["smoke"]).expect_code(0).stdout;
    assert!(
        text.contains("every pod pulls: 0 B (0 of 11 layers rebuilt)\n"),
        "{text}"
    );
}

#[test]
fn plan_of_a_ui_only_change_rebuilds_the_last_three_layers() {
    let repo = Repo::new();
    repo.edit(
        "templates/ui/index.html",
        "</body>",
        "<!-- a fix --></body>",
    );
    let plan = repo.plan_json("smoke");
    assert_eq!(verdicts(&plan), smoke_verdicts(8));
    assert_eq!(
        why(&plan, "control panel"),
        "templates/ui/index.html changed"
    );
    // The digest covers the panel, so the runtime files change with it.
    assert_eq!(
        why(&plan, "runtime files"),
        "generated/smoke/DIGEST changed"
    );
    assert_eq!(why(&plan, "file seal"), "follows layer 9, rebuilt");
    let panel: u64 = std::fs::read_dir(repo.path().join("templates/ui"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(bytes(&plan, "control panel"), panel);
    let text = repo.plan(&["smoke"]).expect_code(0).stdout;
    let line = text
        .lines()
        .find(|line| line.contains("control panel"))
        .expect("a control panel line");
    assert!(
        line.starts_with("   9  control panel ")
            && line.ends_with("  templates/ui/index.html changed"),
        "{line}"
    );
    assert!(text.contains("(3 of 11 layers rebuilt)"), "{text}");
}

#[test]
fn plan_of_a_runtime_setting_rebuilds_the_runtime_files_and_the_seal() {
    let repo = Repo::new();
    repo.edit(
        "stacks/smoke.toml",
        "stop_grace = \"3s\"",
        "stop_grace = \"5s\"",
    );
    let plan = repo.plan_json("smoke");
    assert_eq!(verdicts(&plan), smoke_verdicts(9));
    assert_eq!(
        why(&plan, "runtime files"),
        r#"generated/smoke/stack.json: runtime.stop_grace: "3s" -> "5s""#
    );
    let runtime: u64 = ["start.sh", "stack.json", "DIGEST"]
        .iter()
        .map(|file| {
            std::fs::metadata(repo.path().join("generated/smoke").join(file))
                .unwrap()
                .len()
        })
        .sum();
    // The committed files are the old rendering; the new one differs only in "3s" -> "5s".
    assert_eq!(bytes(&plan, "runtime files"), runtime);
    assert_eq!(plan["pull"]["layers"], 2);
}

#[test]
fn plan_of_a_new_apt_package_rebuilds_from_the_apt_layer() {
    let repo = Repo::new();
    repo.edit(
        "stacks/smoke.toml",
        "[python]",
        "[system]\napt = [\"ffmpeg\"]\n\n[python]",
    );
    let plan = repo.plan_json("smoke");
    assert_eq!(verdicts(&plan), smoke_verdicts(1));
    assert_eq!(why(&plan, "apt packages"), "system.apt: + ffmpeg");
    assert_eq!(why(&plan, "Python venv"), "follows layer 2, rebuilt");
    assert_eq!(plan["pull"]["layers"], 10);
}

#[test]
fn plan_of_a_new_custom_node_rebuilds_from_its_clone() {
    let repo = Repo::new();
    repo.edit(
        "stacks/comfyui-cu128.toml",
        "commit = \"a125cd84b054a57729b5eecab930ca9408719832\"",
        "commit = \"a125cd84b054a57729b5eecab930ca9408719832\"\ncustom_nodes = [{ repo = \"https://github.com/ltdrdata/ComfyUI-Manager\", commit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\" }]",
    );
    let plan = repo.plan_json("comfyui-cu128");
    let verdicts = verdicts(&plan);
    assert_eq!(
        &verdicts[8..],
        [
            "ComfyUI (git): kept",
            "custom node ComfyUI-Manager: rebuilt",
            "podstack binary: rebuilt",
            "control panel: rebuilt",
            "runtime files: rebuilt",
            "file seal: rebuilt",
        ]
    );
    assert!(
        verdicts[..8].iter().all(|v| v.ends_with(": kept")),
        "{verdicts:?}"
    );
    assert_eq!(
        why(&plan, "custom node ComfyUI-Manager"),
        "comfyui.custom_nodes: a new step"
    );
    // A clone's size is not known before it is fetched: the total says so.
    assert_eq!(plan["pull"]["unknown_layers"], 1);
    let layer = &plan["layers"][9];
    assert_eq!(layer["size"]["known"], "unknown");
}

#[test]
fn plan_of_a_torch_bump_rebuilds_everything_after_the_python_venv() {
    let repo = Repo::new();
    for (from, to) in [
        ("version = \"2.8.0\"", "version = \"2.9.0\""),
        ("torchvision = \"0.23.0\"", "torchvision = \"0.24.0\""),
        ("torchaudio = \"2.8.0\"", "torchaudio = \"2.9.0\""),
        ("xformers==0.0.32.post2", "xformers==0.0.33"),
    ] {
        repo.edit("stacks/comfyui-cu128.toml", from, to);
    }
    let plan = repo.plan_json("comfyui-cu128");
    let verdicts = verdicts(&plan);
    assert_eq!(
        &verdicts[..4],
        [
            "base image: kept",
            "apt packages: kept",
            "Python venv: kept",
            "constraints.txt: rebuilt"
        ]
    );
    assert!(
        verdicts[3..].iter().all(|v| v.ends_with(": rebuilt")),
        "{verdicts:?}"
    );
    assert_eq!(
        why(&plan, "constraints.txt"),
        "generated/comfyui-cu128/constraints.txt: lock entry `torch` 2.8.0 -> 2.9.0"
    );
    // The lock no longer matches the manifest: the torch layer's size is unknown, not guessed.
    let torch = plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "torch (pip)")
        .unwrap();
    assert_eq!(torch["size"]["known"], "unknown");
    assert_eq!(
        torch["size"]["why"],
        "the lock does not hold this layer's packages: run `podstack lock comfyui-cu128`"
    );
}

#[test]
fn plan_against_a_folder_of_generated_files_or_an_older_tree() {
    let repo = Repo::new();
    let old = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&repo.path().join("generated/smoke"), old.path());
    repo.edit(
        "stacks/smoke.toml",
        "stop_grace = \"3s\"",
        "stop_grace = \"5s\"",
    );
    let against = old.path().to_str().unwrap();
    let plan: Value = serde_json::from_str(
        &repo
            .plan(&["smoke", "--json", "--against", against])
            .expect_code(0)
            .stdout,
    )
    .unwrap();
    // Files outside a folder of generated files cannot be compared: never shown as kept.
    assert_eq!(
        why(&plan, "ComfyUI (folder)"),
        format!("tests/fixtures/comfyui cannot be compared: {against} holds generated files only")
    );
    assert_eq!(verdicts(&plan), smoke_verdicts(6));

    let tree = tempfile::tempdir().unwrap();
    copy_project(tree.path());
    podstack(["build"])
        .current_dir(tree.path())
        .run()
        .expect_code(0);
    let plan: Value = serde_json::from_str(
        &repo
            .plan(&[
                "smoke",
                "--json",
                "--against",
                tree.path().to_str().unwrap(),
            ])
            .expect_code(0)
            .stdout,
    )
    .unwrap();
    assert_eq!(verdicts(&plan), smoke_verdicts(9));
}

#[test]
fn plan_against_an_unknown_revision_is_a_usage_error() {
    let repo = Repo::new();
    let run = repo
        .plan(&["smoke", "--against", "no-such-branch"])
        .expect_code(2);
    assert!(
        run.stderr
            .contains("`no-such-branch` is neither a folder nor a git revision of")
            && run.stderr.contains("hint: pass --against with a commit"),
        "{}",
        run.stderr
    );
}
