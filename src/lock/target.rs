//! What the image's Python packages are resolved for: its CPython, glibc and CPU, as the wheel
//! tag rules see them ([`Platform`]) and as PEP 508 markers see them (the marker environment).

use std::str::FromStr as _;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
use crate::version::{GlibcVersion, PythonVersion};
use crate::wheel::{Platform, WheelFilename};

/// The image's interpreter and platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub python: PythonVersion,
    pub glibc: Option<GlibcVersion>,
    pub arch: String,
}

/// How a file of a release installs on the target, or why it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFit {
    Wheel,
    Sdist,
    No(String),
}

impl Target {
    pub fn of(manifest: &Manifest) -> Self {
        Self {
            python: manifest.base.python,
            glibc: manifest.base.glibc_version(),
            arch: "x86_64".to_owned(),
        }
    }

    pub fn platform(&self) -> Platform {
        Platform {
            python: self.python,
            glibc: self.glibc,
            arch: self.arch.clone(),
        }
    }

    /// The interpreter's version as `Requires-Python` sees it. The patch release of a
    /// distribution's python3.X is not known here; `.0` is the conservative choice.
    fn python_full(&self) -> String {
        format!("{}.{}.0", self.python.major, self.python.minor)
    }

    /// The PEP 508 marker environment of the image (CPython on glibc Linux).
    pub fn markers(&self) -> MarkerEnvironment {
        let full = self.python_full();
        let short = self.python.to_string();
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: &self.arch,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("X.Y and X.Y.0 are PEP 440 versions")
    }

    /// Whether a `Requires-Python` value admits the image's CPython. A value that does not
    /// parse is not held against the file (pip ignores it too).
    pub fn allows_python(&self, requires_python: Option<&str>) -> bool {
        let Some(text) = requires_python
            .map(str::trim)
            .filter(|text| !text.is_empty())
        else {
            return true;
        };
        let Ok(specifiers) = VersionSpecifiers::from_str(text) else {
            return true;
        };
        let Ok(version) = Version::from_str(&self.python_full()) else {
            return true;
        };
        specifiers.contains(&version)
    }

    /// Whether a release file installs on the image: a wheel whose tags fit, or a source
    /// distribution when `sdist_allowed`.
    pub fn fit(
        &self,
        filename: &str,
        requires_python: Option<&str>,
        sdist_allowed: bool,
    ) -> FileFit {
        if !self.allows_python(requires_python) {
            return FileFit::No(format!(
                "it requires Python {}, the image has {}",
                requires_python.unwrap_or_default(),
                self.python
            ));
        }
        if filename.ends_with(".whl") {
            return match filename.parse::<WheelFilename>() {
                Ok(wheel) => match wheel.check(&self.platform()) {
                    Ok(_) => FileFit::Wheel,
                    Err(reasons) => FileFit::No(format!("{filename}: {}", reasons.join("; "))),
                },
                Err(err) => FileFit::No(err.to_string()),
            };
        }
        if is_sdist(filename) {
            return if sdist_allowed {
                FileFit::Sdist
            } else {
                FileFit::No(format!("{filename} is a source distribution"))
            };
        }
        FileFit::No(format!(
            "{filename} is neither a wheel nor a source distribution"
        ))
    }
}

/// A source distribution's file name.
pub fn is_sdist(filename: &str) -> bool {
    filename.ends_with(".tar.gz") || filename.ends_with(".zip")
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.platform().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            python: PythonVersion::new(3, 11),
            glibc: Some(GlibcVersion::new(2, 35)),
            arch: "x86_64".to_owned(),
        }
    }

    #[test]
    fn markers_are_those_of_cpython_on_linux() {
        let markers = target().markers();
        let holds = |marker: &str| {
            let requirement: pep508_rs::Requirement =
                format!("x ; {marker}").parse().expect("a requirement");
            requirement.marker.evaluate(&markers, &[])
        };
        assert!(holds(
            "sys_platform == 'linux' and platform_machine == 'x86_64'"
        ));
        assert!(holds("python_version >= '3.9'"));
        assert!(!holds("python_version < '3.11'"));
        assert!(!holds("sys_platform == 'win32'"));
        assert!(!holds("extra == 'test'"));
    }

    #[test]
    fn files_fit_by_tags_python_and_the_sdist_rule() {
        let target = target();
        assert_eq!(
            target.fit("six-1.17.0-py2.py3-none-any.whl", Some(">=2.7"), false),
            FileFit::Wheel
        );
        assert_eq!(
            target.fit("x-1-cp39-abi3-manylinux_2_28_x86_64.whl", None, false),
            FileFit::Wheel
        );
        assert!(matches!(
            target.fit("x-1-cp312-cp312-manylinux_2_28_x86_64.whl", None, false),
            FileFit::No(why) if why.contains("CPython 3.12")
        ));
        assert!(matches!(
            target.fit("x-1-py3-none-any.whl", Some(">=3.12"), false),
            FileFit::No(why) if why == "it requires Python >=3.12, the image has 3.11"
        ));
        assert_eq!(target.fit("x-1.tar.gz", None, true), FileFit::Sdist);
        assert!(matches!(
            target.fit("x-1.tar.gz", None, false),
            FileFit::No(_)
        ));
    }
}
