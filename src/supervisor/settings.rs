//! The supervisor's configuration: the raw command line and environment ([`SuperviseArgs`]),
//! checked and combined with the image's `stack.json` into [`Settings`]. Every flag has an
//! environment variable, so a pod template, a test or a person outside the image can point the
//! supervisor at any ComfyUI checkout, Python, volume and ports.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::launch::PodId;
use crate::resolved::ResolvedStack;
use crate::user::UserName;

/// `podstack supervise`: run the pod (PID 1 of the image).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  podstack supervise                                   in the image (start.sh execs it)
  podstack supervise --config generated/smoke/stack.json --volume /tmp/vol \\
      --comfyui-dir ~/ComfyUI --python ~/ComfyUI/venv/bin/python --listen 127.0.0.1

Exit codes: 0 stopped by SIGTERM/SIGINT after stopping every service, 1 could not start
(unreadable stack.json, a folder or port it cannot use, an unreadable token file), 2 usage.")]
pub struct SuperviseArgs {
    /// The image's stack.json.
    #[arg(long, env = "PODSTACK_CONFIG", value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The shared volume [default: runtime.volume].
    #[arg(long, env = "PODSTACK_VOLUME", value_name = "DIR")]
    pub volume: Option<PathBuf>,
    /// The ComfyUI checkout to run [default: the image's].
    #[arg(long, env = "PODSTACK_COMFYUI_DIR", value_name = "DIR")]
    pub comfyui_dir: Option<PathBuf>,
    /// The Python that runs ComfyUI (and JupyterLab) [default: the image's venv].
    #[arg(long, env = "PODSTACK_PYTHON", value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Address ComfyUI and JupyterLab listen on.
    #[arg(
        long,
        env = "PODSTACK_LISTEN",
        value_name = "IP",
        default_value = "0.0.0.0"
    )]
    pub listen: IpAddr,
    /// Address the control panel listens on.
    #[arg(
        long,
        env = "PODSTACK_PANEL_LISTEN",
        value_name = "IP",
        default_value = "0.0.0.0"
    )]
    pub panel_listen: IpAddr,
    /// The control panel's port [default: runtime.panel_port].
    #[arg(long, env = "PODSTACK_PANEL_PORT", value_name = "PORT")]
    pub panel_port: Option<u16>,
    /// ComfyUI's port [default: runtime.comfyui_port].
    #[arg(long, env = "PODSTACK_COMFYUI_PORT", value_name = "PORT")]
    pub comfyui_port: Option<u16>,
    /// The nvidia-smi program, a path or a name on PATH.
    #[arg(
        long,
        env = "PODSTACK_NVIDIA_SMI",
        value_name = "PATH",
        default_value = "nvidia-smi"
    )]
    pub nvidia_smi: PathBuf,
    /// Names this pod's files on the volume (logs, usage, users) [default: RUNPOD_POD_ID, else
    /// the host name].
    #[arg(long, env = "PODSTACK_POD_ID", value_name = "ID")]
    pub pod_id: Option<String>,
    /// The folder holding the control panel's index.html [default: `ui` beside stack.json].
    #[arg(long, env = "PODSTACK_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// A memory cgroup directory (v1 or v2) ComfyUI is moved into once started; its OOM
    /// counter then explains a kill.
    #[arg(long, env = "PODSTACK_COMFYUI_CGROUP", value_name = "DIR")]
    pub comfyui_cgroup: Option<PathBuf>,
    /// Start ComfyUI for this user at boot, as if the panel had asked (a pod template can
    /// set it for a pod that belongs to one person).
    #[arg(long, env = "PODSTACK_START_USER", value_name = "USER")]
    pub start_user: Option<String>,
    /// The rclone program the sync runs, a path or a name on PATH.
    #[arg(
        long,
        env = "PODSTACK_RCLONE",
        value_name = "PATH",
        default_value = "rclone"
    )]
    pub rclone: PathBuf,
    /// How often this pod writes its heartbeat under `<vol>/.podstack/pods/` (the fleet view).
    #[arg(
        long,
        env = "PODSTACK_HEARTBEAT_INTERVAL",
        value_name = "DURATION",
        default_value = "5s"
    )]
    pub heartbeat_interval: crate::duration::HumanDuration,
    /// How often the GPUs, CPU, RAM, volume and ComfyUI's queue are sampled (the panel's
    /// charts keep the last hour of samples).
    #[arg(
        long,
        env = "PODSTACK_HOST_SAMPLE_INTERVAL",
        value_name = "DURATION",
        default_value = "5s"
    )]
    pub host_sample_interval: crate::duration::HumanDuration,
}

/// Where start.sh finds stack.json inside every podstack image (`resolved::paths::RUNTIME`).
const DEFAULT_CONFIG: &str = "/opt/podstack/stack.json";

/// Everything the supervisor runs with, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stack: ResolvedStack,
    /// sha256 digest of the stack the image was built from, when known.
    pub digest: Option<String>,
    /// The folder holding stack.json (and, in an image, the UI and the seal).
    pub runtime_dir: PathBuf,
    pub volume: PathBuf,
    pub comfyui_dir: PathBuf,
    pub python: PathBuf,
    pub listen: IpAddr,
    pub panel_listen: IpAddr,
    pub panel_port: u16,
    pub comfyui_port: u16,
    pub nvidia_smi: PathBuf,
    pub pod: PodId,
    /// RUNPOD_POD_ID: the pod is reached through RunPod's proxy.
    pub runpod_pod_id: Option<String>,
    pub ui_dir: PathBuf,
    pub comfyui_cgroup: Option<PathBuf>,
    /// The user whose ComfyUI starts at boot.
    pub start_user: Option<UserName>,
    /// The rclone program of the sync.
    pub rclone: PathBuf,
    /// How often the pod writes its heartbeat.
    pub heartbeat_interval: std::time::Duration,
    /// How often the machine is sampled.
    pub host_sample_interval: std::time::Duration,
}

/// A reason the supervisor cannot start, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub hint: String,
}

impl Settings {
    /// Reads stack.json and the environment; every problem found, at once.
    pub fn new(args: SuperviseArgs) -> Result<Self, Vec<Problem>> {
        let stack = read_stack(&args.config).map_err(|problem| vec![problem])?;
        let runtime_dir = args.config.parent().unwrap_or(Path::new(".")).to_owned();
        let mut problems = Vec::new();
        let runpod_pod_id = non_empty_env("RUNPOD_POD_ID");
        let pod_id = args
            .pod_id
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| runpod_pod_id.clone())
            .or_else(hostname)
            .unwrap_or_else(|| "pod".to_owned());
        let pod = PodId::parse(&pod_id).map_err(|err| {
            problems.push(Problem {
                what: err.to_string(),
                hint: "set PODSTACK_POD_ID to a name for this pod".to_owned(),
            });
        });
        let comfyui_dir = args
            .comfyui_dir
            .unwrap_or_else(|| PathBuf::from(&stack.comfyui.dir));
        if !comfyui_dir.join("main.py").is_file() {
            problems.push(Problem {
                what: format!(
                    "{} holds no ComfyUI (main.py is missing)",
                    comfyui_dir.display()
                ),
                hint: "set PODSTACK_COMFYUI_DIR (or --comfyui-dir) to a ComfyUI checkout"
                    .to_owned(),
            });
        }
        let volume = args
            .volume
            .unwrap_or_else(|| PathBuf::from(&stack.runtime.volume));
        if let Err(err) = std::fs::create_dir_all(volume.join(".podstack")) {
            problems.push(Problem {
                what: format!("cannot use the volume {}: {err}", volume.display()),
                hint: "mount the network volume there, or set PODSTACK_VOLUME (or --volume)"
                    .to_owned(),
            });
        }
        let start_user = args
            .start_user
            .filter(|name| !name.is_empty())
            .map(|name| UserName::parse(&name))
            .transpose()
            .map_err(|err| {
                problems.push(Problem {
                    what: format!("PODSTACK_START_USER: {err}"),
                    hint: UserName::RULE.to_owned(),
                });
            })
            .ok()
            .flatten();
        let (Ok(pod), true) = (pod, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Self {
            digest: crate::verify::running_digest(
                non_empty_env("PODSTACK_DIGEST").as_deref(),
                &runtime_dir,
            ),
            runtime_dir: runtime_dir.clone(),
            volume,
            comfyui_dir,
            python: args
                .python
                .unwrap_or_else(|| PathBuf::from(&stack.comfyui.python)),
            listen: args.listen,
            panel_listen: args.panel_listen,
            panel_port: args.panel_port.unwrap_or(stack.runtime.panel_port),
            comfyui_port: args.comfyui_port.unwrap_or(stack.runtime.comfyui_port),
            nvidia_smi: args.nvidia_smi,
            pod,
            runpod_pod_id,
            ui_dir: args.ui_dir.unwrap_or_else(|| runtime_dir.join("ui")),
            comfyui_cgroup: args.comfyui_cgroup,
            start_user,
            rclone: args.rclone,
            heartbeat_interval: args.heartbeat_interval.0,
            host_sample_interval: args.host_sample_interval.0,
            stack,
        })
    }

    /// `<volume>/.podstack`, the supervisor's own files on the volume.
    pub fn podstack_dir(&self) -> PathBuf {
        self.volume.join(".podstack")
    }

    /// `<volume>/models`, the models every pod on the volume shares.
    pub fn models_dir(&self) -> PathBuf {
        self.volume.join("models")
    }
}

fn read_stack(path: &Path) -> Result<ResolvedStack, Problem> {
    let text = std::fs::read_to_string(path).map_err(|err| Problem {
        what: format!("cannot read the stack file {}: {err}", path.display()),
        hint: "set PODSTACK_CONFIG (or --config) to generated/<stack>/stack.json".to_owned(),
    })?;
    ResolvedStack::from_json(&text).map_err(|err| Problem {
        what: format!("{} is not a podstack stack.json: {err}", path.display()),
        hint: "render it again with `podstack build` from the same podstack version".to_owned(),
    })
}

/// The DIGEST file's value: its last line, `sha256:<64 hex>`.
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|name| !name.is_empty())
}

/// Settings for unit tests: the smoke stack, `edit`ed, with its volume under `dir`.
#[cfg(test)]
pub(crate) fn for_tests(dir: &Path, edit: impl FnOnce(&mut crate::manifest::Runtime)) -> Settings {
    let text = include_str!("../../stacks/smoke.toml");
    let manifest: crate::manifest::Manifest = toml::from_str(text).expect("the smoke stack parses");
    let mut stack = ResolvedStack::new(&manifest, "test");
    edit(&mut stack.runtime);
    Settings {
        stack,
        digest: Some("sha256:test".to_owned()),
        runtime_dir: dir.to_owned(),
        volume: dir.join("volume"),
        comfyui_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/comfyui"),
        python: PathBuf::from("python3"),
        listen: IpAddr::from([127, 0, 0, 1]),
        panel_listen: IpAddr::from([127, 0, 0, 1]),
        panel_port: 0,
        comfyui_port: 0,
        nvidia_smi: PathBuf::from("nvidia-smi"),
        pod: PodId::parse("test-pod").expect("a valid pod id"),
        runpod_pod_id: None,
        ui_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/ui"),
        comfyui_cgroup: None,
        start_user: None,
        rclone: PathBuf::from("rclone"),
        heartbeat_interval: std::time::Duration::from_secs(5),
        host_sample_interval: super::host::SAMPLE_EVERY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolved::paths;

    #[test]
    fn the_default_config_is_in_the_images_runtime_folder() {
        assert_eq!(DEFAULT_CONFIG, format!("{}/stack.json", paths::RUNTIME));
    }
}
