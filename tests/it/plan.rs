//! `podstack plan` on real git repositories made from the project's stacks: each test commits
//! the rendered project, makes one change a studio makes, and reads the plan.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::registry::{Pushed, Registry, DOCKER_MANIFEST, OCI_MANIFEST};
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

/// The smoke stack with `image` as its base instead of the local one.
fn on_base(repo: &Repo, image: &str) {
    repo.edit(
        "stacks/smoke.toml",
        "image = \"podstack-base:bookworm\"\nlocal = true",
        &format!("image = \"{image}\""),
    );
}

/// Pins `image` to `digest` in the smoke stack's lock, as `podstack lock` does.
fn lock_base(repo: &Repo, image: &str, digest: &str) {
    let path = repo.path().join("stacks/smoke.lock");
    let mut lock = std::fs::read_to_string(&path).expect("read the lock");
    lock.push_str(&format!(
        "\n[[image]]\nimage = \"{image}\"\ndigest = \"{digest}\"\n"
    ));
    std::fs::write(path, lock).expect("write the lock");
}

/// An image of `studio/base` in `registry`: a config and a layer per given content, with the
/// bytes a pod pulls for it (the config and the layers, compressed: here stored as they are).
fn pushed_image(
    registry: &Registry,
    tag: Option<&str>,
    media_type: &str,
    layers: &[String],
) -> (Pushed, u64) {
    let gzip = if media_type == DOCKER_MANIFEST {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    };
    let config = registry.blob(
        "studio/base",
        "application/vnd.oci.image.config.v1+json",
        &format!(
            r#"{{"architecture":"amd64","os":"linux","layers":{}}}"#,
            layers.len()
        ),
    );
    let layers: Vec<Pushed> = layers
        .iter()
        .map(|content| registry.blob("studio/base", gzip, content))
        .collect();
    let bytes = config.size + layers.iter().map(|layer| layer.size).sum::<u64>();
    let manifest = registry.image_manifest("studio/base", tag, media_type, &config, &layers);
    (manifest, bytes)
}

fn base_layer(plan: &Value) -> &Value {
    &plan["layers"][0]
}

#[test]
fn plan_sizes_the_base_image_from_its_registry_manifest_by_tag_and_by_locked_digest() {
    let registry = Registry::start();
    // The tag names a Docker schema 2 manifest of two layers.
    let (tagged, tagged_bytes) = pushed_image(
        &registry,
        Some("bookworm"),
        DOCKER_MANIFEST,
        &["a".repeat(3000), "b".repeat(1234)],
    );
    let image = format!("{}:bookworm", registry.image("studio/base"));
    let repo = Repo::new();
    on_base(&repo, &image);

    let plan = repo.plan_json("smoke");
    assert_eq!(plan["base"]["source"], "registry-manifest");
    assert_eq!(plan["base"]["image"], image.as_str());
    assert_eq!(base_layer(&plan)["size"]["known"], "exact");
    assert_eq!(base_layer(&plan)["size"]["bytes"], tagged_bytes);
    assert_eq!(plan["base"]["registry"]["manifest"], tagged.digest.as_str());
    assert_eq!(
        plan["base"]["registry"]["layer_bytes"],
        serde_json::json!([3000, 1234])
    );
    let text = repo.plan(&["smoke"]).expect_code(0).stdout;
    assert!(
        text.contains(&format!(
            "base image:      {image}, size from its registry manifest\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  layer 1: the registry's manifest {}: the config and 2 layer(s), compressed, as a pod pulls them\n",
            &tagged.digest[..19]
        )),
        "{text}"
    );

    // The lock pins an index of two platforms: the plan follows the lock, not the tag, and
    // takes the index's linux/amd64 image.
    let (amd64, amd64_bytes) = pushed_image(&registry, None, OCI_MANIFEST, &["c".repeat(777)]);
    let (arm64, _) = pushed_image(&registry, None, OCI_MANIFEST, &["d".repeat(50_000)]);
    let index = registry.index(
        "studio/base",
        None,
        &[(&arm64, "linux", "arm64"), (&amd64, "linux", "amd64")],
    );
    lock_base(&repo, &image, &index.digest);
    let plan = repo.plan_json("smoke");
    assert_eq!(plan["base"]["source"], "registry-manifest");
    assert_eq!(
        plan["base"]["image"],
        format!("{image}@{}", index.digest).as_str()
    );
    assert_eq!(base_layer(&plan)["size"]["bytes"], amd64_bytes);
    let pulled = &plan["base"]["registry"];
    assert_eq!(pulled["index"], index.digest.as_str());
    assert_eq!(pulled["manifest"], amd64.digest.as_str());
    assert_eq!(
        pulled["platform"],
        serde_json::json!({"os": "linux", "architecture": "amd64"})
    );
    assert_ne!(amd64_bytes, tagged_bytes);
}

#[test]
fn plan_says_why_the_base_image_size_is_unknown() {
    let registry = Registry::start();
    let image = format!("{}:bookworm", registry.image("studio/base"));
    let repo = Repo::new();
    on_base(&repo, &image);
    // A pinned digest the registry does not have.
    let missing = format!("sha256:{}", "0".repeat(64));
    lock_base(&repo, &image, &missing);
    let plan = repo.plan_json("smoke");
    assert_eq!(plan["base"]["source"], "unknown");
    let why = base_layer(&plan)["size"]["why"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        why,
        format!(
            "127.0.0.1:{} has no studio/base@{missing}; {image}@{missing} is not in this machine's Docker engine",
            registry.port
        )
    );
    assert!(plan["image"]["unknown_layers"].as_u64().unwrap() >= 1);

    // No registry listening at all: said at once, never guessed.
    let port = crate::support::http::free_port();
    let offline = format!("127.0.0.1:{port}/studio/base:bookworm");
    repo.edit("stacks/smoke.toml", &image, &offline);
    let plan = repo.plan_json("smoke");
    assert_eq!(plan["base"]["source"], "unknown");
    let why = base_layer(&plan)["size"]["why"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("127.0.0.1:{port} cannot be reached ("))
            && why.ends_with(&format!(
                "; {offline} is not in this machine's Docker engine"
            )),
        "{why}"
    );
    let text = repo.plan(&["smoke"]).expect_code(0).stdout;
    assert!(
        text.contains(&format!("base image:      {offline}, size unknown\n")),
        "{text}"
    );
}

/// An image pushed by the real Docker engine: the plan's base bytes are its manifest's config
/// and layers, compressed as the registry holds them, not the engine's uncompressed size,
/// though the engine has the image too.
#[test]
fn plan_sizes_a_base_image_docker_pushed() {
    let registry = Registry::start();
    let pushed = registry.docker_push("studio/pushed", "bookworm");
    let manifest = registry.manifest_of("studio/pushed", "bookworm");
    let blobs = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|blob| blob["size"].as_u64().unwrap())
        .sum::<u64>();
    let repo = Repo::new();
    on_base(&repo, &pushed.image);
    let plan = repo.plan_json("smoke");
    assert_eq!(plan["base"]["source"], "registry-manifest");
    assert_eq!(base_layer(&plan)["size"]["bytes"], blobs);
}
