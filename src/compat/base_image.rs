//! Base images as the checks see them: the distribution a tag names (its glibc, whether its
//! python3.X is a final release), the CUDA libraries an `nvidia/cuda` flavour installs that
//! torch's `nvidia-*` wheels bring again, and the environment that lets the NVIDIA container
//! runtime inject the driver into an image without CUDA. Facts in `data/bases.toml`.

use serde::Deserialize;

use super::{and_list, or_list, Compat};
use crate::problem::Problem;
use crate::version::{GlibcVersion, PythonVersion};

/// `src/compat/data/bases.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseFacts {
    distro: Vec<Distro>,
    recommended: Recommended,
    cuda_flavour: Vec<CudaFlavour>,
    driver: DriverEnvironment,
}

/// A distribution that base images are built on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    /// How image tags name it: `ubuntu22.04`, `bookworm`.
    tag: String,
    /// For people: `Debian 12 (bookworm)`.
    pub release: String,
    pub glibc: GlibcVersion,
    /// Its own python3.X packages; releases left out are unknown.
    #[serde(default)]
    python: Vec<DistroPython>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistroPython {
    version: PythonVersion,
    /// The package's Debian version, `3.11.2` or `3.11.0~rc1`.
    package: String,
}

impl DistroPython {
    /// Debian marks pre-releases with `~` (it sorts before the final release).
    fn is_prerelease(&self) -> bool {
        self.package.contains('~')
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recommended {
    image: String,
    #[allow(
        dead_code,
        reason = "the row's source, for readers of the data file (tested)"
    )]
    source: String,
}

/// An `nvidia/cuda` flavour (`cudnn-runtime`) and the CUDA libraries it installs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CudaFlavour {
    tag: String,
    libraries: Vec<String>,
    #[allow(
        dead_code,
        reason = "the row's source, for readers of the data file (tested)"
    )]
    source: String,
}

/// `NVIDIA_VISIBLE_DEVICES` and `NVIDIA_DRIVER_CAPABILITIES` of a GPU image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverEnvironment {
    pub visible_devices: String,
    pub capabilities: Vec<String>,
    pub source: String,
}

/// The flavour of an `nvidia/cuda:<version>-<flavour>-<distro>` tag.
fn cuda_flavour(image: &str) -> Option<&str> {
    let tag = image.strip_prefix("nvidia/cuda:")?;
    let (_version, rest) = tag.split_once('-')?;
    let (flavour, _distro) = rest.rsplit_once('-')?;
    Some(flavour)
}

impl Compat {
    /// The distribution an image tag names, if it is a known one.
    pub fn distro_of(&self, image: &str) -> Option<&Distro> {
        self.bases
            .distro
            .iter()
            .find(|distro| image.contains(&distro.tag))
    }

    /// What a GPU image sets so the NVIDIA container runtime injects the driver.
    pub fn driver_environment(&self) -> &DriverEnvironment {
        &self.bases.driver
    }

    /// The venv's CPython comes from the distribution's python3.X package: a pre-release there
    /// (jammy's python3.11 is 3.11.0~rc1) is refused.
    pub fn check_base_python(
        &self,
        key: &str,
        image: &str,
        python: PythonVersion,
    ) -> Result<(), Problem> {
        let Some(distro) = self.distro_of(image) else {
            return Ok(());
        };
        let Some(package) = distro
            .python
            .iter()
            .find(|package| package.version == python)
            .filter(|package| package.is_prerelease())
        else {
            return Ok(());
        };
        let finals: Vec<String> = self
            .bases
            .distro
            .iter()
            .filter_map(|other| {
                let final_release = other
                    .python
                    .iter()
                    .find(|p| p.version == python && !p.is_prerelease())?;
                Some(format!("{} ({})", other.release, final_release.package))
            })
            .collect();
        let mut hint = format!(
            "use a base image on a distribution with a final python{python}, e.g. `{}`",
            self.bases.recommended.image
        );
        if !finals.is_empty() {
            hint += &format!(": {}", or_list(&finals));
        }
        Err(Problem::error(
            key,
            format!(
                "`{image}` is {}, whose python{python} is {}, a pre-release",
                distro.release, package.package
            ),
        )
        .with_hint(hint))
    }

    /// An `nvidia/cuda` base under torch: its CUDA libraries are a second copy of the ones
    /// torch's `nvidia-*` wheels install, gigabytes every pod pulls.
    pub fn check_cuda_base_duplicates(&self, key: &str, image: &str) -> Result<(), Problem> {
        let Some(flavour) = cuda_flavour(image)
            .and_then(|tag| self.bases.cuda_flavour.iter().find(|f| f.tag == tag))
        else {
            return Ok(());
        };
        Err(Problem::warning(
            key,
            format!(
                "`{image}` installs {}, which torch's nvidia-* wheels install again",
                and_list(&flavour.libraries)
            ),
        )
        .with_hint(format!(
            "use a base without CUDA, e.g. `{}`: the NVIDIA container runtime injects the driver \
             (podstack sets NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES)",
            self.bases.recommended.image
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py311() -> PythonVersion {
        PythonVersion::new(3, 11)
    }

    #[test]
    fn reads_the_distribution_from_the_tag() {
        let compat = Compat::embedded();
        let glibc = |image: &str| compat.distro_of(image).map(|d| d.glibc);
        assert_eq!(
            glibc("nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04"),
            Some(GlibcVersion::new(2, 35))
        );
        assert_eq!(
            glibc("debian:bookworm-slim"),
            Some(GlibcVersion::new(2, 36))
        );
        assert_eq!(glibc("alpine:3.20"), None);
    }

    #[test]
    fn refuses_jammys_release_candidate_python() {
        let problem = Compat::embedded()
            .check_base_python(
                "base.image",
                "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04",
                py311(),
            )
            .unwrap_err();
        assert!(problem.is_error());
        assert_eq!(
            problem.to_string(),
            "`nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04` is Ubuntu 22.04 \
             (jammy), whose python3.11 is 3.11.0~rc1, a pre-release\n  hint: use a base image on \
             a distribution with a final python3.11, e.g. `debian:bookworm-slim`: Debian 12 \
             (bookworm) (3.11.2)"
        );
    }

    #[test]
    fn accepts_final_and_unknown_pythons() {
        let compat = Compat::embedded();
        for image in [
            "debian:bookworm-slim",
            "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
            "x:1",
        ] {
            assert_eq!(
                compat.check_base_python("k", image, py311()),
                Ok(()),
                "{image}"
            );
        }
    }

    #[test]
    fn warns_about_the_cuda_libraries_torch_brings_again() {
        let compat = Compat::embedded();
        let problem = compat
            .check_cuda_base_duplicates(
                "base.image",
                "nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04",
            )
            .unwrap_err();
        assert!(!problem.is_error());
        assert_eq!(
            problem.to_string(),
            "`nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04` installs the CUDA \
             runtime, cuBLAS, cuFFT, cuRAND, cuSOLVER, cuSPARSE, NCCL and cuDNN, which torch's \
             nvidia-* wheels install again\n  hint: use a base without CUDA, e.g. \
             `debian:bookworm-slim`: the NVIDIA container runtime injects the driver (podstack \
             sets NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES)"
        );
        let base = compat
            .check_cuda_base_duplicates("k", "nvidia/cuda:12.8.1-base-ubuntu22.04")
            .unwrap_err();
        assert!(
            base.to_string()
                .contains("installs the CUDA runtime, which"),
            "{base}"
        );
        assert_eq!(
            compat.check_cuda_base_duplicates("k", "debian:bookworm-slim"),
            Ok(())
        );
    }

    #[test]
    fn every_fact_names_its_source() {
        let bases = &Compat::embedded().bases;
        let sources = bases
            .distro
            .iter()
            .map(|d| &d.source)
            .chain(bases.cuda_flavour.iter().map(|f| &f.source))
            .chain([&bases.recommended.source, &bases.driver.source]);
        for source in sources {
            assert!(!source.trim().is_empty());
        }
    }

    #[test]
    fn the_driver_environment_includes_video_for_nvenc() {
        let driver = Compat::embedded().driver_environment();
        assert_eq!(driver.visible_devices, "all");
        assert!(driver.capabilities.iter().any(|c| c == "video"));
    }
}
