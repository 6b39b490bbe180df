//! `stacks/<stack>.lock`: what `podstack lock` resolved, committed beside the manifest. TOML
//! written in a fixed order with one line per file, so a change diffs as the lines it changes.
//! `build` reads it back and pins what the manifest leaves open ([`pin`]): image
//! digests, wheel hashes, commits of branches and tags, and every Python package of the image
//! with the sha256 of each file that may be installed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::target::Target;
use crate::compat::normalize_name;
use crate::manifest::{exact_pin, Manifest, PackageRequirement};
use crate::problem::Problem;
use crate::value::{
    self, CommitHash, DownloadUrl, GitRef, GitUrl, ImageDigest, ImageReference, Invalid,
    PackageName, Sha256,
};

/// The format version this podstack writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    /// What the Python packages were resolved for and from.
    pub python: Option<PythonLock>,
    #[serde(default, rename = "image")]
    pub images: Vec<LockedImage>,
    #[serde(default)]
    pub git: Vec<LockedGit>,
    #[serde(default, rename = "wheel")]
    pub wheels: Vec<LockedWheel>,
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
    /// Inputs that could not be resolved from where the lock ran, and why.
    #[serde(default)]
    pub unresolved: Vec<Unresolved>,
}

/// The inputs of the Python resolution; the packages are current while they match the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonLock {
    pub target: Target,
    /// torch's specs and the manifest's `[python] packages` lines, as resolved.
    pub requested: Vec<String>,
    /// `[python] sdist` as resolved.
    #[serde(default)]
    pub sdist: Vec<String>,
}

/// An image tag and the registry digest it pointed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    pub image: String,
    pub digest: String,
}

/// A branch or tag of a repository and the commit it pointed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedGit {
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub commit: String,
}

/// A wheel by URL: the URL as the manifest gives it, the hash and size of what it served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedWheel {
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// Which pip install of the image a package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// torch and what it needs, from torch's index (`torch.lock.txt`).
    Torch,
    /// `[python] packages` and what they need, from PyPI (`requirements.lock.txt`).
    Packages,
}

/// One package of the image at one version, with every file of it that installs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// Normalised (PEP 503).
    pub name: String,
    pub version: String,
    pub layer: Layer,
    pub files: Vec<LockedFile>,
}

impl LockedPackage {
    /// What pip downloads for it: one of its files, so at most the largest. `None` when the
    /// index did not give every file's size.
    pub fn download_size(&self) -> Option<u64> {
        self.files
            .iter()
            .map(|file| file.size)
            .collect::<Option<Vec<u64>>>()?
            .into_iter()
            .max()
    }
}

/// The most bytes pip downloads for `packages` (the estimate of an image's Python layers that
/// the book's stack sizes start from, docs/src/reference/images.md), and how many packages
/// have a file of unknown size.
pub fn download_size<'a>(packages: impl IntoIterator<Item = &'a LockedPackage>) -> (u64, usize) {
    packages
        .into_iter()
        .fold((0, 0), |(bytes, unknown), package| {
            match package.download_size() {
                Some(size) => (bytes + size, unknown),
                None => (bytes, unknown + 1),
            }
        })
}

/// A release file: its name, sha256 and (when the index says) size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    pub file: String,
    pub sha256: String,
    pub size: Option<u64>,
}

/// An input the lock could not resolve, with the manifest key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unresolved {
    pub input: String,
    pub key: String,
    pub reason: String,
}

/// Why a lock file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a podstack lock file: {reason}\n  hint: run `podstack lock {stack}` to write it again")]
    Invalid {
        path: String,
        stack: String,
        reason: String,
    },
    /// Fields that are not what they name, each at its place in the lock file.
    #[error("{located}{path}: {count} error(s) in the lock file; nothing was rendered\n  hint: run `podstack lock {stack}` to write it again")]
    Fields {
        path: String,
        stack: String,
        count: usize,
        located: String,
    },
}

/// The lock file of a manifest: `stacks/<stack>.lock` beside `stacks/<stack>.toml`.
pub fn path_for(manifest: &Path) -> PathBuf {
    manifest.with_extension("lock")
}

/// torch's specs and the manifest's package lines: what the Python packages are resolved from.
pub fn requested(manifest: &Manifest) -> Vec<String> {
    manifest
        .torch
        .iter()
        .flat_map(|torch| torch.specs())
        .chain(manifest.python.packages.iter().cloned())
        .collect()
}

/// The `[python] sdist` names, normalised and sorted.
pub fn sdist_names(manifest: &Manifest) -> Vec<String> {
    let names: BTreeSet<String> = manifest
        .python
        .sdist
        .iter()
        .map(|name| normalize_name(name))
        .collect();
    names.into_iter().collect()
}

impl Lockfile {
    /// Reads the lock file at `path`; `None` when there is none.
    pub fn read(path: &Path, stack: &str) -> Result<Option<Self>, LockfileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockfileError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let invalid = |reason: String| LockfileError::Invalid {
            path: path.display().to_string(),
            stack: stack.to_owned(),
            reason,
        };
        let lock: Self = toml::from_str(&text).map_err(|err| invalid(err.message().to_owned()))?;
        if lock.version != LOCK_VERSION {
            return Err(invalid(format!(
                "it is format version {}, this podstack reads version {LOCK_VERSION}",
                lock.version
            )));
        }
        let problems = lock.problems();
        if !problems.is_empty() {
            let source = crate::manifest::Source {
                path: path.to_owned(),
                shown_as: path.display().to_string(),
                text,
            };
            let count = problems.len();
            let located: String = problems
                .into_iter()
                .map(|problem| format!("{}\n", source.locate(problem)))
                .collect();
            return Err(LockfileError::Fields {
                path: path.display().to_string(),
                stack: stack.to_owned(),
                count,
                located,
            });
        }
        Ok(Some(lock))
    }

    /// Every field that reaches an image, a command or pip, checked as the manifest's are:
    /// a lock is reviewed as data and must stay data.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut check = |key: String, result: Result<(), Invalid>| {
            if let Err(invalid) = result {
                problems.push(invalid.at(key));
            }
        };
        for (i, image) in self.images.iter().enumerate() {
            check(
                format!("image[{i}].image"),
                ImageReference::parse(&image.image).map(drop),
            );
            check(
                format!("image[{i}].digest"),
                ImageDigest::parse(&image.digest).map(drop),
            );
        }
        for (i, git) in self.git.iter().enumerate() {
            check(format!("git[{i}].repo"), GitUrl::parse(&git.repo).map(drop));
            check(
                format!("git[{i}].ref"),
                GitRef::parse(&git.git_ref).map(drop),
            );
            check(
                format!("git[{i}].commit"),
                CommitHash::parse(&git.commit).map(drop),
            );
        }
        for (i, wheel) in self.wheels.iter().enumerate() {
            check(
                format!("wheel[{i}].url"),
                DownloadUrl::parse(&wheel.url).map(drop),
            );
            check(
                format!("wheel[{i}].sha256"),
                Sha256::parse(&wheel.sha256).map(drop),
            );
        }
        if let Some(python) = &self.python {
            for (i, name) in python.sdist.iter().enumerate() {
                check(
                    format!("python.sdist[{i}]"),
                    PackageName::parse(name).map(drop),
                );
            }
        }
        for (i, package) in self.packages.iter().enumerate() {
            check(
                format!("package[{i}].name"),
                PackageName::parse(&package.name).and_then(PackageName::normalized_only),
            );
            check(
                format!("package[{i}].version"),
                value::locked_version(&package.version).map(drop),
            );
            for (j, file) in package.files.iter().enumerate() {
                let key = format!("package[{i}].files[{j}]");
                check(format!("{key}.file"), value::release_file_name(&file.file));
                check(
                    format!("{key}.sha256"),
                    Sha256::parse(&file.sha256).map(drop),
                );
            }
        }
        problems
    }

    /// Whether the Python packages were resolved for exactly this manifest.
    pub fn python_is_current(&self, manifest: &Manifest) -> bool {
        self.python.as_ref().is_some_and(|python| {
            python.target == Target::of(manifest)
                && python.requested == requested(manifest)
                && python.sdist == sdist_names(manifest)
        })
    }

    /// The packages of one layer, by name, when the Python resolution is current.
    pub fn layer(&self, manifest: &Manifest, layer: Layer) -> Option<Vec<&LockedPackage>> {
        self.python_is_current(manifest).then(|| {
            self.packages
                .iter()
                .filter(|package| package.layer == layer)
                .collect()
        })
    }

    pub fn image_digest(&self, image: &str) -> Option<&str> {
        self.images
            .iter()
            .find(|locked| locked.image == image)
            .map(|locked| locked.digest.as_str())
    }

    pub fn commit(&self, repo: &str, git_ref: &str) -> Option<&str> {
        self.git
            .iter()
            .find(|locked| locked.repo == repo && locked.git_ref == git_ref)
            .map(|locked| locked.commit.as_str())
    }

    pub fn wheel(&self, url: &str) -> Option<&LockedWheel> {
        self.wheels.iter().find(|locked| locked.url == url)
    }

    /// Fills in what `manifest` leaves open: image digests, wheel hashes, commits of branches
    /// and tags, and exact versions for open package lines (while the Python resolution is
    /// current).
    fn pin_into(&self, manifest: &mut Manifest) {
        let base = &mut manifest.base;
        if !base.local && base.digest.is_none() {
            base.digest = self.image_digest(&base.image).map(str::to_owned);
        }
        if base.builder_digest.is_none() {
            base.builder_digest = self.image_digest(&base.builder).map(str::to_owned);
        }
        for wheel in &mut manifest.wheels {
            if wheel.sha256.is_none() {
                wheel.sha256 = self.wheel(&wheel.url).map(|locked| locked.sha256.clone());
            }
        }
        let comfyui = &mut manifest.comfyui;
        if let (Some(repo), None, Some(git_ref)) =
            (&comfyui.repo, &comfyui.commit, &comfyui.git_ref)
        {
            comfyui.commit = self.commit(repo, git_ref).map(str::to_owned);
        }
        for node in &mut comfyui.custom_nodes {
            if let (None, Some(git_ref)) = (&node.commit, &node.git_ref) {
                node.commit = self.commit(&node.repo, git_ref).map(str::to_owned);
            }
        }
        if !self.python_is_current(manifest) {
            return;
        }
        for line in &mut manifest.python.packages {
            let Ok(requirement) = crate::manifest::parse_requirement(line) else {
                continue;
            };
            if exact_pin(&requirement).is_some() {
                continue;
            }
            let name = requirement.name.to_string();
            if let Some(locked) = self.packages.iter().find(|package| package.name == name) {
                *line = pinned_line(&requirement, &locked.version);
            }
        }
    }

    /// The lock file's text: a header, then every section in a fixed order.
    pub fn to_toml(&self, stack: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# The lock file of stacks/{stack}.toml: every input the manifest leaves open, pinned.\n\
             # Written by `podstack lock {stack}`; commit it with the manifest, do not edit it.\n\
             # `podstack lock {stack} --update NAME` resolves one entry again.\n\
             version = {}",
            self.version
        );
        if let Some(python) = &self.python {
            let target = &python.target;
            let _ = writeln!(out, "\n[python]\nrequested = [");
            for line in &python.requested {
                let _ = writeln!(out, "    {},", quote(line));
            }
            let _ = writeln!(out, "]");
            let sdist: Vec<String> = python.sdist.iter().map(|name| quote(name)).collect();
            let _ = writeln!(out, "sdist = [{}]", sdist.join(", "));
            let _ = writeln!(
                out,
                "\n[python.target]\npython = {}",
                quote(&target.python.to_string())
            );
            if let Some(glibc) = target.glibc {
                let _ = writeln!(out, "glibc = {}", quote(&glibc.to_string()));
            }
            let _ = writeln!(out, "arch = {}", quote(&target.arch));
        }
        for image in &self.images {
            let _ = writeln!(
                out,
                "\n[[image]]\nimage = {}\ndigest = {}",
                quote(&image.image),
                quote(&image.digest)
            );
        }
        for git in &self.git {
            let _ = writeln!(
                out,
                "\n[[git]]\nrepo = {}\nref = {}\ncommit = {}",
                quote(&git.repo),
                quote(&git.git_ref),
                quote(&git.commit)
            );
        }
        for wheel in &self.wheels {
            let _ = writeln!(
                out,
                "\n[[wheel]]\nurl = {}\nsha256 = {}\nsize = {}",
                quote(&wheel.url),
                quote(&wheel.sha256),
                wheel.size
            );
        }
        for package in &self.packages {
            let layer = match package.layer {
                Layer::Torch => "torch",
                Layer::Packages => "packages",
            };
            let _ = writeln!(
                out,
                "\n[[package]]\nname = {}\nversion = {}\nlayer = {}\nfiles = [",
                quote(&package.name),
                quote(&package.version),
                quote(layer)
            );
            for file in &package.files {
                let size = file
                    .size
                    .map(|size| format!(", size = {size}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {{ file = {}, sha256 = {}{size} }},",
                    quote(&file.file),
                    quote(&file.sha256)
                );
            }
            let _ = writeln!(out, "]");
        }
        for unresolved in &self.unresolved {
            let _ = writeln!(
                out,
                "\n[[unresolved]]\ninput = {}\nkey = {}\nreason = {}",
                quote(&unresolved.input),
                quote(&unresolved.key),
                quote(&unresolved.reason)
            );
        }
        out
    }
}

/// Pins what `manifest` leaves open from its lock file (`lock`, when there is one) and returns
/// what stays open for want of a current lock: the Python packages' hashes, as unpinned
/// problems (errors under `--strict`). Digests, hashes and commits the lock does not hold are
/// reported by validation as before. A current lock is re-keyed to the pinned package lines,
/// so that it stays current for the manifest it pinned.
pub fn pin(
    lock: Option<&mut Lockfile>,
    manifest: &mut Manifest,
    shown_as: &str,
    strict: bool,
) -> Vec<Problem> {
    let has_lock = lock.is_some();
    let mut current = false;
    if let Some(lock) = lock {
        current = lock.python_is_current(manifest);
        lock.pin_into(manifest);
        if let (true, Some(python)) = (current, lock.python.as_mut()) {
            python.requested = requested(manifest);
        }
    }
    let has_python = manifest.torch.is_some() || !manifest.python.packages.is_empty();
    if !has_python || current {
        return Vec::new();
    }
    let lock_path = path_for(Path::new(shown_as)).display().to_string();
    let why = if has_lock {
        format!("{lock_path} was resolved for other packages or another Python")
    } else {
        format!("there is no {lock_path}")
    };
    vec![Problem::unpinned(
        "python.packages",
        format!("the Python packages are not locked: {why}, so pip may install any file for them"),
        strict,
    )
    .with_hint("run `podstack lock` for this stack and commit the lock file")]
}

/// A requirement line pinned to `version`, keeping its extras and markers.
fn pinned_line(requirement: &PackageRequirement, version: &str) -> String {
    let mut line = requirement.name.to_string();
    if !requirement.extras.is_empty() {
        let extras: Vec<String> = requirement.extras.iter().map(ToString::to_string).collect();
        let _ = write!(line, "[{}]", extras.join(","));
    }
    let _ = write!(line, "=={version}");
    if let Some(marker) = requirement.marker.contents() {
        let _ = write!(line, " ; {marker}");
    }
    line
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{GlibcVersion, PythonVersion};

    fn package(name: &str, sizes: &[Option<u64>]) -> LockedPackage {
        LockedPackage {
            name: name.to_owned(),
            version: "1".to_owned(),
            layer: Layer::Packages,
            files: sizes
                .iter()
                .enumerate()
                .map(|(i, size)| LockedFile {
                    file: format!("{name}-{i}.whl"),
                    sha256: "0".repeat(64),
                    size: *size,
                })
                .collect(),
        }
    }

    #[test]
    fn download_size_counts_the_largest_file_of_each_package() {
        // pip installs one file per package (charset-normalizer locks three).
        let packages = [
            package(
                "charset-normalizer",
                &[Some(263_382), Some(234_407), Some(68_878)],
            ),
            package("torch", &[Some(888_063_640)]),
            package("unsized", &[Some(1), None]),
        ];
        assert_eq!(download_size(&packages), (888_327_022, 1));
        assert_eq!(download_size(&packages[..0]), (0, 0));
    }

    fn sample() -> Lockfile {
        Lockfile {
            version: LOCK_VERSION,
            python: Some(PythonLock {
                target: Target {
                    python: PythonVersion::new(3, 11),
                    glibc: Some(GlibcVersion::new(2, 36)),
                    arch: "x86_64".to_owned(),
                },
                requested: vec!["six>=1.16".to_owned()],
                sdist: vec![],
            }),
            images: vec![LockedImage {
                image: "debian:bookworm".to_owned(),
                digest: format!("sha256:{}", "a".repeat(64)),
            }],
            git: vec![LockedGit {
                repo: "https://example.com/x".to_owned(),
                git_ref: "main".to_owned(),
                commit: "b".repeat(40),
            }],
            wheels: vec![LockedWheel {
                url: "https://example.com/x-1-py3-none-any.whl".to_owned(),
                sha256: "c".repeat(64),
                size: 12,
            }],
            packages: vec![LockedPackage {
                name: "six".to_owned(),
                version: "1.17.0".to_owned(),
                layer: Layer::Packages,
                files: vec![LockedFile {
                    file: "six-1.17.0-py2.py3-none-any.whl".to_owned(),
                    sha256: "d".repeat(64),
                    size: Some(11050),
                }],
            }],
            unresolved: vec![Unresolved {
                input: "base image nvidia/cuda:12.8.1".to_owned(),
                key: "base.image".to_owned(),
                reason: "registry-1.docker.io cannot be reached (\"dns\")".to_owned(),
            }],
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let lock = sample();
        let text = lock.to_toml("smoke");
        assert!(text.contains(
            "files = [\n    { file = \"six-1.17.0-py2.py3-none-any.whl\", sha256 = \"dddd"
        ));
        let back: Lockfile = toml::from_str(&text).expect(&text);
        assert_eq!(back, lock);
    }

    #[test]
    fn pins_open_package_lines_keeping_extras_and_markers() {
        let requirement: PackageRequirement = "requests[socks] >=2 ; python_version >= '3.8'"
            .parse()
            .unwrap();
        assert_eq!(
            pinned_line(&requirement, "2.32.5"),
            "requests[socks]==2.32.5 ; python_full_version >= '3.8'"
        );
    }
}
