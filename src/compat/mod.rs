//! Compatibility knowledge: which torch builds exist for which CUDA and Python, which
//! companions and xformers releases go with them, which GPU archs torch and attention kernels
//! cover, which compute capability a GPU name means, and which rclone the sync needs. The
//! facts are TOML files under `src/compat/data/`, embedded at compile time, each row with its
//! source; the rules that read them are the methods of [`Compat`], one file per concept.
//! Each file says on which day its facts were last checked against their sources (`checked`).

use std::sync::LazyLock;

use pep440_rs::Version;
use serde::de::DeserializeOwned;
use serde::Deserialize;

mod base_image;
mod gpu;
mod kernel;
mod rclone;
mod torch;
mod xformers;

use base_image::BaseFacts;
pub use base_image::DriverEnvironment;
pub use gpu::Gpu;
pub use kernel::{ArchSupport, KernelArch, KernelWheel};
pub use rclone::{RcloneFacts, RcloneVersion};
pub use torch::{Companion, PythonRange, TorchBuild, TorchRelease, PYTORCH_INDEX};
pub use xformers::{NeverPublished, XformersRelease};

/// Everything podstack knows about compatibility; the checks are its methods.
#[derive(Debug)]
pub struct Compat {
    torch: Vec<TorchRelease>,
    xformers: Vec<XformersRelease>,
    never_published_xformers: Vec<NeverPublished>,
    kernels: Vec<KernelWheel>,
    gpus: Vec<Gpu>,
    rclone: RcloneFacts,
    bases: BaseFacts,
    checked: toml::value::Date,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TorchFile {
    release: Vec<TorchRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XformersFile {
    release: Vec<XformersRelease>,
    never_published: Vec<NeverPublished>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelsFile {
    kernel: Vec<KernelWheel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GpusFile {
    gpu: Vec<Gpu>,
}

static EMBEDDED: LazyLock<Compat> = LazyLock::new(|| {
    let (torch, torch_checked) =
        embedded::<TorchFile>("torch.toml", include_str!("data/torch.toml"));
    let (xformers, xformers_checked) =
        embedded::<XformersFile>("xformers.toml", include_str!("data/xformers.toml"));
    let (kernels, kernels_checked) =
        embedded::<KernelsFile>("kernels.toml", include_str!("data/kernels.toml"));
    let (gpus, gpus_checked) = embedded::<GpusFile>("gpus.toml", include_str!("data/gpus.toml"));
    let (rclone, rclone_checked) = embedded("rclone.toml", include_str!("data/rclone.toml"));
    let (bases, bases_checked) = embedded("bases.toml", include_str!("data/bases.toml"));
    let checked = [
        torch_checked,
        xformers_checked,
        kernels_checked,
        gpus_checked,
        rclone_checked,
        bases_checked,
    ]
    .into_iter()
    .min_by_key(|date| (date.year, date.month, date.day))
    .expect("six data files");
    Compat {
        torch: torch.release,
        xformers: xformers.release,
        never_published_xformers: xformers.never_published,
        kernels: kernels.kernel,
        gpus: gpus.gpu,
        rclone,
        bases,
        checked,
    }
});

/// Parses a data file compiled into the binary into its facts and the day they were checked
/// (its top-level `checked = YYYY-MM-DD`); a broken one is a bug that the unit tests catch
/// before release.
fn embedded<T: DeserializeOwned>(file: &str, text: &str) -> (T, toml::value::Date) {
    let broken =
        |why: String| -> ! { panic!("embedded src/compat/data/{file} does not parse: {why}") };
    let mut table: toml::Table = toml::from_str(text).unwrap_or_else(|err| broken(err.to_string()));
    let checked = match table.remove("checked") {
        Some(toml::Value::Datetime(toml::value::Datetime {
            date: Some(date),
            time: None,
            offset: None,
        })) => date,
        _ => broken("no `checked = YYYY-MM-DD` (the day its facts were checked)".to_owned()),
    };
    let facts = table
        .try_into()
        .unwrap_or_else(|err| broken(err.to_string()));
    (facts, checked)
}

impl Compat {
    /// The compatibility data compiled into podstack, parsed on first use.
    pub fn embedded() -> &'static Compat {
        &EMBEDDED
    }

    /// Every known torch release, oldest first.
    pub fn torch_releases(&self) -> &[TorchRelease] {
        &self.torch
    }

    /// Every known xformers release, oldest first.
    pub fn xformers_releases(&self) -> &[XformersRelease] {
        &self.xformers
    }

    /// Every attention kernel wheel with declared GPU archs.
    pub fn kernels(&self) -> &[KernelWheel] {
        &self.kernels
    }

    /// Every known GPU model.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }

    /// The day of the oldest check among the data files: nothing in them is older news.
    pub fn checked(&self) -> toml::value::Date {
        self.checked
    }
}

/// A package name normalized as PEP 503 does (`Flash_Attn` -> `flash-attn`), so wheel file
/// names, requirement lines and data rows compare equal.
pub fn normalize_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !normalized.ends_with('-') {
                normalized.push('-');
            }
        } else {
            normalized.push(c.to_ascii_lowercase());
        }
    }
    normalized
}

/// The public part of a version: `2.8.0+cu129` -> `2.8.0`.
fn public(version: &Version) -> Version {
    version.clone().without_local()
}

/// Versions for a message: `2.4.0, 2.4.1, 2.5.0`.
fn version_list<'a>(versions: impl IntoIterator<Item = &'a Version>) -> String {
    versions
        .into_iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A list for a message: `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Alternatives for a message: `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::version::GpuArch;
    use crate::wheel::WheelFilename;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn embedded_data_parses_and_every_row_names_its_source() {
        let compat = Compat::embedded();
        let sources = compat
            .torch
            .iter()
            .map(|r| &r.source)
            .chain(
                compat
                    .torch
                    .iter()
                    .flat_map(|r| r.builds.iter().map(|b| &b.source)),
            )
            .chain(compat.xformers.iter().map(|x| &x.source))
            .chain(compat.never_published_xformers.iter().map(|x| &x.source))
            .chain(compat.kernels.iter().map(|k| &k.source))
            .chain(compat.gpus.iter().map(|g| &g.source))
            .chain([&compat.rclone.minimum.source, &compat.rclone.package.source]);
        for source in sources {
            assert!(!source.trim().is_empty());
        }
    }

    #[test]
    fn torch_data_is_consistent() {
        let compat = Compat::embedded();
        let mut versions = HashSet::new();
        for release in &compat.torch {
            let name = format!("torch {}", release.version);
            assert!(versions.insert(release.version.clone()), "{name} twice");
            assert!(release.python.min <= release.python.max, "{name}");
            assert!(
                release.build(release.pypi_default).is_some(),
                "{name}: the PyPI default build is not among its builds"
            );
            let mut cudas = HashSet::new();
            for build in &release.builds {
                assert!(
                    cudas.insert(build.cuda),
                    "{name}: {} twice",
                    build.variant()
                );
                assert!(!build.archs.is_empty(), "{name}+{}", build.variant());
                assert!(build.archs.is_sorted(), "{name}+{}", build.variant());
            }
        }
        assert!(
            compat.torch.is_sorted_by_key(|r| r.version.clone()),
            "oldest first"
        );
        for required in [
            "2.4.0", "2.4.1", "2.5.0", "2.5.1", "2.6.0", "2.7.0", "2.7.1", "2.8.0", "2.9.0",
            "2.9.1",
        ] {
            assert!(compat.torch_release("torch.version", &v(required)).is_ok());
        }
    }

    #[test]
    fn xformers_data_names_torch_releases_that_exist() {
        let compat = Compat::embedded();
        let mut versions = HashSet::new();
        for release in &compat.xformers {
            assert!(
                versions.insert(release.version.clone()),
                "{}",
                release.version
            );
            assert!(
                compat
                    .torch_release("torch.version", &release.torch)
                    .is_ok(),
                "xformers {} names torch {}, which the torch data lacks",
                release.version,
                release.torch
            );
            if let Some(filename) = release.wheel_filename() {
                assert!(filename.parse::<WheelFilename>().is_ok(), "{filename}");
            }
        }
        assert!(compat.xformers.is_sorted_by_key(|x| x.version.clone()));
        for gap in &compat.never_published_xformers {
            assert!(
                !versions.contains(&gap.version),
                "{} is listed as published",
                gap.version
            );
            assert!(
                versions.contains(&gap.instead),
                "{} is not a known release",
                gap.instead
            );
        }
    }

    #[test]
    fn kernel_and_gpu_data_are_consistent() {
        let compat = Compat::embedded();
        for kernel in &compat.kernels {
            assert_eq!(normalize_name(&kernel.name), kernel.name);
            let archs: Vec<GpuArch> = kernel.archs.iter().map(|a| a.arch).collect();
            assert!(!archs.is_empty() && archs.is_sorted(), "{}", kernel.name);
            assert_eq!(archs.iter().collect::<HashSet<_>>().len(), archs.len());
        }
        let mut names = HashSet::new();
        for gpu in &compat.gpus {
            assert!(names.insert(gpu.name.to_lowercase()), "{} twice", gpu.name);
            assert_eq!(
                compat.gpu_by_name(&gpu.name).map(|g| &g.name),
                Some(&gpu.name)
            );
            let smi = format!("NVIDIA {}", gpu.name);
            assert_eq!(compat.gpu_by_name(&smi).map(|g| &g.name), Some(&gpu.name));
        }
    }

    #[test]
    fn normalizes_package_names() {
        for (name, normalized) in [
            ("flash_attn", "flash-attn"),
            ("Flash-Attn", "flash-attn"),
            ("SageAttention", "sageattention"),
            ("a.-_b", "a-b"),
        ] {
            assert_eq!(normalize_name(name), normalized);
        }
    }

    #[test]
    fn lists_alternatives() {
        let items = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(or_list(&items(&["cu128"])), "cu128");
        assert_eq!(or_list(&items(&["cu128", "cu129"])), "cu128 or cu129");
        assert_eq!(or_list(&items(&["a", "b", "c"])), "a, b or c");
    }
}
