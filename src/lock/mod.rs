//! `podstack lock STACK [--update NAME...]`: resolves what a manifest leaves open into
//! `stacks/<stack>.lock` — base and builder image tags to registry digests, URL wheels to the
//! sha256 and size of what they serve, branches and tags to commits, and the image's Python
//! packages (torch's and the manifest's, with everything they require) to exact versions with
//! the sha256 of every file that installs on the image.
//!
//! Entries of the current lock are kept while the manifest still asks for the same thing, so a
//! second run fetches nothing; `--update NAME` resolves one entry again. Items run in
//! parallel (bounded by the HTTP client), each failure is reported on its own with a hint, and
//! an input whose host cannot be reached is listed as unresolved instead of failing the run
//! (`build --strict` then refuses the stack).

pub mod cache;
pub mod git;
pub mod index;
pub mod lockfile;
pub mod progress;
pub mod resolve;
pub mod target;
pub mod wheel_metadata;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr as _;

use pep440_rs::Version;
use reqwest::StatusCode;

pub use cache::Cache;
pub use lockfile::{Layer, LockedPackage, Lockfile, Unresolved};
pub use progress::Progress;

use crate::compat::normalize_name;
use crate::download::{self, DownloadError};
use crate::http::Http;
use crate::manifest::{Manifest, TorchIndex};
use crate::registry::{self, ImageAddress};
use crate::value::ImageReference;
use crate::wheel::WheelFilename;
use index::Index;
use lockfile::{LockedGit, LockedImage, LockedWheel, PythonLock, LOCK_VERSION};
use resolve::{ResolveError, Resolver, Root, Sources};
use target::Target;

/// Where packages are looked up; `PODSTACK_PYPI_URL` and `PODSTACK_PYTORCH_INDEX_URL` point
/// the lock at a mirror (or a test server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// PyPI's base URL, whose JSON API is under `/pypi/`.
    pub pypi: String,
    /// The base of PyTorch's indexes; `/<cuXYZ>` is appended.
    pub pytorch: String,
}

impl Endpoints {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            pypi: var("PODSTACK_PYPI_URL", "https://pypi.org"),
            pytorch: var("PODSTACK_PYTORCH_INDEX_URL", crate::compat::PYTORCH_INDEX),
        }
    }

    /// The index of each layer of `manifest`.
    pub fn sources(&self, manifest: &Manifest) -> Sources {
        let pypi = Index::PyPi(self.pypi.trim_end_matches('/').to_owned());
        let torch = match &manifest.torch {
            Some(torch) if torch.index == TorchIndex::Pytorch => Index::Simple(format!(
                "{}/{}",
                self.pytorch.trim_end_matches('/'),
                torch.cuda.torch_variant()
            )),
            _ => pypi.clone(),
        };
        Sources {
            torch,
            packages: pypi,
        }
    }
}

/// One input that failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub item: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  hint: {}", self.item, self.message, self.hint)
    }
}

/// What a lock run works with.
#[derive(Debug)]
pub struct LockRun<'a> {
    pub http: &'a Http,
    pub cache: &'a Cache,
    pub endpoints: &'a Endpoints,
    pub progress: &'a Progress,
    /// Requests in flight for the Python resolution.
    pub parallel: usize,
}

/// What a lock run produced.
#[derive(Debug)]
pub struct Locked {
    pub lock: Lockfile,
    pub errors: Vec<ItemError>,
    /// Inputs resolved over the network in this run (0: everything was kept).
    pub fetched: usize,
}

/// A result of one input: kept from the old lock, fetched now, unresolved, or failed.
enum Found<T> {
    Kept(T),
    Fetched(T),
    Unresolved(Unresolved),
    Failed(ItemError),
}

/// The names `--update` accepts for a manifest and its current lock.
pub fn update_names(manifest: &Manifest, old: Option<&Lockfile>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert("base".to_owned());
    names.insert("builder".to_owned());
    for wheel in &manifest.wheels {
        if let Ok(parsed) = wheel.file_name().parse::<WheelFilename>() {
            names.insert(normalize_name(&parsed.name));
        }
    }
    if manifest.comfyui.repo.is_some() {
        names.insert("comfyui".to_owned());
    }
    for node in &manifest.comfyui.custom_nodes {
        names.insert(node.folder_name().to_ascii_lowercase());
    }
    for line in lockfile::requested(manifest) {
        if let Ok(requirement) = crate::manifest::parse_requirement(&line) {
            names.insert(normalize_name(requirement.name.as_ref()));
        }
    }
    if let Some(old) = old {
        names.extend(old.packages.iter().map(|package| package.name.clone()));
    }
    names
}

/// Resolves the open inputs of `manifest`, keeping what `old` already holds unless named in
/// `updates` (normalised names, see [`update_names`]).
pub async fn lock(
    run: &LockRun<'_>,
    manifest: &Manifest,
    old: Option<&Lockfile>,
    updates: &BTreeSet<String>,
) -> Locked {
    let (images, git, wheels, python) = tokio::join!(
        lock_images(run, manifest, old, updates),
        lock_git(manifest, old, updates),
        lock_wheels(run, manifest, old, updates),
        lock_python(run, manifest, old, updates),
    );
    let mut lock = Lockfile {
        version: LOCK_VERSION,
        ..Lockfile::default()
    };
    let mut errors = Vec::new();
    let mut fetched = 0;
    let mut unresolved = Vec::new();
    let mut take = |found: Found<()>| match found {
        Found::Kept(()) => {}
        Found::Fetched(()) => fetched += 1,
        Found::Unresolved(item) => unresolved.push(item),
        Found::Failed(err) => errors.push(err),
    };
    for found in images {
        take(collect(found.map(Some), &mut lock.images));
    }
    for found in git {
        take(collect(found.map(Some), &mut lock.git));
    }
    for found in wheels {
        take(collect(found, &mut lock.wheels));
    }
    match python {
        PythonFound::None => {}
        PythonFound::Locked {
            python,
            packages,
            fetched: was_fetched,
        } => {
            if was_fetched {
                take(Found::Fetched(()));
            }
            lock.python = Some(python);
            lock.packages = packages;
        }
        PythonFound::Unresolved(item) => take(Found::Unresolved(item)),
        PythonFound::Failed(items) => {
            for item in items {
                take(Found::Failed(item));
            }
        }
    }
    lock.images.sort_by(|a, b| a.image.cmp(&b.image));
    lock.git
        .sort_by(|a, b| (&a.repo, &a.git_ref).cmp(&(&b.repo, &b.git_ref)));
    unresolved.sort_by(|a, b| a.key.cmp(&b.key));
    lock.unresolved = unresolved;
    Locked {
        lock,
        errors,
        fetched,
    }
}

impl<T> Found<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Found<U> {
        match self {
            Self::Kept(item) => Found::Kept(f(item)),
            Self::Fetched(item) => Found::Fetched(f(item)),
            Self::Unresolved(item) => Found::Unresolved(item),
            Self::Failed(err) => Found::Failed(err),
        }
    }
}

/// Adds what was found (if anything) to the lock's list, leaving the outcome.
fn collect<T>(found: Found<Option<T>>, into: &mut Vec<T>) -> Found<()> {
    found.map(|item| into.extend(item))
}

async fn lock_images(
    run: &LockRun<'_>,
    manifest: &Manifest,
    old: Option<&Lockfile>,
    updates: &BTreeSet<String>,
) -> Vec<Found<LockedImage>> {
    let base = &manifest.base;
    let mut wanted = Vec::new();
    if !base.local && base.digest.is_none() {
        wanted.push(("base", "base.image", base.image.clone()));
    }
    if base.builder_digest.is_none() {
        wanted.push(("builder", "base.builder", base.builder.clone()));
    }
    let lookups = wanted.into_iter().map(|(role, key, image)| async move {
        let kept = old.and_then(|old| old.image_digest(&image)).map(|digest| LockedImage {
            image: image.clone(),
            digest: digest.to_owned(),
        });
        if let Some(kept) = kept.clone().filter(|_| !updates.contains(role)) {
            return Found::Kept(kept);
        }
        run.progress.status(format!("asking the registry for {image}"));
        let reference = match ImageReference::parse(&image) {
            Ok(reference) => reference,
            Err(invalid) => {
                return Found::Failed(ItemError {
                    item: format!("{role} image {image}"),
                    message: invalid.message,
                    hint: invalid.hint,
                })
            }
        };
        match registry::digest(run.http, &ImageAddress::new(&reference, None)).await {
            Ok(digest) => {
                run.progress.line(format!("locked {role} image {image} -> {digest}"));
                Found::Fetched(LockedImage { image, digest })
            }
            Err(err) if err.is_unreachable() => match kept {
                Some(kept) => {
                    run.progress.line(format!(
                        "kept {role} image {image} -> {} ({err})",
                        kept.digest
                    ));
                    Found::Kept(kept)
                }
                None => Found::Unresolved(Unresolved {
                    input: format!("{role} image {image}"),
                    key: key.to_owned(),
                    reason: err.to_string(),
                }),
            },
            Err(err) => Found::Failed(ItemError {
                item: format!("{role} image {image}"),
                message: err.to_string(),
                hint: "check the image name and tag; `docker buildx imagetools inspect IMAGE` shows what the registry has".to_owned(),
            }),
        }
    });
    futures_util::future::join_all(lookups).await
}

async fn lock_git(
    manifest: &Manifest,
    old: Option<&Lockfile>,
    updates: &BTreeSet<String>,
) -> Vec<Found<LockedGit>> {
    let comfyui = &manifest.comfyui;
    let mut wanted = Vec::new();
    if let (Some(repo), None, Some(git_ref)) = (&comfyui.repo, &comfyui.commit, &comfyui.git_ref) {
        wanted.push((
            "comfyui".to_owned(),
            "comfyui.repo".to_owned(),
            repo.clone(),
            git_ref.clone(),
        ));
    }
    for (i, node) in comfyui.custom_nodes.iter().enumerate() {
        if let (None, Some(git_ref)) = (&node.commit, &node.git_ref) {
            wanted.push((
                node.folder_name().to_ascii_lowercase(),
                format!("comfyui.custom_nodes[{i}].repo"),
                node.repo.clone(),
                git_ref.clone(),
            ));
        }
    }
    let lookups = wanted
        .into_iter()
        .map(|(name, key, repo, git_ref)| async move {
            let kept = old
                .and_then(|old| old.commit(&repo, &git_ref))
                .map(|commit| LockedGit {
                    repo: repo.clone(),
                    git_ref: git_ref.clone(),
                    commit: commit.to_owned(),
                });
            if let Some(kept) = kept.clone().filter(|_| !updates.contains(&name)) {
                return Found::Kept(kept);
            }
            match git::resolve(&repo, &git_ref).await {
                Ok(commit) => Found::Fetched(LockedGit {
                    repo,
                    git_ref,
                    commit,
                }),
                Err(err @ git::GitError::Unreachable { .. }) => match kept {
                    Some(kept) => Found::Kept(kept),
                    None => Found::Unresolved(Unresolved {
                        input: format!("{name} at `{git_ref}` of {repo}"),
                        key,
                        reason: err.to_string(),
                    }),
                },
                Err(err) => Found::Failed(ItemError {
                    item: format!("{name} at `{git_ref}`"),
                    message: err.to_string(),
                    hint: format!("`git ls-remote {repo}` lists its branches and tags"),
                }),
            }
        });
    futures_util::future::join_all(lookups).await
}

async fn lock_wheels(
    run: &LockRun<'_>,
    manifest: &Manifest,
    old: Option<&Lockfile>,
    updates: &BTreeSet<String>,
) -> Vec<Found<Option<LockedWheel>>> {
    let lookups = manifest.wheels.iter().enumerate().map(|(i, wheel)| async move {
        let key = format!("wheel[{i}].url");
        let file_name = wheel.file_name().to_owned();
        let name = file_name
            .parse::<WheelFilename>()
            .map(|parsed| normalize_name(&parsed.name))
            .unwrap_or_else(|_| file_name.clone());
        let kept = old.and_then(|old| old.wheel(&wheel.url)).cloned();
        if wheel.sha256.is_none() {
            if let Some(kept) = kept.clone().filter(|_| !updates.contains(&name)) {
                return Found::Kept(Some(kept));
            }
        }
        let cached = run
            .cache
            .get(cache::Kind::UrlHash, &wheel.url)
            .and_then(|text| {
                let (sha256, size) = text.split_once(' ')?;
                Some((sha256.to_owned(), size.trim().parse::<u64>().ok()?))
            })
            .filter(|_| !updates.contains(&name));
        let (sha256, size) = match cached {
            Some(found) => found,
            None => match hash_url(run, &wheel.url, &file_name).await {
                Ok(found) => {
                    run.cache.put(
                        cache::Kind::UrlHash,
                        &wheel.url,
                        &format!("{} {}", found.0, found.1),
                    );
                    found
                }
                Err(DownloadError::Http(err)) if err.is_unreachable() => {
                    return match kept {
                        Some(kept) => Found::Kept(Some(kept)),
                        None => Found::Unresolved(Unresolved {
                            input: format!("wheel {file_name}"),
                            key,
                            reason: err.to_string(),
                        }),
                    }
                }
                Err(err) => {
                    return Found::Failed(ItemError {
                        item: format!("wheel {file_name}"),
                        hint: url_hint(&err, &file_name),
                        message: err.to_string(),
                    })
                }
            },
        };
        match &wheel.sha256 {
            Some(pinned) if *pinned != sha256 => Found::Failed(ItemError {
                item: format!("wheel {file_name}"),
                message: format!(
                    "{} served a file with sha256 {sha256}, the manifest pins {pinned}",
                    wheel.url
                ),
                hint: "the file behind the URL changed, or the pin is wrong: compare with the release's published checksum before changing it".to_owned(),
            }),
            // A wheel the manifest pins itself is checked, not recorded.
            Some(_) => Found::Kept(None),
            None => {
                run.progress
                    .line(format!("locked wheel {file_name}: sha256 {sha256}, {size} bytes"));
                Found::Fetched(Some(LockedWheel {
                    url: wheel.url.clone(),
                    sha256,
                    size,
                }))
            }
        }
    });
    futures_util::future::join_all(lookups).await
}

/// Downloads a URL through the hash only (never to memory), with a progress bar.
async fn hash_url(
    run: &LockRun<'_>,
    url: &str,
    label: &str,
) -> Result<(String, u64), DownloadError> {
    let _permit = run.http.permit().await;
    let bar = run.progress.transfer(label, None);
    let fetched = download::fetch(
        run.http,
        download::Source { url, bearer: None },
        download::Target::Discard,
        &|bytes| bar.set(bytes),
    )
    .await?;
    Ok((fetched.sha256, fetched.size))
}

/// What a failed wheel download most likely means.
fn url_hint(err: &DownloadError, file_name: &str) -> String {
    let status = match err {
        DownloadError::Http(http) => http.status(),
        _ => None,
    };
    match status {
        Some(StatusCode::NOT_FOUND) => match file_name.parse::<WheelFilename>() {
            Ok(wheel)
                if wheel
                    .python_tags
                    .iter()
                    .any(|tag| tag.starts_with("cp") && wheel.abi_tags.contains(tag)) =>
            {
                format!(
                    "no {} build of {} {} exists at this address: try the abi3 wheel of the same release (e.g. `cp39-abi3`), or check the release's file list",
                    wheel.python_tags.join("."),
                    wheel.name,
                    wheel.version
                )
            }
            _ => "the file is not there: check the release's file list for the exact name and version".to_owned(),
        },
        Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            "the host wants credentials: host the wheel where the build can fetch it".to_owned()
        }
        _ => "try again; if it keeps failing, download the URL by hand to see what it serves".to_owned(),
    }
}

/// The result of the Python resolution.
enum PythonFound {
    /// The stack has no Python packages.
    None,
    Locked {
        python: PythonLock,
        packages: Vec<LockedPackage>,
        fetched: bool,
    },
    Unresolved(Unresolved),
    Failed(Vec<ItemError>),
}

async fn lock_python(
    run: &LockRun<'_>,
    manifest: &Manifest,
    old: Option<&Lockfile>,
    updates: &BTreeSet<String>,
) -> PythonFound {
    let requested = lockfile::requested(manifest);
    if requested.is_empty() {
        return PythonFound::None;
    }
    let python = PythonLock {
        target: Target::of(manifest),
        requested: requested.clone(),
        sdist: lockfile::sdist_names(manifest),
    };
    let updating = old.is_some_and(|old| {
        old.packages
            .iter()
            .any(|package| updates.contains(&package.name))
    });
    if let Some(old) = old.filter(|old| old.python_is_current(manifest) && !updating) {
        return PythonFound::Locked {
            python,
            packages: old.packages.clone(),
            fetched: false,
        };
    }
    let torch_lines = manifest.torch.as_ref().map_or(0, |_| 3);
    let mut roots = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in requested.iter().enumerate() {
        match crate::manifest::parse_requirement(line) {
            Ok(requirement) => roots.push(Root {
                requirement,
                layer: if i < torch_lines {
                    Layer::Torch
                } else {
                    Layer::Packages
                },
            }),
            Err(err) => errors.push(ItemError {
                item: format!("`{line}`"),
                message: format!("not a PEP 508 requirement: {err}"),
                hint: "write `name==version`".to_owned(),
            }),
        }
    }
    if !errors.is_empty() {
        return PythonFound::Failed(errors);
    }
    let preferred: BTreeMap<String, Version> = old
        .iter()
        .flat_map(|old| &old.packages)
        .filter(|package| !updates.contains(&package.name))
        .filter_map(|package| {
            Some((
                package.name.clone(),
                Version::from_str(&package.version).ok()?,
            ))
        })
        .collect();
    let sdist: BTreeSet<String> = python.sdist.iter().cloned().collect();
    let sources = run.endpoints.sources(manifest);
    let resolver = Resolver {
        http: run.http,
        cache: run.cache,
        target: &python.target,
        sources: &sources,
        preferred: &preferred,
        sdist: &sdist,
        progress: run.progress,
        parallel: run.parallel,
    };
    match resolver.resolve(&roots).await {
        Ok(packages) => {
            report_changes(run.progress, old, &packages, &sources);
            PythonFound::Locked {
                python,
                packages,
                fetched: true,
            }
        }
        Err(failures) if failures.iter().all(|failure| failure.unreachable) => {
            match old.filter(|old| old.python_is_current(manifest)) {
                Some(old) => {
                    run.progress.line(format!(
                        "kept the locked Python packages: {}",
                        failures[0].message
                    ));
                    PythonFound::Locked {
                        python,
                        packages: old.packages.clone(),
                        fetched: false,
                    }
                }
                None => PythonFound::Unresolved(Unresolved {
                    input: "Python packages".to_owned(),
                    key: "python.packages".to_owned(),
                    reason: failures[0].message.clone(),
                }),
            }
        }
        Err(failures) => PythonFound::Failed(
            failures
                .into_iter()
                .filter(|failure| !failure.unreachable)
                .map(
                    |ResolveError {
                         package,
                         message,
                         hint,
                         ..
                     }| ItemError {
                        item: format!("Python package {package}"),
                        message,
                        hint,
                    },
                )
                .collect(),
        ),
    }
}

/// One line per package that was added, changed or dropped since the old lock.
fn report_changes(
    progress: &Progress,
    old: Option<&Lockfile>,
    packages: &[LockedPackage],
    sources: &Sources,
) {
    let before: BTreeMap<&str, &str> = old
        .iter()
        .flat_map(|old| &old.packages)
        .map(|package| (package.name.as_str(), package.version.as_str()))
        .collect();
    let after: BTreeMap<&str, &str> = packages
        .iter()
        .map(|package| (package.name.as_str(), package.version.as_str()))
        .collect();
    for (name, version) in &after {
        match before.get(name) {
            None => progress.line(format!("  + {name} {version}")),
            Some(was) if was != version => progress.line(format!("  ~ {name} {was} -> {version}")),
            Some(_) => {}
        }
    }
    for (name, version) in &before {
        if !after.contains_key(name) {
            progress.line(format!("  - {name} {version}"));
        }
    }
    let torch = packages
        .iter()
        .filter(|package| package.layer == Layer::Torch)
        .count();
    let files: usize = packages.iter().map(|package| package.files.len()).sum();
    let from = if sources.torch == sources.packages || torch == 0 {
        sources.packages.label()
    } else {
        format!("{} and {}", sources.torch.label(), sources.packages.label())
    };
    progress.line(format!(
        "locked {} Python packages ({torch} in the torch layer), {files} files, from {from}",
        packages.len(),
    ));
}
