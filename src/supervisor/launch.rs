//! The ComfyUI command for one user on this pod: a program and an argv, never a shell string
//! (L16), with the user's own folders passed as ComfyUI's flags instead of shared symlinks
//! (L12, L13), the attention flag chosen for the GPU (L9), and kernel caches keyed by GPU
//! architecture and torch version so pods with different GPUs on one volume never share or
//! clear each other's (L11).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::attention::AttentionChoice;
use super::gpu::Device;
use super::slots::{GpuSelection, SlotIndex};
use crate::comfyui_cli::managed_flag;
use crate::user::UserName;

/// Kernel caches, by environment variable and folder name. Compiled kernels are only valid for
/// the GPU architecture and torch build that made them.
const CACHES: [(&str, &str); 5] = [
    ("TRITON_CACHE_DIR", "triton"),
    ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
    ("CUDA_CACHE_PATH", "cuda"),
    ("PYTORCH_KERNEL_CACHE_PATH", "torch-kernels"),
    ("TORCH_EXTENSIONS_DIR", "torch-extensions"),
];

/// The CUDA JIT cache's default of 256 MiB is too small for PTX compiled on a new GPU; 4 GiB
/// is its maximum.
const CUDA_CACHE_MAXSIZE: &str = "4294967296";
/// ComfyUI's database in the user's folder (its default is `<ComfyUI>/user/comfyui.db`,
/// which it cannot open once `--user-directory` points elsewhere).
const DATABASE_FILE: &str = "comfyui.db";

/// A pod's name on the shared volume (its RunPod id, or the host name): it names per-pod
/// files and folders, so it is one safe path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodId(String);

impl PodId {
    /// The rule, as shown to people.
    pub const RULE: &'static str =
        "pod ids are 1-64 characters: letters, digits, `.`, `_` and `-`, not starting with `.`";

    pub fn parse(id: &str) -> Result<Self, LaunchError> {
        let fits = !id.is_empty()
            && id.len() <= 64
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if fits {
            Ok(Self(id.to_owned()))
        } else {
            Err(LaunchError::BadPodId { id: id.to_owned() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why ComfyUI cannot be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("`{id}` cannot name this pod on the volume: {}", PodId::RULE)]
    BadPodId { id: String },
    #[error("runtime.comfyui_args may not contain `{arg}`: {why}")]
    ManagedFlag { arg: String, why: &'static str },
    #[error("could not find the absolute path of `{}`: {source}", path.display())]
    Path { path: PathBuf, source: io::Error },
    #[error("could not create the folder {}: {source}", path.display())]
    Folder { path: PathBuf, source: io::Error },
    #[error(
        "{} is a symbolic link; podstack never writes a user's files through a link (another pod may have made it): move it away and start again",
        path.display()
    )]
    Symlink { path: PathBuf },
}

/// What the ComfyUI command is made from.
#[derive(Debug, Clone)]
pub struct LaunchPlan<'a> {
    /// The Python that runs ComfyUI (`stack.json`'s `comfyui.python`, or an override).
    pub python: &'a Path,
    /// The ComfyUI checkout holding `main.py`.
    pub comfyui_dir: &'a Path,
    /// `0.0.0.0` in the pod, `127.0.0.1` in tests.
    pub listen: &'a str,
    /// The slot's port.
    pub port: u16,
    /// The slot: the first keeps the pod's temp folder, the others get their own beside it
    /// (ComfyUI empties its temp folder when it starts).
    pub slot: SlotIndex,
    /// The slot's GPUs, when it does not see them all.
    pub gpus: &'a GpuSelection,
    /// The shared volume (`/workspace`).
    pub volume: &'a Path,
    pub pod: &'a PodId,
    pub user: &'a UserName,
    pub device: &'a Device,
    pub attention: &'a AttentionChoice,
    /// The torch version in the image (`2.8.0`), part of the cache key.
    pub torch: Option<&'a str>,
    /// The `extra_model_paths.yaml` pointing at the shared models folder.
    pub extra_model_paths: &'a Path,
    /// `runtime.comfyui_args`, appended after podstack's own.
    pub extra_args: &'a [String],
}

/// A ready-to-spawn ComfyUI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComfyUiLaunch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to the inherited environment.
    pub env: Vec<(&'static str, OsString)>,
    /// The ComfyUI checkout, where custom nodes expect to run.
    pub cwd: PathBuf,
    /// Folders that must exist before the spawn, with the volume they live on.
    folders: Vec<PathBuf>,
    volume: PathBuf,
}

impl ComfyUiLaunch {
    pub fn new(plan: &LaunchPlan<'_>) -> Result<Self, LaunchError> {
        if let Some((arg, why)) = plan
            .extra_args
            .iter()
            .find_map(|arg| Some((arg, managed_flag(arg)?)))
        {
            return Err(LaunchError::ManagedFlag {
                arg: arg.clone(),
                why,
            });
        }
        let volume = absolute(plan.volume)?;
        let comfyui_dir = absolute(plan.comfyui_dir)?;
        // A bare name is looked up on PATH; a relative path must not depend on `cwd`.
        let program = if plan.python.components().count() > 1 {
            absolute(plan.python)?
        } else {
            plan.python.to_owned()
        };
        let user = plan.user.as_str();
        let output = volume.join("output").join(user);
        let input = volume.join("input").join(user);
        let user_dir = volume.join("users").join(user);
        let temp = volume.join(".podstack/tmp").join(match plan.slot {
            SlotIndex(0) => plan.pod.as_str().to_owned(),
            SlotIndex(n) => format!("{}.slot-{n}", plan.pod.as_str()),
        });
        let cache = volume
            .join(".podstack/cache")
            .join(cache_key(plan.device, plan.torch));

        let mut args: Vec<OsString> = vec![comfyui_dir.join("main.py").into()];
        let mut flag = |name: &str, value: OsString| {
            args.push(name.into());
            args.push(value);
        };
        flag("--listen", plan.listen.into());
        flag("--port", plan.port.to_string().into());
        flag("--output-directory", output.clone().into());
        flag("--input-directory", input.clone().into());
        flag("--user-directory", user_dir.clone().into());
        flag("--temp-directory", temp.clone().into());
        // SQLAlchemy's URL of an absolute path: `sqlite:///` followed by `/workspace/...`.
        let mut database = OsString::from("sqlite:///");
        database.push(user_dir.join(DATABASE_FILE));
        flag("--database-url", database);
        flag(
            "--extra-model-paths-config",
            absolute(plan.extra_model_paths)?.into(),
        );
        args.push("--disable-auto-launch".into());
        if let GpuSelection::CudaDevice(index) = plan.gpus {
            args.extend(["--cuda-device".into(), index.to_string().into()]);
        }
        args.extend(plan.attention.flag.map(OsString::from));
        args.extend(plan.extra_args.iter().map(OsString::from));

        let mut env: Vec<(&'static str, OsString)> = vec![
            ("PYTHONUNBUFFERED", "1".into()),
            // Makes `cuda:0` the GPU nvidia-smi lists first, the one the attention kernel and
            // the caches were chosen for.
            ("CUDA_DEVICE_ORDER", "PCI_BUS_ID".into()),
            ("CUDA_CACHE_MAXSIZE", CUDA_CACHE_MAXSIZE.into()),
        ];
        if let GpuSelection::Visible(indexes) = plan.gpus {
            env.push(("CUDA_VISIBLE_DEVICES", indexes.into()));
        }
        let mut folders = vec![output, input, user_dir, temp];
        for (variable, kind) in CACHES {
            let folder = cache.join(kind);
            env.push((variable, folder.clone().into()));
            folders.push(folder);
        }
        Ok(Self {
            program,
            args,
            env,
            cwd: comfyui_dir,
            folders,
            volume,
        })
    }

    /// Creates the user's folders, the pod's temp folder and the cache folders (ComfyUI refuses
    /// a missing `--user-directory`). Existing ones are kept as they are: caches are never
    /// cleared. A symbolic link anywhere below the volume is refused.
    pub fn create_folders(&self) -> Result<(), LaunchError> {
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| LaunchError::Folder { path, source }
        };
        fs::create_dir_all(&self.volume).map_err(failed(&self.volume))?;
        for folder in &self.folders {
            let below = folder.strip_prefix(&self.volume).unwrap_or(folder);
            let mut path = self.volume.clone();
            for part in below.components() {
                path.push(part);
                match fs::symlink_metadata(&path) {
                    Ok(found) if found.file_type().is_symlink() => {
                        return Err(LaunchError::Symlink { path });
                    }
                    Ok(found) if found.is_dir() => {}
                    Ok(_) => {
                        let source =
                            io::Error::new(io::ErrorKind::NotADirectory, "a file is in the way");
                        return Err(failed(&path)(source));
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        match fs::create_dir(&path) {
                            // Another pod on the volume may create `output/` at the same moment.
                            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                                return Err(failed(&path)(err))
                            }
                            _ => {}
                        }
                    }
                    Err(err) => return Err(failed(&path)(err)),
                }
            }
        }
        Ok(())
    }
}

/// `sm_89-torch2.8.0`, `cpu-torch2.8.0`; a GPU of unknown architecture is keyed by its name.
fn cache_key(device: &Device, torch: Option<&str>) -> String {
    let device = match device {
        Device::Cpu => "cpu".to_owned(),
        Device::Gpu(gpu) => match gpu.arch {
            Some(arch) => arch.sm(),
            None => format!("gpu-{}", gpu.name.to_ascii_lowercase()),
        },
    };
    let key = format!("{device}-torch{}", torch.unwrap_or("-unknown"));
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn absolute(path: &Path) -> Result<PathBuf, LaunchError> {
    std::path::absolute(path).map_err(|source| LaunchError::Path {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::manifest::AttentionPolicy;
    use crate::resolved::AttentionKernel;
    use crate::supervisor::attention::{choose, Kernel};
    use crate::supervisor::gpu::Gpu;

    fn gpu(name: &str, arch: Option<&str>) -> Device {
        Device::Gpu(Gpu {
            index: 0,
            name: name.to_owned(),
            arch: arch.map(|arch| arch.parse().unwrap()),
            memory_mib: Some(24564),
            driver: None,
        })
    }

    fn sage() -> Vec<AttentionKernel> {
        vec![AttentionKernel {
            policy: AttentionPolicy::Sage,
            package: "sageattention".to_owned(),
            version: "2.2.0.post4".to_owned(),
            archs: ["8.0", "8.6", "8.9", "9.0", "12.0"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
        }]
    }

    fn launch(
        volume: &Path,
        user: &str,
        device: &Device,
        extra: &[String],
    ) -> Result<ComfyUiLaunch, LaunchError> {
        launch_in(
            SlotIndex(0),
            &GpuSelection::All,
            volume,
            user,
            device,
            extra,
        )
    }

    fn launch_in(
        slot: SlotIndex,
        gpus: &GpuSelection,
        volume: &Path,
        user: &str,
        device: &Device,
        extra: &[String],
    ) -> Result<ComfyUiLaunch, LaunchError> {
        let attention = choose(AttentionPolicy::Auto, device, &sage());
        ComfyUiLaunch::new(&LaunchPlan {
            python: Path::new("/opt/venv/bin/python"),
            comfyui_dir: Path::new("/opt/ComfyUI"),
            listen: "127.0.0.1",
            port: 8199 + u16::from(slot.0),
            slot,
            gpus,
            volume,
            pod: &PodId::parse("pod-a1").unwrap(),
            user: &UserName::parse(user).unwrap(),
            device,
            attention: &attention,
            torch: Some("2.8.0"),
            extra_model_paths: Path::new(
                "/workspace/.podstack/comfyui/pod-a1/extra_model_paths.yaml",
            ),
            extra_args: extra,
        })
    }

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|arg| arg.to_str().unwrap()).collect()
    }

    #[test]
    fn a_slot_gets_its_port_its_gpu_and_its_own_temp_folder() {
        let rtx4090 = gpu("NVIDIA GeForce RTX 4090", Some("8.9"));
        let volume = Path::new("/workspace");
        let launch = launch_in(
            SlotIndex(2),
            &GpuSelection::CudaDevice(2),
            volume,
            "bob",
            &rtx4090,
            &[],
        )
        .unwrap();
        let args = strings(&launch.args);
        let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert_eq!(after("--port"), "8201");
        assert_eq!(after("--cuda-device"), "2");
        assert_eq!(
            after("--temp-directory"),
            "/workspace/.podstack/tmp/pod-a1.slot-2"
        );
        assert_eq!(after("--output-directory"), "/workspace/output/bob");
        assert!(!launch
            .env
            .iter()
            .any(|(name, _)| *name == "CUDA_VISIBLE_DEVICES"));

        let launch = launch_in(
            SlotIndex(1),
            &GpuSelection::Visible("2,3".into()),
            volume,
            "bob",
            &rtx4090,
            &[],
        )
        .unwrap();
        assert!(!strings(&launch.args).contains(&"--cuda-device"));
        assert!(launch
            .env
            .contains(&("CUDA_VISIBLE_DEVICES", OsString::from("2,3"))));
    }

    #[test]
    fn builds_the_exact_argv_for_a_user_and_gpu() {
        let rtx4090 = gpu("NVIDIA GeForce RTX 4090", Some("8.9"));
        let extra = ["--preview-method".to_owned(), "auto".to_owned()];
        let launch = launch(Path::new("/workspace"), "alice", &rtx4090, &extra).unwrap();
        assert_eq!(launch.program, Path::new("/opt/venv/bin/python"));
        assert_eq!(launch.cwd, Path::new("/opt/ComfyUI"));
        assert_eq!(
            strings(&launch.args),
            [
                "/opt/ComfyUI/main.py",
                "--listen",
                "127.0.0.1",
                "--port",
                "8199",
                "--output-directory",
                "/workspace/output/alice",
                "--input-directory",
                "/workspace/input/alice",
                "--user-directory",
                "/workspace/users/alice",
                "--temp-directory",
                "/workspace/.podstack/tmp/pod-a1",
                "--database-url",
                "sqlite:////workspace/users/alice/comfyui.db",
                "--extra-model-paths-config",
                "/workspace/.podstack/comfyui/pod-a1/extra_model_paths.yaml",
                "--disable-auto-launch",
                "--use-sage-attention",
                "--preview-method",
                "auto",
            ]
        );
        let env: Vec<(&str, &str)> = launch
            .env
            .iter()
            .map(|(k, v)| (*k, v.to_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("PYTHONUNBUFFERED", "1"),
                ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                ("CUDA_CACHE_MAXSIZE", "4294967296"),
                (
                    "TRITON_CACHE_DIR",
                    "/workspace/.podstack/cache/sm_89-torch2.8.0/triton"
                ),
                (
                    "TORCHINDUCTOR_CACHE_DIR",
                    "/workspace/.podstack/cache/sm_89-torch2.8.0/inductor"
                ),
                (
                    "CUDA_CACHE_PATH",
                    "/workspace/.podstack/cache/sm_89-torch2.8.0/cuda"
                ),
                (
                    "PYTORCH_KERNEL_CACHE_PATH",
                    "/workspace/.podstack/cache/sm_89-torch2.8.0/torch-kernels"
                ),
                (
                    "TORCH_EXTENSIONS_DIR",
                    "/workspace/.podstack/cache/sm_89-torch2.8.0/torch-extensions"
                ),
            ]
        );
    }

    #[test]
    fn runs_on_the_cpu_without_a_gpu() {
        let launch = launch(Path::new("/workspace"), "bob", &Device::Cpu, &[]).unwrap();
        let args = strings(&launch.args);
        assert_eq!(args[args.len() - 2..], ["--disable-auto-launch", "--cpu"]);
        assert!(
            !args.iter().any(|arg| arg.starts_with("--use-")),
            "{args:?}"
        );
        assert_eq!(
            launch.env[3].1,
            "/workspace/.podstack/cache/cpu-torch2.8.0/triton"
        );
    }

    #[test]
    fn keys_caches_by_architecture() {
        let dirs = |device: &Device| -> Vec<OsString> {
            let launch = launch(Path::new("/workspace"), "alice", device, &[]).unwrap();
            launch
                .env
                .into_iter()
                .filter(|(k, _)| k.ends_with("_DIR") || k.ends_with("_PATH"))
                .map(|(_, v)| v)
                .collect()
        };
        let rtx4090 = dirs(&gpu("NVIDIA GeForce RTX 4090", Some("8.9")));
        let b200 = dirs(&gpu("NVIDIA B200", Some("10.0")));
        assert_eq!(rtx4090.len(), 5);
        assert!(
            rtx4090.iter().all(|dir| !b200.contains(dir)),
            "{rtx4090:?} {b200:?}"
        );
        assert_eq!(
            b200[0],
            "/workspace/.podstack/cache/sm_100-torch2.8.0/triton"
        );
        assert_eq!(
            cache_key(&gpu("NVIDIA Mystery X1/2", None), None),
            "gpu-nvidia-mystery-x1-2-torch-unknown"
        );
        let pytorch = choose(AttentionPolicy::Pytorch, &Device::Cpu, &[]);
        assert_eq!(pytorch.kernel, Kernel::SubQuadratic);
    }

    #[test]
    fn refuses_flags_podstack_sets_itself() {
        for arg in [
            "--port",
            "--port=9000",
            "--use-sage-attention",
            "--cpu",
            "--user-directory",
            "--database-url=sqlite:///:memory:",
        ] {
            let err = launch(
                Path::new("/workspace"),
                "alice",
                &Device::Cpu,
                &[arg.to_owned()],
            )
            .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("runtime.comfyui_args may not contain `{arg}`: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn creates_the_users_folders_and_keeps_caches() {
        let volume = tempfile::tempdir().unwrap();
        let launch = launch(
            volume.path(),
            "alice",
            &gpu("NVIDIA H100 80GB HBM3", Some("9.0")),
            &[],
        )
        .unwrap();
        let kept = volume
            .path()
            .join(".podstack/cache/sm_90-torch2.8.0/triton/kernel.bin");
        fs::create_dir_all(kept.parent().unwrap()).unwrap();
        fs::write(&kept, "compiled").unwrap();
        launch.create_folders().unwrap();
        for folder in [
            "output/alice",
            "input/alice",
            "users/alice",
            ".podstack/tmp/pod-a1",
            ".podstack/cache/sm_90-torch2.8.0/inductor",
        ] {
            assert!(volume.path().join(folder).is_dir(), "{folder}");
        }
        assert_eq!(fs::read_to_string(&kept).unwrap(), "compiled");
        assert!(!volume.path().join("output/bob").exists());
        launch.create_folders().unwrap();
    }

    #[test]
    fn refuses_a_symlinked_user_folder() {
        let volume = tempfile::tempdir().unwrap();
        let elsewhere = volume.path().join("output/bob");
        fs::create_dir_all(&elsewhere).unwrap();
        symlink(&elsewhere, volume.path().join("output/alice")).unwrap();
        let err = launch(volume.path(), "alice", &Device::Cpu, &[])
            .unwrap()
            .create_folders()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a symbolic link; podstack never writes a user's files through a link (another pod may have made it): move it away and start again",
                volume.path().join("output/alice").display()
            )
        );
    }

    #[test]
    fn pod_ids_are_one_path_segment() {
        for good in ["abc123xyz", "pod-a1", "host.local", "A_1"] {
            assert_eq!(PodId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "..", ".hidden", "a/b", "a b", "$(id)", &"a".repeat(65)] {
            assert_eq!(
                PodId::parse(bad).unwrap_err().to_string(),
                format!(
                    "`{bad}` cannot name this pod on the volume: {}",
                    PodId::RULE
                )
            );
        }
    }
}
