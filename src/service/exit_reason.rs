//! Why any supervised service ended, in plain words with a hint (L15): its exit code or
//! signal, the out-of-memory killer when its memory cgroup's `oom_kill` counter rose while it
//! ran (cgroup v2 `memory.events`, v1 `memory.oom_control`), and the failure its log named
//! ([`KnownFailure`], which the pod's ComfyUI log watch finds). "exit code 0" is never the
//! whole story.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use serde::Serialize;

/// A failure ComfyUI names in its log before it exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KnownFailure {
    /// `Port 8188 is already in use on address 0.0.0.0. ...`, or 0.3.64's traceback
    /// `OSError: [Errno 98] error while attempting to bind on address ('0.0.0.0', 8188): address already in use`.
    PortInUse { port: u16, address: String },
    /// `To use the `--use-sage-attention` feature, the `sageattention` package must be
    /// installed first.`
    AttentionPackageMissing { flag: String, package: String },
    /// `RuntimeError: Found no NVIDIA driver on your system. ...`
    NoNvidiaDriver,
    /// `main.py: error: argument --user-directory: The path '...' does not exist.` (exit 2).
    ArgumentRefused { message: String },
}

impl KnownFailure {
    /// What it means: "port 8188 is already in use on address 0.0.0.0".
    pub fn what(&self) -> String {
        match self {
            Self::PortInUse { port, address } => {
                format!("port {port} is already in use on address {address}")
            }
            Self::AttentionPackageMissing { flag, package } => {
                format!("it was started with {flag} but the {package} package is not installed")
            }
            Self::NoNvidiaDriver => "PyTorch found no NVIDIA driver".to_owned(),
            Self::ArgumentRefused { message } => {
                format!("it refused its command line: {message}")
            }
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::PortInUse { port, .. } => {
                format!("Stop the other program on port {port}, or set runtime.comfyui_port to a free port.")
            }
            Self::AttentionPackageMissing { package, .. } => format!(
                "Rebuild the image with {package}, or set gpu.attention = \"auto\" so podstack picks an installed kernel."
            ),
            Self::NoNvidiaDriver => {
                "The pod's GPU driver is not usable from PyTorch: restart the pod or pick another GPU.".to_owned()
            }
            Self::ArgumentRefused { .. } => {
                "Check runtime.comfyui_args in the stack manifest.".to_owned()
            }
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Termination {
    Exited { code: i32 },
    Killed { signal: i32 },
}

impl Termination {
    /// How a process that was asked to stop ended: "by SIGTERM", "with exit code 0".
    pub fn how(self) -> String {
        match self {
            Self::Exited { code } => format!("with exit code {code}"),
            Self::Killed { signal } => format!("by {}", signal_name(signal)),
        }
    }
}

impl From<ExitStatus> for Termination {
    fn from(status: ExitStatus) -> Self {
        match (status.signal(), status.code()) {
            (Some(signal), _) => Self::Killed { signal },
            (None, code) => Self::Exited {
                code: code.unwrap_or(-1),
            },
        }
    }
}

/// Memory figures at an out-of-memory kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OomEvidence {
    /// The cgroup's peak memory use.
    pub used_bytes: Option<u64>,
    /// The cgroup's limit, or the machine's RAM when there is none.
    pub limit_bytes: Option<u64>,
}

/// Why a service ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitReason {
    pub termination: Termination,
    /// Set when it was killed with SIGKILL while the cgroup's OOM kill counter rose.
    pub oom: Option<OomEvidence>,
    /// The failure its log named last.
    pub known: Option<KnownFailure>,
}

const SIGKILL: i32 = Signal::SIGKILL as i32;

impl ExitReason {
    /// Only a SIGKILL can be the OOM killer's; any other ending keeps its own reason.
    pub fn new(
        termination: Termination,
        oom: Option<OomEvidence>,
        known: Option<KnownFailure>,
    ) -> Self {
        Self {
            oom: oom.filter(|_| termination == Termination::Killed { signal: SIGKILL }),
            termination,
            known,
        }
    }

    /// What happened, for an ending nobody asked for: "ComfyUI exited with code 1: port 8188
    /// is already in use on address 0.0.0.0".
    pub fn reason(&self, service: &str) -> String {
        if let Some(oom) = self.oom {
            let figures = match (oom.used_bytes, oom.limit_bytes) {
                (Some(used), Some(limit)) => format!(" (RAM {} of {} GiB)", gib(used), gib(limit)),
                (None, Some(limit)) => format!(" (RAM limit {} GiB)", gib(limit)),
                (Some(used), None) => format!(" (RAM {} GiB)", gib(used)),
                (None, None) => String::new(),
            };
            return format!("{service} was killed by the kernel's out-of-memory killer{figures}");
        }
        let ended = match self.termination {
            Termination::Exited { code: 0 } if self.known.is_none() => {
                format!("{service} exited with code 0 although nobody asked it to stop")
            }
            Termination::Exited { code } => format!("{service} exited with code {code}"),
            Termination::Killed { signal } => format!(
                "{service} was killed by signal {signal} ({})",
                signal_name(signal)
            ),
        };
        match &self.known {
            None => ended,
            Some(known) => format!("{ended}: {}", known.what()),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        if self.oom.is_some() {
            return "Use a smaller model or ComfyUI's --lowvram (runtime.comfyui_args), or a pod with more RAM.".to_owned();
        }
        if let Some(known) = &self.known {
            return known.hint();
        }
        match self.termination {
            Termination::Killed { signal: SIGKILL } => "Something outside the service killed it: another process, or a memory limit of the pod that podstack cannot see; check the pod's memory use.".to_owned(),
            Termination::Killed { signal } if is_crash(signal) => "It crashed inside native code (a custom node, a kernel wheel or the driver); the last log lines may name it.".to_owned(),
            Termination::Exited { code: 0 } => "It stopped by itself without an error; the last log lines may say why.".to_owned(),
            _ => "The last log lines show the error.".to_owned(),
        }
    }

    /// Whether a restart can help: a missing package, a missing driver or a refused command
    /// line fail the same way every time.
    pub fn worth_restarting(&self) -> bool {
        !matches!(
            self.known,
            Some(
                KnownFailure::AttentionPackageMissing { .. }
                    | KnownFailure::NoNvidiaDriver
                    | KnownFailure::ArgumentRefused { .. }
            )
        )
    }
}

fn is_crash(signal: i32) -> bool {
    [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGABRT,
        Signal::SIGILL,
        Signal::SIGFPE,
    ]
    .iter()
    .any(|crash| *crash as i32 == signal)
}

fn signal_name(signal: i32) -> &'static str {
    Signal::try_from(signal).map_or("unknown signal", Signal::as_str)
}

fn gib(bytes: u64) -> String {
    // Exact enough for a message; u64 -> f64 loses precision only past 2^53 bytes.
    #[allow(clippy::cast_precision_loss)]
    let gib = bytes as f64 / f64::from(1u32 << 30);
    format!("{gib:.1}")
}

/// A process's memory cgroup, where the kernel counts OOM kills.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

/// Cgroup v1 writes "unlimited" as a huge number (`9223372036854771712`).
const V1_UNLIMITED: u64 = 1 << 62;

impl MemoryCgroup {
    /// The memory cgroup of `pid`, from `<proc_root>/<pid>/cgroup` (`N:memory:/path` on v1,
    /// `0::/path` on v2; v1 wins on hybrid machines, where it holds the memory controller)
    /// under `cgroup_root` (`/sys/fs/cgroup`). Inside a container without a cgroup namespace
    /// the path names the host's hierarchy while the container sees its own cgroup at the
    /// root, so the longest tail of the path that exists is taken.
    fn of_process(proc_root: &Path, cgroup_root: &Path, pid: u32) -> Option<Self> {
        let text = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        let mut v1 = None;
        let mut v2 = None;
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.split(',').any(|c| c == "memory") {
                v1 = Some(path);
            } else if id == "0" && controllers.is_empty() {
                v2 = Some(path);
            }
        }
        let (root, path, v2, marker) = match (v1, v2) {
            (Some(path), _) => (
                cgroup_root.join("memory"),
                path,
                false,
                "memory.oom_control",
            ),
            (None, Some(path)) => (cgroup_root.to_owned(), path, true, "memory.events"),
            (None, None) => return None,
        };
        let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        (0..=parts.len())
            .map(|skip| {
                parts[skip..]
                    .iter()
                    .fold(root.clone(), |dir, part| dir.join(part))
            })
            .find(|dir| dir.join(marker).is_file())
            .map(|dir| Self { dir, v2 })
    }

    fn oom_kills(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|count| count.trim().parse().ok())
    }

    fn limit(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        self.number(file).filter(|&limit| limit < V1_UNLIMITED)
    }

    fn peak(&self) -> Option<u64> {
        self.number(if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        })
    }

    /// A one-number file; v2's `max` (no limit) reads as `None`.
    fn number(&self, file: &str) -> Option<u64> {
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Watches one process for the OOM killer: reads its cgroup's counter at spawn and compares
/// after it died.
#[derive(Debug, Clone)]
pub struct OomWatch {
    cgroup: Option<MemoryCgroup>,
    before: Option<u64>,
    meminfo: PathBuf,
}

impl OomWatch {
    /// Call right after the spawn, while `pid` is alive. `proc_root` is `/proc`, `cgroup_root`
    /// `/sys/fs/cgroup`.
    pub fn start(proc_root: &Path, cgroup_root: &Path, pid: u32) -> Self {
        let cgroup = MemoryCgroup::of_process(proc_root, cgroup_root, pid);
        Self {
            before: cgroup.as_ref().and_then(MemoryCgroup::oom_kills),
            cgroup,
            meminfo: proc_root.join("meminfo"),
        }
    }

    /// The evidence, when the cgroup counted an OOM kill since [`OomWatch::start`].
    pub fn evidence(&self) -> Option<OomEvidence> {
        let cgroup = self.cgroup.as_ref()?;
        let after = cgroup.oom_kills()?;
        if after <= self.before.unwrap_or(0) {
            return None;
        }
        Some(OomEvidence {
            used_bytes: cgroup.peak(),
            limit_bytes: cgroup.limit().or_else(|| mem_total(&self.meminfo)),
        })
    }
}

/// `MemTotal:       32777216 kB` from `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &Path) -> Option<u64> {
    let text = fs::read_to_string(meminfo).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_termination_reads_as_words_in_a_log_line() {
        // The real image's stop logged `Killed { signal: 15 }` before.
        assert_eq!(Termination::Killed { signal: 15 }.how(), "by SIGTERM");
        assert_eq!(Termination::Exited { code: 0 }.how(), "with exit code 0");
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn says_what_happened_in_plain_words() {
        let exited = |code| Termination::Exited { code };
        let killed = |signal| Termination::Killed { signal };
        let oom = Some(OomEvidence {
            used_bytes: Some(31 * GIB + GIB / 5),
            limit_bytes: Some(32 * GIB),
        });
        let port = Some(KnownFailure::PortInUse {
            port: 8188,
            address: "0.0.0.0".to_owned(),
        });
        let cases = [
            (
                ExitReason::new(killed(9), oom, None),
                "ComfyUI was killed by the kernel's out-of-memory killer (RAM 31.2 of 32.0 GiB)",
                "Use a smaller model or ComfyUI's --lowvram (runtime.comfyui_args), or a pod with more RAM.",
            ),
            (
                ExitReason::new(killed(9), None, None),
                "ComfyUI was killed by signal 9 (SIGKILL)",
                "Something outside the service killed it: another process, or a memory limit of the pod that podstack cannot see; check the pod's memory use.",
            ),
            (
                ExitReason::new(exited(1), oom, None),
                "ComfyUI exited with code 1",
                "The last log lines show the error.",
            ),
            (
                ExitReason::new(exited(0), None, None),
                "ComfyUI exited with code 0 although nobody asked it to stop",
                "It stopped by itself without an error; the last log lines may say why.",
            ),
            (
                ExitReason::new(killed(11), None, None),
                "ComfyUI was killed by signal 11 (SIGSEGV)",
                "It crashed inside native code (a custom node, a kernel wheel or the driver); the last log lines may name it.",
            ),
            (
                ExitReason::new(exited(1), None, port),
                "ComfyUI exited with code 1: port 8188 is already in use on address 0.0.0.0",
                "Stop the other program on port 8188, or set runtime.comfyui_port to a free port.",
            ),
            (
                ExitReason::new(
                    exited(255),
                    None,
                    Some(KnownFailure::AttentionPackageMissing {
                        flag: "--use-sage-attention".to_owned(),
                        package: "sageattention".to_owned(),
                    }),
                ),
                "ComfyUI exited with code 255: it was started with --use-sage-attention but the sageattention package is not installed",
                "Rebuild the image with sageattention, or set gpu.attention = \"auto\" so podstack picks an installed kernel.",
            ),
            (
                ExitReason::new(exited(1), None, Some(KnownFailure::NoNvidiaDriver)),
                "ComfyUI exited with code 1: PyTorch found no NVIDIA driver",
                "The pod's GPU driver is not usable from PyTorch: restart the pod or pick another GPU.",
            ),
        ];
        for (exit, reason, hint) in cases {
            assert_eq!(exit.reason("ComfyUI"), reason);
            assert_eq!(exit.hint(), hint, "{reason}");
        }
        let limit_only = OomEvidence {
            used_bytes: None,
            limit_bytes: Some(16 * GIB),
        };
        assert_eq!(
            ExitReason::new(killed(9), Some(limit_only), None).reason("JupyterLab"),
            "JupyterLab was killed by the kernel's out-of-memory killer (RAM limit 16.0 GiB)"
        );
    }

    #[test]
    fn restarts_only_what_a_restart_can_fix() {
        let exit = |known| ExitReason::new(Termination::Exited { code: 1 }, None, known);
        assert!(exit(None).worth_restarting());
        assert!(exit(Some(KnownFailure::PortInUse {
            port: 1,
            address: "::".to_owned()
        }))
        .worth_restarting());
        assert!(!exit(Some(KnownFailure::NoNvidiaDriver)).worth_restarting());
        assert!(!exit(Some(KnownFailure::ArgumentRefused {
            message: "x".to_owned()
        }))
        .worth_restarting());
    }

    #[test]
    fn reads_real_wait_statuses() {
        let status = |script: &str| {
            Termination::from(Command::new("sh").args(["-c", script]).status().unwrap())
        };
        assert_eq!(status("exit 3"), Termination::Exited { code: 3 });
        assert_eq!(status("kill -9 $$"), Termination::Killed { signal: 9 });
    }

    #[test]
    fn counts_oom_kills_on_cgroup_v2() {
        let root = tempfile::tempdir().unwrap();
        let (proc_root, cgroups) = (root.path().join("proc"), root.path().join("cgroup"));
        write(&proc_root, "42/cgroup", "0::/kubepods/pod1/ctr\n");
        write(
            &proc_root,
            "meminfo",
            "MemTotal:       33554432 kB\nMemFree: 1 kB\n",
        );
        let events = "kubepods/pod1/ctr/memory.events";
        write(
            &cgroups,
            events,
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        write(&cgroups, "kubepods/pod1/ctr/memory.max", "max\n");
        let watch = OomWatch::start(&proc_root, &cgroups, 42);
        assert_eq!(watch.evidence(), None);
        write(
            &cgroups,
            events,
            "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n",
        );
        write(
            &cgroups,
            "kubepods/pod1/ctr/memory.peak",
            &format!("{}\n", 30 * GIB),
        );
        assert_eq!(
            watch.evidence(),
            Some(OomEvidence {
                used_bytes: Some(30 * GIB),
                limit_bytes: Some(32 * GIB),
            })
        );
    }

    #[test]
    fn counts_oom_kills_on_cgroup_v1_seen_from_a_container() {
        let root = tempfile::tempdir().unwrap();
        let (proc_root, cgroups) = (root.path().join("proc"), root.path().join("cgroup"));
        // The host's path, while the container's own cgroup is mounted at the root.
        write(
            &proc_root,
            "7/cgroup",
            "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n",
        );
        let control = "memory/memory.oom_control";
        write(
            &cgroups,
            control,
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        );
        write(&cgroups, "memory/memory.limit_in_bytes", "536870912\n");
        write(&cgroups, "memory/memory.max_usage_in_bytes", "536866816\n");
        let watch = OomWatch::start(&proc_root, &cgroups, 7);
        assert_eq!(watch.evidence(), None);
        write(
            &cgroups,
            control,
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        let evidence = watch.evidence().unwrap();
        assert_eq!(evidence.limit_bytes, Some(536_870_912));
        assert_eq!(
            ExitReason::new(Termination::Killed { signal: 9 }, Some(evidence), None)
                .reason("ComfyUI"),
            "ComfyUI was killed by the kernel's out-of-memory killer (RAM 0.5 of 0.5 GiB)"
        );
        write(
            &cgroups,
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(watch.evidence().unwrap().limit_bytes, None);
    }

    #[test]
    fn without_a_cgroup_there_is_no_evidence() {
        let root = tempfile::tempdir().unwrap();
        let watch = OomWatch::start(root.path(), root.path(), 1);
        assert_eq!(watch.evidence(), None);
        assert_eq!(MemoryCgroup::of_process(root.path(), root.path(), 1), None);
    }
}
