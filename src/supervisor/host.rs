//! The pod's machine over the last hour, as RunPod's pod page and Grafana show it: every
//! few seconds (`--host-sample-interval`, [`SAMPLE_EVERY`] by default) the supervisor samples each GPU (`nvidia-smi --query-gpu`: utilisation,
//! memory, temperature, power), the CPU and RAM (`/proc/stat`, `/proc/meminfo`), the volume's
//! space (statvfs), and the queue of every slot's ComfyUI that is ready (`GET /queue` on its own
//! port, all slots at once). The last hour of
//! samples is kept for `GET /api/metrics/history`; the newest goes into the status.
//!
//! A figure that cannot be read is `None` (a GPU field `[N/A]`, no volume): a sample never
//! fails as a whole.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::Client;
use serde::Serialize;
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

use super::control::Control;
use super::slots::SlotIndex;
use crate::service::clock::now_ms;
use crate::service::exit_reason::Termination;
use crate::service::process::Reaper;
use crate::service::state::{ServiceState, UnixMillis};

/// How often the machine is sampled unless the pod says otherwise.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How far back the samples go.
const KEPT_FOR: Duration = Duration::from_secs(3600);
/// The volume counts as nearly full below this share free...
const LOW_FREE_PERCENT: u64 = 10;
/// ...or below this many bytes free.
const LOW_FREE_BYTES: u64 = 5 << 30;
/// How long nvidia-smi may take.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(4);

/// The fields asked of nvidia-smi, in this order.
const GPU_QUERY: [&str; 2] = [
    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw,power.limit",
    "--format=csv,noheader,nounits",
];

/// The machine at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSample {
    pub at_ms: UnixMillis,
    /// Empty in CPU mode or when nvidia-smi gave no answer.
    pub gpus: Vec<GpuSample>,
    /// The whole machine's CPU use since the previous sample; 100 = every core busy.
    pub cpu_pct: Option<f64>,
    pub cpus: usize,
    pub ram_used_bytes: Option<u64>,
    pub ram_total_bytes: Option<u64>,
    pub volume: Option<VolumeSample>,
    /// Slot 0's queue (the field from before slots); `None` while its ComfyUI is not ready.
    pub comfyui: Option<QueueSample>,
    /// The queue of each slot whose ComfyUI is ready and answered, lowest slot first.
    pub queues: Vec<SlotQueue>,
}

/// One slot's ComfyUI queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlotQueue {
    pub slot: SlotIndex,
    #[serde(flatten)]
    pub queue: QueueSample,
}

/// One GPU, as `nvidia-smi --query-gpu` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSample {
    pub index: u32,
    pub name: String,
    pub utilization_pct: Option<u32>,
    pub memory_used_mib: Option<u64>,
    pub memory_total_mib: Option<u64>,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
}

/// The volume's space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeSample {
    pub path: PathBuf,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Below 10% or 5 GiB free.
    pub low: bool,
}

/// ComfyUI's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueSample {
    pub queue_running: usize,
    pub queue_pending: usize,
}

/// The last hour of samples, and news of each new one.
#[derive(Debug)]
pub struct HostHistory {
    every: Duration,
    kept: usize,
    samples: Mutex<VecDeque<Arc<HostSample>>>,
    latest: watch::Sender<Option<Arc<HostSample>>>,
}

impl Default for HostHistory {
    fn default() -> Self {
        Self::new(SAMPLE_EVERY)
    }
}

impl HostHistory {
    /// The history of a sampler that samples `every` so often: the last hour of its samples.
    pub fn new(every: Duration) -> Self {
        let every = every.max(Duration::from_secs(1));
        let kept = usize::try_from(KEPT_FOR.as_secs() / every.as_secs())
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            every,
            kept,
            samples: Mutex::new(VecDeque::with_capacity(kept)),
            latest: watch::channel(None).0,
        }
    }

    /// How often a sample is taken.
    pub fn every(&self) -> Duration {
        self.every
    }

    fn record(&self, sample: HostSample) {
        let sample = Arc::new(sample);
        {
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() == self.kept {
                samples.pop_front();
            }
            samples.push_back(Arc::clone(&sample));
        }
        self.latest.send_replace(Some(sample));
    }

    /// The samples taken after `since` (all with 0), oldest first.
    pub fn since(&self, since: UnixMillis) -> Vec<Arc<HostSample>> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples
            .iter()
            .filter(|sample| sample.at_ms > since)
            .cloned()
            .collect()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Arc<HostSample>> {
        self.latest.borrow().clone()
    }

    /// Wakes on every new sample.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<HostSample>>> {
        self.latest.subscribe()
    }
}

/// What the sampler reads from.
#[derive(Debug)]
pub struct Sampler {
    pub history: Arc<HostHistory>,
    /// `None` in CPU mode: nothing to ask.
    pub nvidia_smi: Option<PathBuf>,
    pub reaper: Reaper,
    pub proc_root: PathBuf,
    pub volume: PathBuf,
    pub control: Control,
    /// Where the slots' ComfyUIs listen (their queues are asked on its loopback side).
    pub listen: IpAddr,
    pub client: Client,
}

impl Sampler {
    /// Samples until the task is dropped.
    pub async fn run(self) {
        // The first sample after one interval: the CPU's share needs two readings anyway.
        let every = self.history.every();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous_cpu = None;
        loop {
            ticks.tick().await;
            let cpu = cpu_times(&self.proc_root);
            let cpu_pct = match (previous_cpu, cpu) {
                (Some(before), Some(now)) => cpu_percent(before, now),
                _ => None,
            };
            previous_cpu = cpu;
            let (ram_used_bytes, ram_total_bytes) = ram(&self.proc_root);
            let gpus = match &self.nvidia_smi {
                Some(program) => self.gpus(program).await,
                None => Vec::new(),
            };
            let queues = self.queues().await;
            let sample = HostSample {
                at_ms: now_ms(),
                gpus,
                cpu_pct,
                cpus: std::thread::available_parallelism().map_or(1, usize::from),
                ram_used_bytes,
                ram_total_bytes,
                volume: volume(&self.volume),
                comfyui: queues
                    .first()
                    .filter(|queue| queue.slot == SlotIndex(0))
                    .map(|queue| queue.queue),
                queues,
            };
            self.history.record(sample);
        }
    }

    async fn gpus(&self, program: &Path) -> Vec<GpuSample> {
        let mut command = Command::new(program);
        command.args(GPU_QUERY);
        let Ok(mut spawned) = self.reaper.spawn(command) else {
            return Vec::new();
        };
        let mut stdout = String::new();
        let read = tokio::time::timeout(NVIDIA_SMI_TIMEOUT, async {
            let _ = spawned.stdout.read_to_string(&mut stdout).await;
            (&mut spawned.exited).await
        })
        .await;
        match read {
            Ok(Ok(Termination::Exited { code: 0 })) => parse_gpus(&stdout),
            Ok(_) => Vec::new(),
            Err(_) => {
                spawned.group.signal(Signal::SIGKILL);
                Vec::new()
            }
        }
    }

    /// Every ready slot's queue, asked of all of them at once: a slow ComfyUI delays the
    /// sample by its own answer only.
    async fn queues(&self) -> Vec<SlotQueue> {
        let status = self.control.status();
        let asks = status
            .slots
            .iter()
            .filter(|slot| matches!(slot.comfyui.state, ServiceState::Ready { .. }))
            .map(|slot| {
                let base = super::probe::local_base(self.listen, slot.port);
                let client = &self.client;
                async move {
                    let queue = super::probe::queue(client, &base).await?;
                    Some(SlotQueue {
                        slot: slot.slot,
                        queue,
                    })
                }
            });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// nvidia-smi's lines for `GPU_QUERY`: `0, NVIDIA GeForce RTX 4090, 37, 1234, 24564, 45,
/// 120.53, 450.00`; `[N/A]` or an empty field is `None`, a line that is not a GPU is skipped.
pub fn parse_gpus(stdout: &str) -> Vec<GpuSample> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [index, name, utilization, used, total, temperature, power, limit] =
                fields.as_slice()
            else {
                return None;
            };
            fn number<T: std::str::FromStr>(field: &str) -> Option<T> {
                field.parse().ok()
            }
            Some(GpuSample {
                index: number(index)?,
                name: (*name).to_owned(),
                utilization_pct: number(utilization),
                memory_used_mib: number(used),
                memory_total_mib: number(total),
                temperature_c: number(temperature),
                power_w: number(power),
                power_limit_w: number(limit),
            })
        })
        .collect()
}

/// Busy and total jiffies of all CPUs, from the first line of /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

fn cpu_times(proc_root: &Path) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map_while(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

fn cpu_percent(before: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now
        .total
        .checked_sub(before.total)
        .filter(|total| *total > 0)?;
    let busy = now.busy.saturating_sub(before.busy);
    #[allow(clippy::cast_precision_loss)] // jiffies between two samples
    let percent = busy as f64 * 100.0 / total as f64;
    Some((percent * 10.0).round() / 10.0)
}

/// RAM in use (total less available) and the total, from /proc/meminfo.
fn ram(proc_root: &Path) -> (Option<u64>, Option<u64>) {
    let Ok(meminfo) = std::fs::read_to_string(proc_root.join("meminfo")) else {
        return (None, None);
    };
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|value| value * 1024)
    };
    let total = kib("MemTotal:");
    let available = kib("MemAvailable:");
    let used = total.zip(available).map(|(t, a)| t.saturating_sub(a));
    (used, total)
}

fn volume(path: &Path) -> Option<VolumeSample> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    let unit = stat.fragment_size();
    let total_bytes = stat.blocks().saturating_mul(unit);
    let free_bytes = stat.blocks_available().saturating_mul(unit);
    let used_bytes = total_bytes.saturating_sub(stat.blocks_free().saturating_mul(unit));
    Some(VolumeSample {
        path: path.to_owned(),
        used_bytes,
        free_bytes,
        total_bytes,
        low: is_low(free_bytes, total_bytes),
    })
}

fn is_low(free_bytes: u64, total_bytes: u64) -> bool {
    free_bytes < LOW_FREE_BYTES || free_bytes.saturating_mul(100) < total_bytes * LOW_FREE_PERCENT
}

impl VolumeSample {
    /// The warning the status carries while the volume is nearly full.
    pub fn warning(&self) -> Option<String> {
        if !self.low {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // a message
        let (free, used_pct) = (
            self.free_bytes as f64 / f64::from(1u32 << 30),
            self.used_bytes as f64 * 100.0 / self.total_bytes.max(1) as f64,
        );
        Some(format!(
            "The volume {} is {used_pct:.0}% full ({free:.1} GiB free): outputs and downloads fail once it is full; delete old outputs or grow the volume",
            self.path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nvidia_smis_sample_lines() {
        let gpus = parse_gpus(
            "0, NVIDIA GeForce RTX 4090, 37, 1234, 24564, 45, 120.53, 450.00\n\
             1, NVIDIA GeForce RTX 3090, [N/A], 1, 24576, 30, [N/A], [N/A]\n\
             garbage\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].utilization_pct, Some(37));
        assert_eq!(gpus[0].memory_used_mib, Some(1234));
        assert_eq!(gpus[0].power_w, Some(120.53));
        assert_eq!(gpus[1].utilization_pct, None);
        assert_eq!(gpus[1].power_limit_w, None);
        assert_eq!(gpus[1].temperature_c, Some(30));
    }

    #[test]
    fn cpu_and_ram_from_proc() {
        let proc_root = tempfile::tempdir().unwrap();
        let stat = |line: &str| std::fs::write(proc_root.path().join("stat"), line).unwrap();
        stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n");
        let before = cpu_times(proc_root.path()).unwrap();
        stat("cpu  200 0 200 1300 100 0 0 0 0 0\n");
        let now = cpu_times(proc_root.path()).unwrap();
        assert_eq!(cpu_percent(before, now), Some(25.0));
        std::fs::write(
            proc_root.path().join("meminfo"),
            "MemTotal:       32000 kB\nMemFree:  1000 kB\nMemAvailable:   8000 kB\n",
        )
        .unwrap();
        assert_eq!(
            ram(proc_root.path()),
            (Some(24000 * 1024), Some(32000 * 1024))
        );
    }

    #[test]
    fn a_volume_is_low_below_a_tenth_or_five_gib_free() {
        assert!(is_low(4 << 30, 1000 << 30));
        assert!(is_low(50 << 30, 1000 << 30));
        assert!(!is_low(200 << 30, 1000 << 30));
        let sample = VolumeSample {
            path: PathBuf::from("/workspace"),
            used_bytes: 95 << 30,
            free_bytes: 5 << 29,
            total_bytes: 100 << 30,
            low: true,
        };
        assert_eq!(
            sample.warning().unwrap(),
            "The volume /workspace is 95% full (2.5 GiB free): outputs and downloads fail once it is full; delete old outputs or grow the volume"
        );
    }

    #[test]
    fn keeps_one_hour_of_samples_whatever_the_interval() {
        for (every, kept) in [(5, 720_u64), (60, 60), (7200, 1)] {
            let history = HostHistory::new(Duration::from_secs(every));
            for at_ms in 1..=(kept + 5) {
                history.record(HostSample {
                    at_ms,
                    gpus: Vec::new(),
                    cpu_pct: None,
                    cpus: 1,
                    ram_used_bytes: None,
                    ram_total_bytes: None,
                    volume: None,
                    comfyui: None,
                    queues: Vec::new(),
                });
            }
            let all = history.since(0);
            assert_eq!(all.len() as u64, kept, "every {every} s");
            assert_eq!(all[0].at_ms, 6);
            assert_eq!(history.latest().unwrap().at_ms, kept + 5);
        }
    }
}
