//! Attention kernel wheels (SageAttention, FlashAttention) and the GPU archs their kernels run
//! on: which build-time GPU targets they leave uncovered, and whether a GPU at run time can
//! use them.

use pep440_rs::{Version, VersionSpecifiers};
use serde::Deserialize;

use super::{normalize_name, public, Compat};
use crate::version::{CudaVersion, GpuArch};

/// A kernel wheel series (`sageattention ==2.2.0.*`) and the archs its kernels run on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelWheel {
    /// The package name, PEP 503 normalized (`flash-attn`).
    pub name: String,
    /// The versions the row describes.
    pub versions: VersionSpecifiers,
    /// Packages it imports at run time besides torch (`triton`).
    pub requires: Vec<String>,
    /// The exact archs with kernels, lowest first; any other arch is refused.
    pub archs: Vec<KernelArch>,
    pub source: String,
}

/// An arch a kernel wheel runs on, and the lowest CUDA it must be built with for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelArch {
    pub arch: GpuArch,
    pub min_cuda: CudaVersion,
}

/// Whether a kernel wheel runs on a GPU arch with a given CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchSupport {
    /// It has kernels for the arch and the CUDA is new enough.
    Supported,
    /// It has no kernels for the arch at all.
    NoKernels,
    /// It has kernels for the arch only when built with at least this CUDA.
    NeedsCuda(CudaVersion),
}

impl ArchSupport {
    /// Whether the kernels run.
    pub fn is_supported(self) -> bool {
        self == Self::Supported
    }
}

impl KernelWheel {
    /// Whether the row describes this package and version (a local part is ignored).
    pub fn describes(&self, name: &str, version: &Version) -> bool {
        normalize_name(name) == self.name && self.versions.contains(&public(version))
    }

    /// Whether its kernels run on `arch` when built with `cuda`.
    pub fn support(&self, arch: GpuArch, cuda: CudaVersion) -> ArchSupport {
        match self.archs.iter().find(|a| a.arch == arch) {
            None => ArchSupport::NoKernels,
            Some(a) if cuda < a.min_cuda => ArchSupport::NeedsCuda(a.min_cuda),
            Some(_) => ArchSupport::Supported,
        }
    }

    /// The targets its kernels do not run on with `cuda`, in the order given.
    pub fn uncovered(&self, targets: &[GpuArch], cuda: CudaVersion) -> Vec<GpuArch> {
        targets
            .iter()
            .copied()
            .filter(|&target| !self.support(target, cuda).is_supported())
            .collect()
    }
}

impl Compat {
    /// The row for a kernel wheel, if podstack knows its archs.
    pub fn kernel(&self, name: &str, version: &Version) -> Option<&KernelWheel> {
        self.kernels.iter().find(|k| k.describes(name, version))
    }

    /// The GPU targets a kernel wheel has no usable kernels for, so the caller can warn that
    /// the attention policy falls back there; `None` when podstack does not know its archs.
    pub fn kernel_coverage(
        &self,
        name: &str,
        version: &Version,
        targets: &[GpuArch],
        cuda: CudaVersion,
    ) -> Option<Vec<GpuArch>> {
        self.kernel(name, version)
            .map(|kernel| kernel.uncovered(targets, cuda))
    }

    /// Whether an installed kernel wheel runs on the GPU at hand; `None` when podstack does
    /// not know its archs.
    pub fn kernel_support(
        &self,
        name: &str,
        version: &Version,
        arch: GpuArch,
        cuda: CudaVersion,
    ) -> Option<ArchSupport> {
        self.kernel(name, version)
            .map(|kernel| kernel.support(arch, cuda))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn arch(text: &str) -> GpuArch {
        text.parse().unwrap()
    }

    fn cuda(text: &str) -> CudaVersion {
        text.parse().unwrap()
    }

    #[test]
    fn finds_kernel_rows_by_normalized_name_and_version_series() {
        let compat = Compat::embedded();
        let cases = [
            ("sageattention", "2.2.0", true),
            ("sageattention", "2.2.0.post4", true),
            ("SageAttention", "2.2.0.post3+cu128torch2.8.0", true),
            ("sageattention", "2.1.1", false),
            ("sageattention", "1.0.6", false),
            ("flash_attn", "2.8.3", true),
            ("flash-attn", "2.8.0.post2", true),
            ("flash_attn", "2.7.4", false),
            ("xformers", "0.0.32.post2", false),
        ];
        for (name, version, known) in cases {
            assert_eq!(
                compat.kernel(name, &v(version)).is_some(),
                known,
                "{name} {version}"
            );
        }
    }

    #[test]
    fn sage_leaves_blackwell_datacenter_and_turing_uncovered() {
        let compat = Compat::embedded();
        let targets = ["7.5", "8.6", "8.9", "9.0", "10.0", "12.0"].map(arch);
        let uncovered = compat
            .kernel_coverage("sageattention", &v("2.2.0.post4"), &targets, cuda("12.9"))
            .unwrap();
        assert_eq!(uncovered, [arch("7.5"), arch("10.0")]);
        assert_eq!(
            compat.kernel_coverage("unknown-kernel", &v("1.0"), &targets, cuda("12.9")),
            None
        );
    }

    #[test]
    fn sage_needs_a_recent_cuda_for_newer_archs() {
        let compat = Compat::embedded();
        let sage = |a: &str, c: &str| {
            compat
                .kernel_support("sageattention", &v("2.2.0.post4"), arch(a), cuda(c))
                .unwrap()
        };
        let cases = [
            ("8.0", "12.0", ArchSupport::Supported),
            ("8.6", "12.8", ArchSupport::Supported),
            ("8.9", "12.4", ArchSupport::Supported),
            ("8.9", "12.3", ArchSupport::NeedsCuda(cuda("12.4"))),
            ("9.0", "12.3", ArchSupport::Supported),
            ("9.0", "12.2", ArchSupport::NeedsCuda(cuda("12.3"))),
            ("12.0", "12.8", ArchSupport::Supported),
            ("12.0", "12.6", ArchSupport::NeedsCuda(cuda("12.8"))),
            ("10.0", "12.9", ArchSupport::NoKernels),
            ("7.5", "12.9", ArchSupport::NoKernels),
        ];
        for (a, c, support) in cases {
            assert_eq!(sage(a, c), support, "sm {a} cuda {c}");
        }
        let uncovered = compat
            .kernel_coverage("sageattention", &v("2.2.0"), &[arch("12.0")], cuda("12.6"))
            .unwrap();
        assert_eq!(uncovered, [arch("12.0")]);
    }

    #[test]
    fn flash_attn_covers_ampere_ada_and_hopper() {
        let compat = Compat::embedded();
        let targets = ["7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"].map(arch);
        let uncovered = compat
            .kernel_coverage("flash_attn", &v("2.8.3"), &targets, cuda("12.8"))
            .unwrap();
        assert_eq!(uncovered, [arch("7.5"), arch("10.0"), arch("12.0")]);
    }

    #[test]
    fn sage_needs_triton() {
        let sage = Compat::embedded()
            .kernel("sageattention", &v("2.2.0.post4"))
            .unwrap();
        assert_eq!(sage.requires, ["triton"]);
    }
}
