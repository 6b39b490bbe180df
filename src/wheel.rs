//! Wheel file names (PEP 427) and whether their tags (PEP 425) install on an image's CPython,
//! glibc and CPU architecture, with the reason in plain words when they do not.

use std::fmt;
use std::str::FromStr;

use pep440_rs::Version;

use crate::problem::Problem;
use crate::version::{GlibcVersion, PythonVersion};

/// A parsed wheel file name:
/// `{name}-{version}(-{build})?-{python tag}-{abi tag}-{platform tag}.whl`.
/// Each tag may be a dotted set (`py2.py3`), kept here split into its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    /// The distribution name as the file spells it (`flash_attn`).
    pub name: String,
    pub version: Version,
    /// The optional build tag; it starts with a digit.
    pub build: Option<String>,
    pub python_tags: Vec<String>,
    pub abi_tags: Vec<String>,
    pub platform_tags: Vec<String>,
}

/// A string that is not a wheel file name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{filename}` is not a wheel filename: {reason}; expected \
     {{name}}-{{version}}(-{{build}})?-{{python tag}}-{{abi tag}}-{{platform tag}}.whl"
)]
pub struct WheelFilenameError {
    pub filename: String,
    pub reason: String,
}

impl FromStr for WheelFilename {
    type Err = WheelFilenameError;

    fn from_str(filename: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| WheelFilenameError {
            filename: filename.to_owned(),
            reason,
        };
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| fail("it does not end in `.whl`".to_owned()))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, [python, abi, platform]) = match parts[..] {
            [name, version, python, abi, platform] => {
                (name, version, None, [python, abi, platform])
            }
            [name, version, build, python, abi, platform] => {
                (name, version, Some(build), [python, abi, platform])
            }
            _ => {
                return Err(fail(format!(
                    "it has {} dash-separated parts, not 5 or 6",
                    parts.len()
                )))
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(fail(format!(
                "the name `{name}` is not a distribution name (letters, digits, `_`, `.`)"
            )));
        }
        let version = version
            .parse::<Version>()
            .map_err(|err| fail(format!("`{version}` is not a PEP 440 version ({err})")))?;
        if let Some(build) = build {
            if !build.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(fail(format!(
                    "the build tag `{build}` does not start with a digit"
                )));
            }
        }
        let tag_set = |what: &str, set: &str| -> Result<Vec<String>, WheelFilenameError> {
            // pip (packaging's `parse_tag`) reads tags in lower case.
            let tags: Vec<String> = set.split('.').map(str::to_ascii_lowercase).collect();
            let well_formed = |tag: &String| {
                !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if tags.iter().all(well_formed) {
                Ok(tags)
            } else {
                Err(fail(format!("`{set}` is not a {what} tag")))
            }
        };
        Ok(Self {
            name: name.to_owned(),
            version,
            build: build.map(str::to_owned),
            python_tags: tag_set("python", python)?,
            abi_tags: tag_set("ABI", abi)?,
            platform_tags: tag_set("platform", platform)?,
        })
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.name, self.version)?;
        if let Some(build) = &self.build {
            write!(f, "-{build}")?;
        }
        write!(
            f,
            "-{}-{}-{}.whl",
            self.python_tags.join("."),
            self.abi_tags.join("."),
            self.platform_tags.join(".")
        )
    }
}

/// What a wheel must install on: the image's CPython, its glibc when known, and the CPU
/// architecture as platform tags spell it (`x86_64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub python: PythonVersion,
    pub glibc: Option<GlibcVersion>,
    pub arch: String,
}

impl Platform {
    /// A glibc-based x86_64 Linux image, the kind podstack builds.
    pub fn linux_x86_64(python: PythonVersion, glibc: Option<GlibcVersion>) -> Self {
        Self {
            python,
            glibc,
            arch: "x86_64".to_owned(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.glibc {
            Some(glibc) => write!(f, "CPython {} (glibc {glibc}, {})", self.python, self.arch),
            None => write!(f, "CPython {} (glibc unknown, {})", self.python, self.arch),
        }
    }
}

/// How a wheel installs: the tags that match, explained, and caveats that do not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    /// The matching python and ABI tags: `cp39-abi3 (stable ABI, CPython 3.9 and later)`.
    pub interpreter: String,
    /// The matching platform tag: `manylinux_2_28_x86_64 (glibc 2.28 or later)`.
    pub platform: String,
    /// Things to know: a platform tag no index offers, a glibc that could not be checked.
    pub notes: Vec<String>,
}

/// A wheel checked against a platform. Its `Display` is the report `podstack wheel-compat`
/// prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub wheel: WheelFilename,
    pub platform: Platform,
    /// How it installs, or every reason it does not.
    pub outcome: Result<Fit, Vec<String>>,
}

impl Verdict {
    /// Whether the wheel installs on the platform.
    pub fn installs(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(fit) => {
                writeln!(f, "{} installs on {}:", self.wheel, self.platform)?;
                writeln!(f, "  python/abi: {}", fit.interpreter)?;
                write!(f, "  platform: {}", fit.platform)?;
                for note in &fit.notes {
                    write!(f, "\n  note: {note}")?;
                }
            }
            Err(reasons) => {
                write!(f, "{} does NOT install on {}:", self.wheel, self.platform)?;
                for reason in reasons {
                    write!(f, "\n  - {reason}")?;
                }
            }
        }
        Ok(())
    }
}

impl WheelFilename {
    /// Whether the wheel installs on `platform`, following pip's tag rules for CPython on
    /// glibc Linux; when it does not, every reason, in plain words.
    pub fn check(&self, platform: &Platform) -> Result<Fit, Vec<String>> {
        let mut interpreters = Vec::new();
        let mut interpreter_misses = Vec::new();
        for python in &self.python_tags {
            for abi in &self.abi_tags {
                match interpreter_fit(python, abi, platform.python) {
                    Ok(description) => interpreters.push((abi == "none", description)),
                    Err(reason) => interpreter_misses.push(reason),
                }
            }
        }
        let mut platforms = Vec::new();
        let mut platform_misses = Vec::new();
        for tag in &self.platform_tags {
            match platform_fit(tag, platform) {
                Ok((description, note)) => platforms.push((tag == "any", description, note)),
                Err(reason) => platform_misses.push(reason),
            }
        }

        let mut reasons = Vec::new();
        if interpreters.is_empty() {
            reasons.extend(interpreter_misses);
        }
        if platforms.is_empty() {
            reasons.extend(platform_misses);
        }
        if !reasons.is_empty() {
            return Err(reasons);
        }
        // pip pairs platform `any` only with ABI `none` (`cp311-none-any`, `py3-none-any`).
        for (abi_none, interpreter) in &interpreters {
            for (any, description, note) in &platforms {
                if *abi_none || !any {
                    return Ok(Fit {
                        interpreter: interpreter.clone(),
                        platform: description.clone(),
                        notes: note.iter().cloned().collect(),
                    });
                }
            }
        }
        Err(vec![format!(
            "`{}-{}-any` pairs a compiled ABI with platform `any`, a combination pip never installs",
            self.python_tags.join("."),
            self.abi_tags.join(".")
        )])
    }

    /// The check as a report for people: see [`Verdict`].
    pub fn verdict(&self, platform: &Platform) -> Verdict {
        Verdict {
            wheel: self.clone(),
            platform: platform.clone(),
            outcome: self.check(platform),
        }
    }
}

/// Parses a wheel file name and checks it against `platform`: what `podstack wheel-compat`
/// prints (the verdict's `Display`) and whether it succeeds ([`Verdict::installs`]).
pub fn wheel_compat(filename: &str, platform: &Platform) -> Result<Verdict, WheelFilenameError> {
    Ok(filename.parse::<WheelFilename>()?.verdict(platform))
}

/// The manifest check for a wheel given by URL or path: `filename` is its last path segment,
/// `key` locates it in the manifest (`wheel[0].url`).
pub fn check_wheel(key: &str, filename: &str, platform: &Platform) -> Result<Fit, Problem> {
    let wheel = filename.parse::<WheelFilename>().map_err(|err| {
        Problem::error(key, err.to_string()).with_hint(
            "the URL must end in the wheel's file name as built, e.g. \
             `xformers-0.0.32.post2-cp39-abi3-manylinux_2_28_x86_64.whl`",
        )
    })?;
    wheel.check(platform).map_err(|reasons| {
        let glibc = platform
            .glibc
            .map(|glibc| format!(" with glibc {glibc} or older"))
            .unwrap_or_default();
        Problem::error(
            key,
            format!(
                "`{wheel}` does not install on {platform}: {}",
                reasons.join("; ")
            ),
        )
        .with_hint(format!(
            "pick the {} {} wheel built for CPython {} on {} Linux{glibc}; \
             `podstack wheel-compat FILE --python {}` explains a file name",
            wheel.name, wheel.version, platform.python, platform.arch, platform.python
        ))
    })
}

/// The `major` and optional `minor` of a tag's digits: `311` is 3.11, `3` is 3.
fn tag_version(digits: &str) -> Option<(u16, Option<u16>)> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (major, minor) = digits.split_at(1);
    let minor = if minor.is_empty() {
        None
    } else {
        Some(minor.parse().ok()?)
    };
    Some((major.parse().ok()?, minor))
}

/// Whether CPython `image` loads a wheel tagged `python`-`abi`: a description when it does,
/// the reason when it does not.
fn interpreter_fit(python: &str, abi: &str, image: PythonVersion) -> Result<String, String> {
    let pair = format!("{python}-{abi}");
    if let Some(digits) = python.strip_prefix("cp") {
        let Some((major, Some(minor))) = tag_version(digits) else {
            return Err(format!("python tag `{python}` names no CPython version"));
        };
        let tagged = PythonVersion::new(major, minor);
        if abi == "abi3" {
            // The stable ABI began with CPython 3.2; later 3.x releases keep loading it.
            return if tagged < PythonVersion::new(3, 2) {
                Err(format!(
                    "`{pair}` is not a stable-ABI tag (abi3 starts at CPython 3.2)"
                ))
            } else if image.major == 3 && tagged <= image {
                Ok(format!("{pair} (stable ABI, CPython {tagged} and later)"))
            } else {
                Err(format!(
                    "`{pair}` needs CPython {tagged} or later, the image has {image}"
                ))
            };
        }
        if tagged != image {
            return Err(format!(
                "python tag `{python}` needs CPython {tagged}, the image has {image}"
            ));
        }
        return if abi == python {
            Ok(format!("{pair} (CPython {tagged} only)"))
        } else if abi == "none" {
            Ok(format!("{pair} (CPython {tagged}, no compiled ABI)"))
        } else {
            Err(format!(
                "ABI tag `{abi}` is not one CPython {image} loads (it loads `{python}`, `abi3` and `none`)"
            ))
        };
    }
    if let Some(digits) = python.strip_prefix("py") {
        let Some((major, minor)) = tag_version(digits) else {
            return Err(format!("python tag `{python}` names no Python version"));
        };
        if major != image.major {
            return Err(format!(
                "python tag `{python}` is for Python {major}, the image has CPython {image}"
            ));
        }
        if let Some(minor) = minor {
            let tagged = PythonVersion::new(major, minor);
            if tagged > image {
                return Err(format!(
                    "python tag `{python}` needs Python {tagged} or later, the image has {image}"
                ));
            }
        }
        if abi != "none" {
            return Err(format!(
                "`{pair}`: pip accepts a generic `py` tag only with ABI `none`"
            ));
        }
        return Ok(match minor {
            Some(minor) => format!("{pair} (pure Python, {major}.{minor} and later)"),
            None => format!("{pair} (pure Python {major})"),
        });
    }
    Err(format!(
        "python tag `{python}` is not for CPython, the image runs CPython {image}"
    ))
}

/// Whether a platform tag installs on `platform`: a description and an optional note when it
/// does, the reason when it does not.
fn platform_fit(tag: &str, platform: &Platform) -> Result<(String, Option<String>), String> {
    if tag == "any" {
        return Ok(("any (no compiled code)".to_owned(), None));
    }
    let arch_matches = |arch: &str| {
        if arch == platform.arch {
            Ok(())
        } else {
            Err(format!(
                "`{tag}` is for {arch}, the image is {}",
                platform.arch
            ))
        }
    };
    if let Some(arch) = tag.strip_prefix("linux_") {
        arch_matches(arch)?;
        return Ok((
            format!("{tag} (installs from a URL or file; an index would not offer it)"),
            Some(format!(
                "a `{tag}` wheel is not installable from an index, only from a URL or file"
            )),
        ));
    }
    if let Some((glibc, arch)) = manylinux(tag) {
        arch_matches(arch)?;
        let oldest = oldest_manylinux(arch);
        if glibc.major != 2 || glibc < oldest {
            return Err(format!(
                "`{tag}` is not a tag pip installs: manylinux tags on {arch} start at glibc {oldest} (`manylinux_2_{}_{arch}`)",
                oldest.minor
            ));
        }
        return match platform.glibc {
            Some(have) if have < glibc => Err(format!(
                "`{tag}` needs glibc >= {glibc}, the base has {have}"
            )),
            Some(_) => Ok((format!("{tag} (glibc {glibc} or later)"), None)),
            None => Ok((
                format!("{tag} (glibc {glibc} or later)"),
                Some(format!(
                    "the base's glibc is unknown; `{tag}` needs glibc >= {glibc}"
                )),
            )),
        };
    }
    Err(if tag.starts_with("musllinux_") {
        format!("`{tag}` is for musl-based Linux (e.g. Alpine), the base uses glibc")
    } else if tag.starts_with("win") {
        format!("`{tag}` is for Windows")
    } else if tag.starts_with("macosx") {
        format!("`{tag}` is for macOS")
    } else {
        format!("`{tag}` is not a Linux platform tag")
    })
}

/// The glibc a manylinux tag needs and its architecture, for `manylinux_X_Y_arch` and the
/// legacy aliases (PEP 600).
fn manylinux(tag: &str) -> Option<(GlibcVersion, &str)> {
    const LEGACY: [(&str, GlibcVersion); 3] = [
        ("manylinux2014_", GlibcVersion::new(2, 17)),
        ("manylinux2010_", GlibcVersion::new(2, 12)),
        ("manylinux1_", GlibcVersion::new(2, 5)),
    ];
    for (prefix, glibc) in LEGACY {
        if let Some(arch) = tag.strip_prefix(prefix) {
            return Some((glibc, arch));
        }
    }
    let mut parts = tag.strip_prefix("manylinux_")?.splitn(3, '_');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((GlibcVersion::new(major, minor), parts.next()?))
}

/// The oldest glibc pip generates `manylinux_2_Y` tags for (packaging's `_manylinux`): 2.5
/// on x86_64 and i686, 2.17 elsewhere; no glibc 1.x tag exists at all.
fn oldest_manylinux(arch: &str) -> GlibcVersion {
    if arch == "x86_64" || arch == "i686" {
        GlibcVersion::new(2, 5)
    } else {
        GlibcVersion::new(2, 17)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(python: &str, glibc: Option<&str>) -> Platform {
        Platform::linux_x86_64(
            python.parse().unwrap(),
            glibc.map(|glibc| glibc.parse().unwrap()),
        )
    }

    fn check(filename: &str, python: &str, glibc: Option<&str>) -> Result<Fit, Vec<String>> {
        filename
            .parse::<WheelFilename>()
            .unwrap()
            .check(&platform(python, glibc))
    }

    #[test]
    fn reads_tags_as_pip_does() {
        let upper = check(
            "x-1.0-CP311-CP311-MANYLINUX_2_28_X86_64.whl",
            "3.11",
            Some("2.35"),
        );
        assert!(upper.is_ok(), "{upper:?}");
        assert_eq!(
            check("x-1.0-cp311-cp311-manylinux_2_4_x86_64.whl", "3.11", Some("2.35")),
            Err(vec!["`manylinux_2_4_x86_64` is not a tag pip installs: manylinux tags on x86_64 start at glibc 2.5 (`manylinux_2_5_x86_64`)".to_owned()])
        );
        assert!(check(
            "x-1.0-cp311-cp311-manylinux_1_5_x86_64.whl",
            "3.11",
            Some("2.35")
        )
        .is_err());
        assert!(check(
            "x-1.0-cp311-cp311-manylinux_2_5_x86_64.whl",
            "3.11",
            Some("2.35")
        )
        .is_ok());
    }

    const SAGE: &str = "sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl";
    const XFORMERS: &str = "xformers-0.0.32.post2-cp39-abi3-manylinux_2_28_x86_64.whl";
    const TORCH: &str = "torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl";

    #[test]
    fn installs_where_pip_would() {
        let cases: &[(&str, &str, Option<&str>, bool)] = &[
            (SAGE, "3.9", Some("2.39"), true),
            (SAGE, "3.11", Some("2.39"), true),
            (SAGE, "3.13", Some("2.39"), true),
            (SAGE, "3.8", Some("2.39"), false),
            (XFORMERS, "3.11", Some("2.28"), true),
            (XFORMERS, "3.11", Some("2.27"), false),
            (TORCH, "3.11", Some("2.35"), true),
            (TORCH, "3.10", Some("2.35"), false),
            (TORCH, "3.12", Some("2.35"), false),
            ("einops-0.8.1-py3-none-any.whl", "3.11", None, true),
            ("six-1.17.0-py2.py3-none-any.whl", "3.11", None, true),
            ("old-1.0-py2-none-any.whl", "3.11", None, false),
            ("newer-1.0-py312-none-any.whl", "3.11", None, false),
            ("older-1.0-py38-none-any.whl", "3.11", None, true),
            ("x-1.0-cp311-none-any.whl", "3.11", None, true),
            ("x-1.0-cp311-cp311-any.whl", "3.11", None, false),
            (
                "x-1.0-cp313-cp313t-manylinux_2_28_x86_64.whl",
                "3.13",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-pp310-pypy310_pp73-manylinux_2_28_x86_64.whl",
                "3.10",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                "3.11",
                Some("2.28"),
                true,
            ),
            (
                "x-1.0-cp311-cp311-manylinux2014_x86_64.whl",
                "3.11",
                Some("2.17"),
                true,
            ),
            (
                "x-1.0-cp311-cp311-manylinux2014_x86_64.whl",
                "3.11",
                Some("2.16"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-manylinux2010_x86_64.whl",
                "3.11",
                Some("2.12"),
                true,
            ),
            (
                "x-1.0-cp311-cp311-manylinux1_x86_64.whl",
                "3.11",
                Some("2.5"),
                true,
            ),
            (
                "x-1.0-cp311-cp311-manylinux1_x86_64.whl",
                "3.11",
                Some("2.4"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
                "3.11",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-manylinux_2_28_aarch64.whl",
                "3.11",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-linux_aarch64.whl",
                "3.11",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-win_amd64.whl",
                "3.11",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-macosx_11_0_arm64.whl",
                "3.11",
                Some("2.39"),
                false,
            ),
            (
                "x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "3.11",
                Some("2.17"),
                true,
            ),
        ];
        for (filename, python, glibc, installs) in cases {
            let outcome = check(filename, python, *glibc);
            assert_eq!(
                outcome.is_ok(),
                *installs,
                "{filename} on {python} glibc {glibc:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn flash_attn_wheels_are_per_cpython() {
        let wheel = |cp: &str| {
            format!("flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-{cp}-{cp}-linux_x86_64.whl")
        };
        for (cp, python) in [("cp310", "3.10"), ("cp311", "3.11"), ("cp312", "3.12")] {
            for other in ["3.10", "3.11", "3.12"] {
                let outcome = check(&wheel(cp), other, Some("2.39"));
                assert_eq!(outcome.is_ok(), python == other, "{cp} on {other}");
            }
        }
    }

    #[test]
    fn says_why_not_in_plain_words() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            (
                TORCH,
                "3.10",
                Some("2.39"),
                "python tag `cp311` needs CPython 3.11, the image has 3.10",
            ),
            (
                SAGE,
                "3.8",
                Some("2.39"),
                "`cp39-abi3` needs CPython 3.9 or later, the image has 3.8",
            ),
            (
                XFORMERS,
                "3.11",
                Some("2.17"),
                "`manylinux_2_28_x86_64` needs glibc >= 2.28, the base has 2.17",
            ),
            (
                "x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
                "3.11",
                None,
                "`musllinux_1_2_x86_64` is for musl-based Linux (e.g. Alpine), the base uses glibc",
            ),
            (
                "x-1.0-cp311-cp311-manylinux_2_28_aarch64.whl",
                "3.11",
                None,
                "`manylinux_2_28_aarch64` is for aarch64, the image is x86_64",
            ),
            (
                "x-1.0-cp313-cp313t-manylinux_2_28_x86_64.whl",
                "3.13",
                None,
                "ABI tag `cp313t` is not one CPython 3.13 loads (it loads `cp313`, `abi3` and `none`)",
            ),
        ];
        for (filename, python, glibc, reason) in cases {
            assert_eq!(
                check(filename, python, *glibc),
                Err(vec![reason.to_string()]),
                "{filename}"
            );
        }
    }

    #[test]
    fn notes_url_only_platforms_and_unknown_glibc() {
        let fit = check(SAGE, "3.11", Some("2.39")).unwrap();
        assert_eq!(
            fit.interpreter,
            "cp39-abi3 (stable ABI, CPython 3.9 and later)"
        );
        assert_eq!(
            fit.notes,
            ["a `linux_x86_64` wheel is not installable from an index, only from a URL or file"]
        );
        let fit = check(XFORMERS, "3.11", None).unwrap();
        assert_eq!(
            fit.notes,
            ["the base's glibc is unknown; `manylinux_2_28_x86_64` needs glibc >= 2.28"]
        );
        assert!(check(XFORMERS, "3.11", Some("2.39"))
            .unwrap()
            .notes
            .is_empty());
    }

    #[test]
    fn parses_names_versions_build_tags_and_tag_sets() {
        let wheel: WheelFilename = "six-1.17.0-1abc-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(wheel.name, "six");
        assert_eq!(wheel.version, "1.17.0".parse::<Version>().unwrap());
        assert_eq!(wheel.build.as_deref(), Some("1abc"));
        assert_eq!(wheel.python_tags, ["py2", "py3"]);
        assert_eq!(wheel.abi_tags, ["none"]);
        assert_eq!(wheel.platform_tags, ["any"]);
        assert_eq!(wheel.to_string(), "six-1.17.0-1abc-py2.py3-none-any.whl");

        let torch: WheelFilename = TORCH.parse().unwrap();
        assert_eq!(torch.version.to_string(), "2.8.0+cu129");
        assert_eq!(torch.build, None);
        assert_eq!(torch.to_string(), TORCH);
    }

    #[test]
    fn rejects_what_is_not_a_wheel_filename() {
        let cases = [
            ("foo.whl", "it has 1 dash-separated parts, not 5 or 6"),
            ("foo-1.0-py3-none-any.tar.gz", "it does not end in `.whl`"),
            (
                "foo-1.0-x-py3-none-any.whl",
                "the build tag `x` does not start with a digit",
            ),
            ("foo-one-py3-none-any.whl", "`one` is not a PEP 440 version"),
            (
                "foo-1.0-py3..py2-none-any.whl",
                "`py3..py2` is not a python tag",
            ),
            (
                "a-b-c-d-e-f-g.whl",
                "it has 7 dash-separated parts, not 5 or 6",
            ),
        ];
        for (filename, reason) in cases {
            let err = filename.parse::<WheelFilename>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("`{filename}` is not a wheel filename: {reason}")),
                "{err}"
            );
            assert!(
                err.ends_with(
                    "expected {name}-{version}(-{build})?-{python tag}-{abi tag}-{platform tag}.whl"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn reports_a_verdict_for_people() {
        let verdict = wheel_compat(SAGE, &platform("3.11", Some("2.39"))).unwrap();
        assert!(verdict.installs());
        assert_eq!(
            verdict.to_string(),
            "sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl installs on CPython 3.11 (glibc 2.39, x86_64):\n  \
             python/abi: cp39-abi3 (stable ABI, CPython 3.9 and later)\n  \
             platform: linux_x86_64 (installs from a URL or file; an index would not offer it)\n  \
             note: a `linux_x86_64` wheel is not installable from an index, only from a URL or file"
        );

        let flash = "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl";
        let verdict = wheel_compat(flash, &platform("3.10", None)).unwrap();
        assert!(!verdict.installs());
        assert_eq!(
            verdict.to_string(),
            "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl does NOT install on CPython 3.10 (glibc unknown, x86_64):\n  \
             - python tag `cp311` needs CPython 3.11, the image has 3.10"
        );
    }

    #[test]
    fn manifest_check_locates_the_problem_and_hints() {
        let problem =
            check_wheel("wheel[0].url", TORCH, &platform("3.10", Some("2.39"))).unwrap_err();
        assert_eq!(problem.key, "wheel[0].url");
        assert_eq!(
            problem.message,
            "`torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl` does not install on \
             CPython 3.10 (glibc 2.39, x86_64): python tag `cp311` needs CPython 3.11, the image has 3.10"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "pick the torch 2.8.0+cu129 wheel built for CPython 3.10 on x86_64 Linux with glibc 2.39 \
                 or older; `podstack wheel-compat FILE --python 3.10` explains a file name"
            )
        );

        let problem = check_wheel("wheel[1].url", "download", &platform("3.11", None)).unwrap_err();
        assert!(problem
            .message
            .starts_with("`download` is not a wheel filename"));
        assert!(problem.hint.is_some());

        assert!(check_wheel("wheel[0].url", SAGE, &platform("3.11", Some("2.39"))).is_ok());
    }
}
