//! The GPU probe: which NVIDIA GPUs the pod has, and their compute capability, asked of
//! `nvidia-smi` and, when it cannot answer, read from `/proc/driver/nvidia`. Every GPU line is
//! read; missing fields are tolerated, a missing compute capability comes from podstack's GPU
//! table, and no GPU at all means CPU mode, said in a note instead of left to a ComfyUI
//! traceback.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::compat::Compat;
use crate::version::GpuArch;

/// The query: one GPU a line, e.g. `0, NVIDIA GeForce RTX 4090, 8.9, 24564, 550.127.05`.
const QUERY: [&str; 2] = [
    "--query-gpu=index,name,compute_cap,memory.total,driver_version",
    "--format=csv,noheader,nounits",
];

/// nvidia-smi answers in well under a second; a hung driver must not hold up the pod's start.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One NVIDIA GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// nvidia-smi's index (PCI bus order); ComfyUI's `cuda:0` is index 0 because the launch
    /// sets `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
    pub index: u32,
    pub name: String,
    /// The compute capability; `None` when neither nvidia-smi nor podstack's table knows it.
    pub arch: Option<GpuArch>,
    pub memory_mib: Option<u64>,
    pub driver: Option<String>,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuProbe {
    /// Every GPU, lowest index first; empty means CPU mode.
    pub gpus: Vec<Gpu>,
    /// What the probe skipped, guessed or fell back on, in plain words, for the status page.
    pub notes: Vec<String>,
}

/// What ComfyUI computes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Device {
    /// No NVIDIA GPU: ComfyUI runs with `--cpu`.
    Cpu,
    /// ComfyUI's `cuda:0`.
    Gpu(Gpu),
}

impl GpuProbe {
    /// The device ComfyUI uses: the GPU with the lowest index, or the CPU.
    pub fn device(&self) -> Device {
        self.gpus
            .iter()
            .min_by_key(|gpu| gpu.index)
            .map_or(Device::Cpu, |gpu| Device::Gpu(gpu.clone()))
    }
}

/// Probes the GPUs with the `nvidia_smi` program (a path, or a name looked up on PATH), falling
/// back to `<proc_root>/driver/nvidia/` (`/proc` in a pod).
pub fn probe(nvidia_smi: &Path, proc_root: &Path) -> GpuProbe {
    probe_within(nvidia_smi, proc_root, TIMEOUT)
}

fn probe_within(nvidia_smi: &Path, proc_root: &Path, timeout: Duration) -> GpuProbe {
    let (mut notes, why) = match query(nvidia_smi, timeout) {
        Ok(stdout) => {
            let found = parse_query(&stdout);
            if !found.gpus.is_empty() {
                return found;
            }
            let why = if stdout.trim().is_empty() {
                "it listed no GPU".to_owned()
            } else {
                "it printed nothing podstack could read as a GPU".to_owned()
            };
            (found.notes, why)
        }
        Err(why) => (Vec::new(), why),
    };
    let driver_dir = proc_root.join("driver/nvidia");
    let gpus = read_proc(&driver_dir, &mut notes);
    if gpus.is_empty() {
        notes.push(format!(
            "No NVIDIA GPU found (nvidia-smi: {why}); ComfyUI runs on the CPU with --cpu"
        ));
    } else {
        notes.insert(
            0,
            format!(
                "nvidia-smi did not list the GPUs ({why}); found {} in {}",
                gpus.len(),
                driver_dir.display()
            ),
        );
    }
    GpuProbe { gpus, notes }
}

/// Runs the query and returns its output, or why there is none.
fn query(nvidia_smi: &Path, timeout: Duration) -> Result<String, String> {
    let program = nvidia_smi.display();
    let child = Command::new(nvidia_smi)
        .args(QUERY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => format!("{program} was not found"),
            _ => format!("could not run {program}: {err}"),
        })?;
    let pid = child.id();
    let (done, wait) = mpsc::channel();
    thread::spawn(move || done.send(child.wait_with_output()));
    let output = match wait.recv_timeout(timeout) {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("could not read the output of {program}: {err}")),
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                // The waiting thread reaps it once it is dead.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return Err(format!(
                "{program} gave no answer within {} s",
                timeout.as_secs_f32()
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .find(|line| !line.is_empty());
    let how = match output.status.code() {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    };
    Err(match said {
        Some(said) => format!("{how}: {said}"),
        None => how,
    })
}

/// Reads the query's output: one GPU a line; lines that are not GPUs are skipped with a note.
pub fn parse_query(stdout: &str) -> GpuProbe {
    let mut gpus = Vec::new();
    let mut notes = Vec::new();
    for line in stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let gpu_fields = match fields[..] {
            [index, name, cap, mib, driver] => {
                (index.parse::<u32>().ok()).map(|index| (index, name, cap, mib, driver))
            }
            _ => None,
        };
        let Some((index, name, cap, mib, driver)) = gpu_fields else {
            notes.push(format!(
                "skipped a line of nvidia-smi output that is not a GPU: `{}`",
                shorten(line)
            ));
            continue;
        };
        let mut gpu = Gpu {
            index,
            name: value(name).map_or_else(|| format!("NVIDIA GPU {index}"), one_spaced),
            arch: value(cap).and_then(|cap| cap.parse().ok()),
            // `24564`, or `24564 MiB` from a query without `nounits`.
            memory_mib: value(mib)
                .and_then(|mib| mib.split_whitespace().next())
                .and_then(|mib| mib.parse().ok()),
            driver: value(driver).map(str::to_owned),
        };
        if gpu.arch.is_none() {
            fill_arch(&mut gpu, &mut notes);
        }
        gpus.push(gpu);
    }
    gpus.sort_by_key(|gpu| gpu.index);
    GpuProbe { gpus, notes }
}

/// A field's value, or `None` for what nvidia-smi prints when it has none (`[N/A]`,
/// `[Not Supported]`, empty).
fn value(field: &str) -> Option<&str> {
    let field = field.trim();
    (!field.is_empty() && !field.starts_with('[') && field != "N/A").then_some(field)
}

/// Takes the compute capability from podstack's GPU table, saying so in a note.
fn fill_arch(gpu: &mut Gpu, notes: &mut Vec<String>) {
    gpu.arch = Compat::embedded()
        .gpu_by_name(&gpu.name)
        .map(|known| known.arch);
    let source = match gpu.arch {
        Some(arch) => format!("podstack's GPU table says {arch}"),
        None => "podstack does not know this GPU either, so attention kernels that need a known architecture are not used".to_owned(),
    };
    notes.push(format!(
        "the compute capability of GPU {} ({}) was not reported; {source}",
        gpu.index, gpu.name
    ));
}

/// GPUs from the driver's files: one folder per GPU under `gpus/`, named by PCI bus address
/// (so sorted they are in nvidia-smi's order), each with an `information` file.
fn read_proc(driver_dir: &Path, notes: &mut Vec<String>) -> Vec<Gpu> {
    let Ok(entries) = fs::read_dir(driver_dir.join("gpus")) else {
        return Vec::new();
    };
    let mut folders: Vec<_> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    folders.sort();
    let driver = fs::read_to_string(driver_dir.join("version"))
        .ok()
        .and_then(|text| driver_version(&text));
    let names = folders
        .iter()
        .filter_map(|folder| fs::read_to_string(folder.join("information")).ok())
        .filter_map(|information| {
            information.lines().find_map(|line| {
                let (key, name) = line.split_once(':')?;
                (key.trim() == "Model").then(|| one_spaced(name))
            })
        });
    let mut gpus = Vec::new();
    for (index, name) in (0..).zip(names) {
        let mut gpu = Gpu {
            index,
            name,
            arch: None,
            memory_mib: None,
            driver: driver.clone(),
        };
        fill_arch(&mut gpu, notes);
        gpus.push(gpu);
    }
    gpus
}

/// The driver version from `/proc/driver/nvidia/version`, whose first line reads
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Thu Oct ...` (or `... Open
/// Kernel Module for x86_64  570.133.20  Release Build ...`).
fn driver_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|line| line.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|word| {
            word.contains('.')
                && word.starts_with(|c: char| c.is_ascii_digit())
                && word.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(str::to_owned)
}

/// `NVIDIA  GeForce RTX 4090 ` -> `NVIDIA GeForce RTX 4090`.
fn one_spaced(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(line: &str) -> String {
    const MAX: usize = 120;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    fn fake_nvidia_smi() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvidia-smi/nvidia-smi")
    }

    /// What the fake prints for our query in `mode`.
    fn fake_output(mode: &str) -> String {
        let output = Command::new(fake_nvidia_smi())
            .args(QUERY)
            .env("FAKE_NVIDIA_SMI", mode)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }

    /// A script that runs the fake in `mode`, since the probe passes no environment.
    fn fake_in_mode(dir: &Path, mode: &str) -> PathBuf {
        let script = dir.join(format!("nvidia-smi-{mode}"));
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nFAKE_NVIDIA_SMI={mode} exec '{}' \"$@\"\n",
                fake_nvidia_smi().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn arch(text: &str) -> Option<GpuArch> {
        Some(text.parse().unwrap())
    }

    fn gpu(index: u32, name: &str, cap: &str, mib: u64, driver: &str) -> Gpu {
        Gpu {
            index,
            name: name.to_owned(),
            arch: arch(cap),
            memory_mib: Some(mib),
            driver: Some(driver.to_owned()),
        }
    }

    #[test]
    fn reads_every_gpu_the_fake_reports() {
        let cases = [
            (
                "rtx4090",
                vec![gpu(
                    0,
                    "NVIDIA GeForce RTX 4090",
                    "8.9",
                    24564,
                    "550.127.05",
                )],
            ),
            (
                "rtx5090",
                vec![gpu(
                    0,
                    "NVIDIA GeForce RTX 5090",
                    "12.0",
                    32607,
                    "570.133.20",
                )],
            ),
            (
                "h100",
                vec![gpu(0, "NVIDIA H100 80GB HBM3", "9.0", 81559, "550.127.05")],
            ),
            (
                "b200",
                vec![gpu(0, "NVIDIA B200", "10.0", 183359, "570.133.20")],
            ),
            (
                "two",
                vec![
                    gpu(0, "NVIDIA GeForce RTX 4090", "8.9", 24564, "550.127.05"),
                    gpu(1, "NVIDIA GeForce RTX 3090", "8.6", 24576, "550.127.05"),
                ],
            ),
        ];
        for (mode, gpus) in cases {
            let probe = parse_query(&fake_output(mode));
            assert_eq!(probe.gpus, gpus, "{mode}");
            assert_eq!(probe.notes, Vec::<String>::new(), "{mode}");
        }
    }

    #[test]
    fn takes_a_missing_compute_capability_from_the_gpu_table() {
        let probe = parse_query(&fake_output("missing-fields"));
        assert_eq!(
            probe.gpus,
            [Gpu {
                index: 0,
                name: "NVIDIA GeForce RTX 4090".to_owned(),
                arch: arch("8.9"),
                memory_mib: None,
                driver: Some("550.127.05".to_owned()),
            }]
        );
        assert_eq!(
            probe.notes,
            ["the compute capability of GPU 0 (NVIDIA GeForce RTX 4090) was not reported; podstack's GPU table says 8.9"]
        );
    }

    #[test]
    fn skips_garbage_lines_with_a_note() {
        let probe = parse_query(&fake_output("garbage"));
        assert!(probe.gpus.is_empty());
        assert_eq!(
            probe.notes,
            [
                "skipped a line of nvidia-smi output that is not a GPU: `%%% nvml says hello %%%`",
                "skipped a line of nvidia-smi output that is not a GPU: `0;;;GeForce???;;;banana`",
                "skipped a line of nvidia-smi output that is not a GPU: `lorem ipsum 42 MiB`",
            ]
        );
    }

    #[test]
    fn tolerates_odd_spacing_unknown_gpus_and_empty_names() {
        let text =
            "1,   NVIDIA   Mystery  X1 , , [N/A], \n0, , 8.6, 24576 MiB, 550.1\nx, y, z, w, v\n";
        let probe = parse_query(text);
        assert_eq!(
            probe.gpus,
            [
                Gpu {
                    index: 0,
                    name: "NVIDIA GPU 0".to_owned(),
                    arch: arch("8.6"),
                    memory_mib: Some(24576),
                    driver: Some("550.1".to_owned()),
                },
                Gpu {
                    index: 1,
                    name: "NVIDIA Mystery X1".to_owned(),
                    arch: None,
                    memory_mib: None,
                    driver: None,
                },
            ]
        );
        assert_eq!(
            probe.notes,
            [
                "the compute capability of GPU 1 (NVIDIA Mystery X1) was not reported; podstack does not know this GPU either, so attention kernels that need a known architecture are not used",
                "skipped a line of nvidia-smi output that is not a GPU: `x, y, z, w, v`",
            ]
        );
    }

    #[test]
    fn probes_with_the_real_program_call() {
        let dir = tempfile::tempdir().unwrap();
        let probe = probe(&fake_in_mode(dir.path(), "two"), dir.path());
        assert_eq!(probe.gpus.len(), 2);
        assert_eq!(
            probe.device(),
            Device::Gpu(gpu(
                0,
                "NVIDIA GeForce RTX 4090",
                "8.9",
                24564,
                "550.127.05"
            ))
        );
    }

    #[test]
    fn without_gpu_says_cpu_mode_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("bin/nvidia-smi");
        let cases = [
            (
                missing.clone(),
                format!(
                    "No NVIDIA GPU found (nvidia-smi: {} was not found); ComfyUI runs on the CPU with --cpu",
                    missing.display()
                ),
            ),
            (
                fake_in_mode(dir.path(), "none"),
                "No NVIDIA GPU found (nvidia-smi: exit code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.); ComfyUI runs on the CPU with --cpu".to_owned(),
            ),
        ];
        for (program, note) in cases {
            let probe = probe(&program, dir.path());
            assert_eq!(probe.device(), Device::Cpu);
            assert_eq!(probe.notes, [note]);
        }
        let garbage = probe(&fake_in_mode(dir.path(), "garbage"), dir.path());
        assert_eq!(garbage.device(), Device::Cpu);
        assert_eq!(
            garbage.notes.last().unwrap(),
            "No NVIDIA GPU found (nvidia-smi: it printed nothing podstack could read as a GPU); ComfyUI runs on the CPU with --cpu"
        );
    }

    #[test]
    fn gives_up_on_a_hung_nvidia_smi() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hung");
        fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let probe = probe_within(&script, dir.path(), Duration::from_millis(200));
        assert_eq!(
            probe.notes,
            [format!(
                "No NVIDIA GPU found (nvidia-smi: {} gave no answer within 0.2 s); ComfyUI runs on the CPU with --cpu",
                script.display()
            )]
        );
    }

    #[test]
    fn falls_back_to_the_driver_files() {
        let proc_root = tempfile::tempdir().unwrap();
        let driver = proc_root.path().join("driver/nvidia");
        for (bus, model) in [
            ("0000:02:00.0", "NVIDIA GeForce RTX 3090"),
            ("0000:01:00.0", "NVIDIA  B200"),
        ] {
            fs::create_dir_all(driver.join("gpus").join(bus)).unwrap();
            fs::write(
                driver.join("gpus").join(bus).join("information"),
                format!("Model: \t\t {model}\nIRQ:   \t\t 140\nBus Location: \t {bus}\n"),
            )
            .unwrap();
        }
        fs::write(
            driver.join("version"),
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build  (dvs-builder@U16-I3-B03-4-3)  Fri Mar 14 2025\nGCC version:  gcc version 12.2.0\n",
        )
        .unwrap();
        let probe = probe(&proc_root.path().join("missing"), proc_root.path());
        let from_proc = |index, name: &str, cap| Gpu {
            index,
            name: name.to_owned(),
            arch: arch(cap),
            memory_mib: None,
            driver: Some("570.133.20".to_owned()),
        };
        assert_eq!(
            probe.gpus,
            [
                from_proc(0, "NVIDIA B200", "10.0"),
                from_proc(1, "NVIDIA GeForce RTX 3090", "8.6")
            ]
        );
        assert!(
            probe.notes[0].starts_with("nvidia-smi did not list the GPUs (")
                && probe.notes[0]
                    .ends_with(&format!("was not found); found 2 in {}", driver.display())),
            "{:?}",
            probe.notes
        );
    }
}
