//! The pod's ComfyUI slots: how `runtime.slots` and the GPU probe become N ComfyUIs, each with
//! its own port (`runtime.comfyui_port + N`) and its own GPUs, serving one user at a time.
//! One GPU per slot by default; a slot count below the GPUs gives each slot several, one
//! above shares GPUs between slots as long as each slot keeps [`MIN_SLOT_VRAM_MIB`].

use std::fmt;

use serde::Serialize;

use super::gpu::{Device, Gpu, GpuProbe};
use crate::manifest::SlotCount;

/// The least VRAM a slot is given when slots share a GPU: SDXL at fp16 runs in 8 GiB.
pub const MIN_SLOT_VRAM_MIB: u64 = 8 * 1024;

/// A slot's number: 0 is the first ComfyUI, on `runtime.comfyui_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SlotIndex(pub u8);

impl fmt::Display for SlotIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where one slot's ComfyUI runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotPlan {
    pub index: SlotIndex,
    pub port: u16,
    /// Its GPUs, lowest index first; empty in CPU mode.
    pub gpus: Vec<Gpu>,
    /// Whether the slot must be told its GPUs: false when it sees every GPU of the pod (a
    /// one-GPU pod, or one slot), where ComfyUI's default `cuda:0` is already right.
    #[serde(skip)]
    pub select: bool,
}

/// How a ComfyUI is told which GPUs are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSelection {
    /// Every GPU of the pod: nothing to say.
    All,
    /// `--cuda-device N`: ComfyUI sets `CUDA_VISIBLE_DEVICES=N` itself.
    CudaDevice(u32),
    /// Several GPUs: `CUDA_VISIBLE_DEVICES=a,b`, since `--cuda-device` takes one.
    Visible(String),
}

impl SlotPlan {
    /// What the slot's ComfyUI computes on: its first GPU (`cuda:0` in the process), or the CPU.
    pub fn device(&self) -> Device {
        self.gpus
            .first()
            .map_or(Device::Cpu, |gpu| Device::Gpu(gpu.clone()))
    }

    pub fn selection(&self) -> GpuSelection {
        match &self.gpus[..] {
            _ if !self.select => GpuSelection::All,
            [] => GpuSelection::All,
            [gpu] => GpuSelection::CudaDevice(gpu.index),
            several => GpuSelection::Visible(
                several
                    .iter()
                    .map(|gpu| gpu.index.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

/// The slots for `count` on the GPUs `probe` found, the first on `base_port`, with a warning
/// for each slot asked for and not run.
pub fn plan(count: SlotCount, probe: &GpuProbe, base_port: u16) -> (Vec<SlotPlan>, Vec<String>) {
    let gpus = &probe.gpus;
    let mut warnings = Vec::new();
    let asked = match count {
        SlotCount::PerGpu => gpus.len().max(1),
        SlotCount::Fixed(count) => usize::from(count.get()),
    };
    let fits = if gpus.is_empty() {
        asked
    } else {
        sharing_fits(gpus, asked)
    };
    if fits < asked {
        warnings.push(format!(
            "runtime.slots = {count} asks for {asked} ComfyUIs, but {} cannot give each of them {} GiB of VRAM: running {fits}",
            gpu_summary(gpus),
            MIN_SLOT_VRAM_MIB / 1024
        ));
    }
    let ports = (0..fits).map_while(|index| {
        let port = base_port.checked_add(u16::try_from(index).ok()?)?;
        Some((u8::try_from(index).ok()?, port))
    });
    let slots: Vec<SlotPlan> = ports
        .map(|(index, port)| SlotPlan {
            index: SlotIndex(index),
            port,
            gpus: gpus_of(gpus, fits, usize::from(index)),
            select: fits > 1 && gpus.len() > 1,
        })
        .collect();
    if slots.len() < fits {
        warnings.push(format!(
            "only {} ComfyUIs fit below port 65535 from runtime.comfyui_port {base_port}",
            slots.len()
        ));
    }
    (slots, warnings)
}

/// Whether a browser can open `slot`'s ComfyUI: on RunPod (`runpod`) only the ports of the
/// first `published` slots, which the pod's template lists, are served by RunPod's proxy;
/// elsewhere every port is the pod's own.
pub fn is_published(slot: SlotIndex, runpod: bool, published: u16) -> bool {
    !runpod || u16::from(slot.0) < published
}

/// A warning for each slot of a RunPod pod (`runpod`) beyond the `published` ones whose ports
/// the pod's template lists: RunPod's proxy serves only those, so the slot's ComfyUI cannot be
/// opened. Only a `"per-gpu"` pod rented with more GPUs than `deploy.gpus_per_pod` runs such
/// slots.
pub fn unpublished(slots: &[SlotPlan], runpod: bool, published: u16) -> Vec<String> {
    slots
        .iter()
        .filter(|slot| !is_published(slot.index, runpod, published))
        .map(|slot| {
            format!(
                "Slot {}'s ComfyUI (port {}) cannot be reached through RunPod's proxy: the pod's template publishes the ComfyUI ports of {published} slot(s) and this pod runs {} (one per GPU). Set deploy.gpus_per_pod = {} (the GPUs these pods are rented with), run podstack build and update the RunPod template",
                slot.index,
                slot.port,
                slots.len(),
                slots.len(),
            )
        })
        .collect()
}

/// The slots of `all` that run on any of `plan`'s GPUs, `plan`'s own included, when there is
/// more than it; none when its GPUs are its own (or it runs on the CPU).
pub fn shared_by<'a>(
    all: impl IntoIterator<Item = &'a SlotPlan>,
    plan: &SlotPlan,
) -> Vec<SlotIndex> {
    let sharing: Vec<SlotIndex> = all
        .into_iter()
        .filter(|other| {
            other
                .gpus
                .iter()
                .any(|gpu| plan.gpus.iter().any(|mine| mine.index == gpu.index))
        })
        .map(|other| other.index)
        .collect();
    if sharing.len() > 1 {
        sharing
    } else {
        Vec::new()
    }
}

/// Slot `index` of `slots`: a share of the GPUs when there are fewer slots than GPUs, one
/// GPU (maybe shared) otherwise.
fn gpus_of(gpus: &[Gpu], slots: usize, index: usize) -> Vec<Gpu> {
    if gpus.is_empty() {
        return Vec::new();
    }
    if slots >= gpus.len() {
        return vec![gpus[index % gpus.len()].clone()];
    }
    // The first `gpus % slots` slots take one GPU more.
    let (each, extra) = (gpus.len() / slots, gpus.len() % slots);
    let start = index * each + index.min(extra);
    let len = each + usize::from(index < extra);
    gpus[start..start + len].to_vec()
}

/// How many of `asked` slots fit on `gpus` with each sharing slot keeping its VRAM; a GPU
/// whose memory is unknown is taken at its word.
fn sharing_fits(gpus: &[Gpu], asked: usize) -> usize {
    (1..=asked)
        .rev()
        .find(|&slots| {
            slots <= gpus.len()
                || gpus.iter().enumerate().all(|(position, gpu)| {
                    let sharing = (0..slots)
                        .filter(|slot| slot % gpus.len() == position)
                        .count();
                    gpu.memory_mib.is_none_or(|mib| {
                        mib / u64::try_from(sharing.max(1)).unwrap_or(u64::MAX) >= MIN_SLOT_VRAM_MIB
                    })
                })
        })
        .unwrap_or(1)
}

fn gpu_summary(gpus: &[Gpu]) -> String {
    let names: Vec<String> = gpus
        .iter()
        .map(|gpu| match gpu.memory_mib {
            Some(mib) => format!("GPU {} ({}, {} GiB)", gpu.index, gpu.name, mib / 1024),
            None => format!("GPU {} ({})", gpu.index, gpu.name),
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU8;

    use super::*;

    fn gpus(count: u32, mib: u64) -> GpuProbe {
        GpuProbe {
            gpus: (0..count)
                .map(|index| Gpu {
                    index,
                    name: "NVIDIA GeForce RTX 4090".to_owned(),
                    arch: "8.9".parse().ok(),
                    memory_mib: Some(mib),
                    driver: None,
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    fn fixed(count: u8) -> SlotCount {
        SlotCount::Fixed(NonZeroU8::new(count).unwrap())
    }

    fn layout(slots: &[SlotPlan]) -> Vec<(u16, Vec<u32>, GpuSelection)> {
        slots
            .iter()
            .map(|slot| {
                (
                    slot.port,
                    slot.gpus.iter().map(|gpu| gpu.index).collect(),
                    slot.selection(),
                )
            })
            .collect()
    }

    #[test]
    fn a_one_gpu_pod_has_one_slot_that_sees_its_gpu_as_today() {
        let (slots, warnings) = plan(SlotCount::PerGpu, &gpus(1, 24564), 8188);
        assert_eq!(layout(&slots), [(8188, vec![0], GpuSelection::All)]);
        assert!(warnings.is_empty());
        let (slots, _) = plan(SlotCount::PerGpu, &gpus(0, 0), 8188);
        assert_eq!(layout(&slots), [(8188, vec![], GpuSelection::All)]);
        assert_eq!(slots[0].device(), Device::Cpu);
    }

    #[test]
    fn per_gpu_gives_each_gpu_a_slot_on_the_next_port() {
        let (slots, _) = plan(SlotCount::PerGpu, &gpus(4, 24564), 8188);
        assert_eq!(
            layout(&slots),
            (0..4)
                .map(|i| (8188 + i as u16, vec![i], GpuSelection::CudaDevice(i)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fewer_slots_than_gpus_share_them_out() {
        let (slots, _) = plan(fixed(2), &gpus(4, 24564), 8188);
        assert_eq!(
            layout(&slots),
            [
                (8188, vec![0, 1], GpuSelection::Visible("0,1".into())),
                (8189, vec![2, 3], GpuSelection::Visible("2,3".into())),
            ]
        );
        let (slots, _) = plan(fixed(1), &gpus(4, 24564), 8188);
        assert_eq!(
            layout(&slots),
            [(8188, vec![0, 1, 2, 3], GpuSelection::All)]
        );
        let (slots, _) = plan(fixed(2), &gpus(3, 24564), 8188);
        assert_eq!(
            layout(&slots),
            [
                (8188, vec![0, 1], GpuSelection::Visible("0,1".into())),
                (8189, vec![2], GpuSelection::CudaDevice(2)),
            ]
        );
    }

    #[test]
    fn slots_share_a_gpu_only_while_each_keeps_its_vram() {
        let (slots, warnings) = plan(fixed(2), &gpus(1, 24564), 8188);
        assert_eq!(
            layout(&slots),
            [
                (8188, vec![0], GpuSelection::All),
                (8189, vec![0], GpuSelection::All)
            ]
        );
        assert!(warnings.is_empty());
        let (slots, warnings) = plan(fixed(4), &gpus(1, 24564), 8188);
        assert_eq!(
            slots.len(),
            2,
            "24564 MiB holds two slots of 8 GiB, not three"
        );
        assert_eq!(
            warnings,
            ["runtime.slots = 4 asks for 4 ComfyUIs, but GPU 0 (NVIDIA GeForce RTX 4090, 23 GiB) cannot give each of them 8 GiB of VRAM: running 2"]
        );
        let (slots, _) = plan(fixed(8), &gpus(4, 81559), 8188);
        assert_eq!(slots.len(), 8);
        assert_eq!(slots[5].gpus[0].index, 1);
        assert_eq!(slots[5].selection(), GpuSelection::CudaDevice(1));
    }

    #[test]
    fn slots_on_one_gpu_name_each_other() {
        let (slots, _) = plan(fixed(4), &gpus(2, 24564), 8188);
        let sharing: Vec<Vec<SlotIndex>> =
            slots.iter().map(|slot| shared_by(&slots, slot)).collect();
        assert_eq!(
            sharing,
            [
                vec![SlotIndex(0), SlotIndex(2)],
                vec![SlotIndex(1), SlotIndex(3)],
                vec![SlotIndex(0), SlotIndex(2)],
                vec![SlotIndex(1), SlotIndex(3)],
            ]
        );
        let (slots, _) = plan(SlotCount::PerGpu, &gpus(4, 24564), 8188);
        assert!(slots.iter().all(|slot| shared_by(&slots, slot).is_empty()));
        let (slots, _) = plan(fixed(2), &gpus(0, 0), 8188);
        assert!(
            shared_by(&slots, &slots[0]).is_empty(),
            "CPU slots share no GPU"
        );
    }

    #[test]
    fn slots_beyond_the_published_ports_are_named_with_the_fix() {
        let (slots, _) = plan(SlotCount::PerGpu, &gpus(4, 24564), 8188);
        let warnings = unpublished(&slots, true, 2);
        assert_eq!(
            warnings,
            [
                "Slot 2's ComfyUI (port 8190) cannot be reached through RunPod's proxy: the pod's template publishes the ComfyUI ports of 2 slot(s) and this pod runs 4 (one per GPU). Set deploy.gpus_per_pod = 4 (the GPUs these pods are rented with), run podstack build and update the RunPod template",
                "Slot 3's ComfyUI (port 8191) cannot be reached through RunPod's proxy: the pod's template publishes the ComfyUI ports of 2 slot(s) and this pod runs 4 (one per GPU). Set deploy.gpus_per_pod = 4 (the GPUs these pods are rented with), run podstack build and update the RunPod template",
            ]
        );
        assert!(unpublished(&slots, true, 4).is_empty());
        assert!(unpublished(&slots, true, 8).is_empty());
        // Off RunPod every port is the pod's own.
        assert!(unpublished(&slots, false, 2).is_empty());
    }

    #[test]
    fn cpu_pods_run_the_slots_asked_for() {
        let (slots, warnings) = plan(fixed(3), &gpus(0, 0), 8188);
        assert_eq!(slots.len(), 3);
        assert!(slots
            .iter()
            .all(|slot| slot.selection() == GpuSelection::All));
        assert!(warnings.is_empty());
    }
}
