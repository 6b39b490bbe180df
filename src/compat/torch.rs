//! torch releases and their CUDA builds: which exist, for which Python, with which
//! torchvision/torchaudio/triton, compiled for which GPU archs, on which base CUDA, and where
//! PyTorch publishes them (`PYTORCH_INDEX`, which the lock and the render both read).

use std::fmt;

use pep440_rs::Version;
use serde::Deserialize;

use super::{normalize_name, or_list, public, version_list, Compat};
use crate::problem::Problem;
use crate::version::{CudaVersion, GpuArch, PythonVersion};

/// Where the PyTorch wheel indexes live, one per CUDA variant.
pub const PYTORCH_INDEX: &str = "https://download.pytorch.org/whl";

/// One torch release (`2.8.0`) and the CUDA builds it was published in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchRelease {
    pub version: Version,
    /// The CPython versions it has wheels for.
    pub python: PythonRange,
    /// The CUDA of the build plain `pip install torch==X` gets from PyPI.
    pub pypi_default: CudaVersion,
    pub torchvision: Version,
    pub torchaudio: Version,
    /// The triton torch pins on Linux x86_64, where known.
    pub triton: Option<Version>,
    #[serde(rename = "build")]
    pub builds: Vec<TorchBuild>,
    pub source: String,
}

/// One CUDA build of a torch release (`cu129`) and the GPU archs compiled into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchBuild {
    pub cuda: CudaVersion,
    /// Compute capabilities with kernels in the build, lowest first.
    pub archs: Vec<GpuArch>,
    pub source: String,
}

/// An inclusive range of CPython versions: `3.9-3.13`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonRange {
    pub min: PythonVersion,
    pub max: PythonVersion,
}

/// A package released in lockstep with torch, pinned to one version per torch release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Companion {
    Torchvision,
    Torchaudio,
    Triton,
}

impl PythonRange {
    /// Whether `python` is within the range.
    pub fn contains(self, python: PythonVersion) -> bool {
        (self.min..=self.max).contains(&python)
    }
}

impl fmt::Display for PythonRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl Companion {
    /// Every companion, in the order a requirements file lists them.
    pub const ALL: [Companion; 3] = [Self::Torchvision, Self::Torchaudio, Self::Triton];

    /// The package name: `torchvision`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Torchaudio => "torchaudio",
            Self::Triton => "triton",
        }
    }

    /// The companion a package name means, if any (`TorchVision` -> torchvision).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = normalize_name(name);
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Companion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TorchRelease {
    /// The build for a CUDA version, if torch was published for it.
    pub fn build(&self, cuda: CudaVersion) -> Option<&TorchBuild> {
        self.builds.iter().find(|b| b.cuda == cuda)
    }

    /// The build PyPI serves as plain `torch==X`.
    pub fn pypi_default_build(&self) -> Option<&TorchBuild> {
        self.build(self.pypi_default)
    }

    /// The version of a companion that goes with this release, where known.
    pub fn companion(&self, companion: Companion) -> Option<&Version> {
        match companion {
            Companion::Torchvision => Some(&self.torchvision),
            Companion::Torchaudio => Some(&self.torchaudio),
            Companion::Triton => self.triton.as_ref(),
        }
    }

    /// The CUDA variants it was published for: `cu126`, `cu128`, `cu129`.
    pub fn variants(&self) -> Vec<String> {
        self.builds.iter().map(TorchBuild::variant).collect()
    }

    /// Checks that the base image's CUDA is at least the one `build` was made for.
    pub fn check_base_cuda(
        &self,
        key: &str,
        build: &TorchBuild,
        base: CudaVersion,
    ) -> Result<(), Problem> {
        if base >= build.cuda {
            return Ok(());
        }
        let older: Vec<String> = self
            .builds
            .iter()
            .filter(|b| b.cuda <= base)
            .map(TorchBuild::variant)
            .collect();
        let mut hint = format!("use a base image with CUDA {} or later", build.cuda);
        if !older.is_empty() {
            hint += &format!(
                ", or a torch {} build for CUDA {base} or older: {}",
                self.version,
                or_list(&older)
            );
        }
        Err(Problem::error(
            key,
            format!(
                "the base image has CUDA {base}, older than the CUDA {} that torch {}+{} is built for",
                build.cuda,
                self.version,
                build.variant()
            ),
        )
        .with_hint(hint))
    }
}

impl TorchBuild {
    /// The torch name of the build: `cu129`.
    pub fn variant(&self) -> String {
        self.cuda.torch_variant()
    }

    /// Whether the build runs on GPUs of compute capability `target`. CUDA code built for
    /// X.Y runs on X.Z for every Z >= Y, which is how an 8.9 GPU runs torch's 8.6 kernels.
    pub fn covers(&self, target: GpuArch) -> bool {
        self.archs
            .iter()
            .any(|arch| arch.major == target.major && arch.minor <= target.minor)
    }
}

impl Compat {
    /// The release for a torch version (a local part such as `+cu129` is ignored), or an error
    /// listing the known ones.
    pub fn torch_release(&self, key: &str, version: &Version) -> Result<&TorchRelease, Problem> {
        let wanted = public(version);
        self.torch
            .iter()
            .find(|r| r.version == wanted)
            .ok_or_else(|| {
                Problem::error(
                    key,
                    format!("torch {wanted} is not in podstack's compatibility data"),
                )
                .with_hint(format!(
                    "known torch versions: {}; a newer release can be added to \
                     src/compat/data/torch.toml",
                    version_list(self.torch.iter().map(|r| &r.version))
                ))
            })
    }

    /// The build of `release` for a CUDA version, or an error naming the variants that exist.
    pub fn torch_build<'a>(
        &self,
        key: &str,
        release: &'a TorchRelease,
        cuda: CudaVersion,
    ) -> Result<&'a TorchBuild, Problem> {
        release.build(cuda).ok_or_else(|| {
            let variant = cuda.torch_variant();
            let mut hint = format!(
                "torch {} exists for {}",
                release.version,
                release.variants().join(", ")
            );
            let elsewhere: Vec<&Version> = self
                .torch
                .iter()
                .filter(|r| r.build(cuda).is_some())
                .map(|r| &r.version)
                .collect();
            if !elsewhere.is_empty() {
                hint += &format!(
                    "; {variant} builds exist for torch {}",
                    version_list(elsewhere)
                );
            }
            Problem::error(
                key,
                format!(
                    "torch {} was not published for CUDA {cuda} ({variant})",
                    release.version
                ),
            )
            .with_hint(hint)
        })
    }

    /// Checks that `release` has wheels for CPython `python`.
    pub fn check_python(
        &self,
        key: &str,
        release: &TorchRelease,
        python: PythonVersion,
    ) -> Result<(), Problem> {
        if release.python.contains(python) {
            return Ok(());
        }
        let others: Vec<String> = self
            .torch
            .iter()
            .filter(|r| r.python.contains(python))
            .map(|r| r.version.to_string())
            .collect();
        let alternative = if others.is_empty() {
            format!("; no torch release podstack knows supports Python {python}")
        } else {
            format!(", or torch {} for Python {python}", or_list(&others))
        };
        Err(Problem::error(
            key,
            format!(
                "torch {} supports Python {}, not {python}",
                release.version, release.python
            ),
        )
        .with_hint(format!("use Python {}{alternative}", release.python)))
    }

    /// Checks that a companion pin (`torchvision==0.23.0`) is the one that goes with `release`.
    /// A companion whose pin is not known (triton on some releases) passes.
    pub fn check_companion(
        &self,
        key: &str,
        release: &TorchRelease,
        companion: Companion,
        version: &Version,
    ) -> Result<(), Problem> {
        let Some(expected) = release.companion(companion) else {
            return Ok(());
        };
        let pinned = public(version);
        if pinned == public(expected) {
            return Ok(());
        }
        let home = self
            .torch
            .iter()
            .find(|r| r.companion(companion).map(public).as_ref() == Some(&pinned))
            .map(|r| format!(" (it goes with torch {})", r.version))
            .unwrap_or_default();
        Err(Problem::error(
            key,
            format!(
                "{companion} {pinned} does not go with torch {}{home}",
                release.version
            ),
        )
        .with_hint(format!(
            "torch {} goes with {companion} {expected}",
            release.version
        )))
    }

    /// One error per GPU target that `build` has no kernels for, naming the builds that do.
    pub fn check_gpu_targets(
        &self,
        key: &str,
        release: &TorchRelease,
        build: &TorchBuild,
        targets: &[GpuArch],
    ) -> Vec<Problem> {
        targets
            .iter()
            .filter(|&&target| !build.covers(target))
            .map(|&target| {
                let covering = |r: &TorchRelease| -> Vec<String> {
                    r.builds
                        .iter()
                        .filter(|b| b.covers(target))
                        .map(TorchBuild::variant)
                        .collect()
                };
                let here = covering(release);
                let hint = if !here.is_empty() {
                    format!("use {}, or drop {target} from the targets", or_list(&here))
                } else if let Some(first) = self
                    .torch
                    .iter()
                    .filter(|r| !covering(r).is_empty())
                    .min_by(|a, b| a.version.cmp(&b.version))
                {
                    format!(
                        "no torch {} build covers {target}; torch {} with {} is the first that \
                         does, or drop {target} from the targets",
                        release.version,
                        first.version,
                        or_list(&covering(first))
                    )
                } else {
                    format!(
                        "no torch build podstack knows covers {target}; drop it from the targets"
                    )
                };
                Problem::error(
                    key,
                    format!(
                        "torch {}+{} has no kernels for GPU target {}",
                        release.version,
                        build.variant(),
                        self.arch_label(target)
                    ),
                )
                .with_hint(hint)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn release(version: &str) -> &'static TorchRelease {
        Compat::embedded()
            .torch_release("torch.version", &v(version))
            .unwrap()
    }

    fn cuda(text: &str) -> CudaVersion {
        text.parse().unwrap()
    }

    fn arch(text: &str) -> GpuArch {
        text.parse().unwrap()
    }

    #[test]
    fn torch_version_cuda_and_python_must_exist_together() {
        let compat = Compat::embedded();
        let cases: &[(&str, &str, &str, bool)] = &[
            ("2.8.0", "12.9", "3.11", true),
            ("2.8.0+cu129", "12.9", "3.11", true),
            ("2.8.0", "12.8", "3.13", true),
            ("2.8.0", "12.6", "3.9", true),
            ("2.8.0", "12.4", "3.11", false),
            ("2.8.0", "12.9", "3.14", false),
            ("2.8.0", "12.9", "3.8", false),
            ("2.9.0", "13.0", "3.14", true),
            ("2.9.1", "12.9", "3.12", false),
            ("2.4.0", "12.4", "3.8", true),
            ("2.4.0", "12.6", "3.11", false),
            ("2.6.0", "12.6", "3.13", true),
            ("2.7.1", "12.8", "3.12", true),
            ("2.7.1", "12.9", "3.12", false),
        ];
        for &(version, cuda_version, python, ok) in cases {
            let release = compat.torch_release("torch.version", &v(version)).unwrap();
            let build = compat.torch_build("torch.cuda", release, cuda(cuda_version));
            let python = compat.check_python("base.python", release, python.parse().unwrap());
            assert_eq!(
                build.is_ok() && python.is_ok(),
                ok,
                "torch {version} cuda {cuda_version}: {build:?} {python:?}"
            );
        }
    }

    #[test]
    fn names_the_variants_a_release_exists_for() {
        let compat = Compat::embedded();
        let problem = compat
            .torch_build("torch.cuda", release("2.8.0"), cuda("12.4"))
            .unwrap_err();
        assert_eq!(problem.key, "torch.cuda");
        assert_eq!(
            problem.message,
            "torch 2.8.0 was not published for CUDA 12.4 (cu124)"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "torch 2.8.0 exists for cu126, cu128, cu129; \
                 cu124 builds exist for torch 2.4.0, 2.4.1, 2.5.0, 2.5.1, 2.6.0"
            )
        );
        let problem = compat
            .torch_build("torch.cuda", release("2.8.0"), cuda("11.0"))
            .unwrap_err();
        assert_eq!(
            problem.hint.as_deref(),
            Some("torch 2.8.0 exists for cu126, cu128, cu129")
        );
    }

    #[test]
    fn names_the_python_range() {
        let compat = Compat::embedded();
        let problem = compat
            .check_python("base.python", release("2.8.0"), "3.14".parse().unwrap())
            .unwrap_err();
        assert_eq!(problem.key, "base.python");
        assert_eq!(
            problem.message,
            "torch 2.8.0 supports Python 3.9-3.13, not 3.14"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some("use Python 3.9-3.13, or torch 2.9.0 or 2.9.1 for Python 3.14")
        );
        let problem = compat
            .check_python("base.python", release("2.8.0"), "3.20".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            problem.hint.as_deref(),
            Some("use Python 3.9-3.13; no torch release podstack knows supports Python 3.20")
        );
    }

    #[test]
    fn unknown_torch_lists_known_versions_and_the_data_file() {
        let problem = Compat::embedded()
            .torch_release("torch.version", &v("2.3.1"))
            .unwrap_err();
        assert_eq!(problem.key, "torch.version");
        assert_eq!(
            problem.message,
            "torch 2.3.1 is not in podstack's compatibility data"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "known torch versions: 2.4.0, 2.4.1, 2.5.0, 2.5.1, 2.6.0, 2.7.0, 2.7.1, 2.8.0, \
                 2.9.0, 2.9.1; a newer release can be added to src/compat/data/torch.toml"
            )
        );
    }

    #[test]
    fn knows_the_pypi_default_build() {
        let cases = [
            ("2.4.0", "cu121"),
            ("2.5.1", "cu124"),
            ("2.6.0", "cu124"),
            ("2.7.1", "cu126"),
            ("2.8.0", "cu128"),
            ("2.9.0", "cu128"),
        ];
        for (version, variant) in cases {
            let build = release(version).pypi_default_build().unwrap();
            assert_eq!(build.variant(), variant, "torch {version}");
        }
    }

    #[test]
    fn companions_must_match_the_release() {
        let compat = Compat::embedded();
        let cases: &[(&str, Companion, &str, bool)] = &[
            ("2.8.0", Companion::Torchvision, "0.23.0", true),
            ("2.8.0", Companion::Torchvision, "0.23.0+cu129", true),
            ("2.8.0", Companion::Torchaudio, "2.8.0", true),
            ("2.8.0", Companion::Triton, "3.4.0", true),
            ("2.8.0", Companion::Torchvision, "0.22.0", false),
            ("2.8.0", Companion::Torchaudio, "2.7.1", false),
            ("2.8.0", Companion::Triton, "3.3.1", false),
            ("2.7.0", Companion::Torchvision, "0.22.0", true),
            ("2.7.1", Companion::Torchvision, "0.22.1", true),
            ("2.9.1", Companion::Torchvision, "0.24.1", true),
            ("2.4.1", Companion::Torchaudio, "2.4.1", true),
        ];
        for &(torch, companion, version, ok) in cases {
            let outcome = compat.check_companion("torch.x", release(torch), companion, &v(version));
            assert_eq!(
                outcome.is_ok(),
                ok,
                "torch {torch} {companion} {version}: {outcome:?}"
            );
        }
        let problem = compat
            .check_companion(
                "torch.torchvision",
                release("2.8.0"),
                Companion::Torchvision,
                &v("0.22.0"),
            )
            .unwrap_err();
        assert_eq!(problem.key, "torch.torchvision");
        assert_eq!(
            problem.message,
            "torchvision 0.22.0 does not go with torch 2.8.0 (it goes with torch 2.7.0)"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some("torch 2.8.0 goes with torchvision 0.23.0")
        );
        assert_eq!(
            Companion::from_name("TorchVision"),
            Some(Companion::Torchvision)
        );
        assert_eq!(Companion::from_name("torch"), None);
    }

    #[test]
    fn gpu_targets_must_be_compiled_into_the_build() {
        let compat = Compat::embedded();
        let field_targets = ["8.6", "8.9", "9.0", "10.0", "12.0"].map(arch);
        let cases: &[(&str, &str, &[GpuArch], usize)] = &[
            ("2.8.0", "12.9", &field_targets, 0),
            ("2.8.0", "12.8", &field_targets, 0),
            ("2.8.0", "12.6", &field_targets, 2),
            ("2.8.0", "12.6", &[arch("8.9"), arch("7.5")], 0),
            ("2.8.0", "12.9", &[arch("6.0")], 1),
            ("2.4.0", "12.4", &[arch("12.0")], 1),
            ("2.7.0", "12.8", &[arch("7.0")], 1),
            ("2.9.0", "13.0", &[arch("11.0"), arch("12.0")], 0),
            ("2.9.0", "12.8", &[arch("11.0")], 1),
        ];
        for &(torch, cuda_version, targets, errors) in cases {
            let release = release(torch);
            let build = release.build(cuda(cuda_version)).unwrap();
            let problems = compat.check_gpu_targets("gpu.targets", release, build, targets);
            assert_eq!(
                problems.len(),
                errors,
                "torch {torch} cuda {cuda_version}: {problems:?}"
            );
        }
    }

    #[test]
    fn uncovered_targets_name_the_builds_that_cover_them() {
        let compat = Compat::embedded();
        let release_280 = release("2.8.0");
        let cu126 = release_280.build(cuda("12.6")).unwrap();
        let problems = compat.check_gpu_targets("gpu.targets", release_280, cu126, &[arch("12.0")]);
        assert_eq!(problems[0].key, "gpu.targets");
        assert_eq!(
            problems[0].message,
            "torch 2.8.0+cu126 has no kernels for GPU target 12.0 \
             (RTX 5090, RTX 5080, RTX PRO 6000 Blackwell)"
        );
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("use cu128 or cu129, or drop 12.0 from the targets")
        );

        let release_240 = release("2.4.0");
        let cu124 = release_240.build(cuda("12.4")).unwrap();
        let problems = compat.check_gpu_targets("gpu.targets", release_240, cu124, &[arch("12.0")]);
        assert_eq!(
            problems[0].hint.as_deref(),
            Some(
                "no torch 2.4.0 build covers 12.0; torch 2.7.0 with cu128 is the first that does, \
                 or drop 12.0 from the targets"
            )
        );
    }

    #[test]
    fn base_cuda_must_not_be_older_than_the_build() {
        let release = release("2.8.0");
        let cu129 = release.build(cuda("12.9")).unwrap();
        assert!(release
            .check_base_cuda("base.image", cu129, cuda("12.9"))
            .is_ok());
        assert!(release
            .check_base_cuda("base.image", cu129, cuda("13.0"))
            .is_ok());
        let problem = release
            .check_base_cuda("base.image", cu129, cuda("12.8"))
            .unwrap_err();
        assert_eq!(problem.key, "base.image");
        assert_eq!(
            problem.message,
            "the base image has CUDA 12.8, older than the CUDA 12.9 that torch 2.8.0+cu129 is built for"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "use a base image with CUDA 12.9 or later, or a torch 2.8.0 build for CUDA 12.8 \
                 or older: cu126 or cu128"
            )
        );
        let problem = release
            .check_base_cuda("base.image", cu129, cuda("12.4"))
            .unwrap_err();
        assert_eq!(
            problem.hint.as_deref(),
            Some("use a base image with CUDA 12.9 or later")
        );
    }
}
