//! The dependency closure of the image's Python packages: torch's specs and the manifest's
//! lines, and everything they require in turn (markers evaluated for the image), each pinned to
//! one version with the files of it that install on the image — what pip's `--require-hashes`
//! needs, since it refuses any package that is not listed with its hashes.
//!
//! Greedy, in rounds: every demanded package takes the version its requirers allow (an exact
//! pin, else the version of the current lock when it still fits and is not being updated, else
//! the newest with a fitting file), then the requirements of the chosen versions are walked
//! again, until nothing changes. A conflict is reported with who asked for what; it is not
//! backtracked.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt as _};
use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{ExtraName, MarkerEnvironment, VersionOrUrl};

use super::cache::Cache;
use super::index::{Index, IndexError, IndexFile};
use super::lockfile::{Layer, LockedFile, LockedPackage};
use super::progress::Progress;
use super::target::{is_sdist, FileFit, Target};
use crate::compat::normalize_name;
use crate::download::{self, DownloadError, Source, Target as Sink};
use crate::http::Http;
use crate::manifest::PackageRequirement;

/// Rounds before the resolver gives up on settling.
const MAX_ROUNDS: usize = 40;

/// A requirement the resolution starts from.
#[derive(Debug, Clone)]
pub struct Root {
    pub requirement: PackageRequirement,
    pub layer: Layer,
}

/// Where each layer's packages come from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub torch: Index,
    pub packages: Index,
}

impl Sources {
    pub fn of_layer(&self, layer: Layer) -> &Index {
        match layer {
            Layer::Torch => &self.torch,
            Layer::Packages => &self.packages,
        }
    }
}

/// A package that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    pub package: String,
    pub message: String,
    pub hint: String,
    /// The index could not be reached: the packages stay unresolved rather than wrong.
    pub unreachable: bool,
}

/// Everything the resolution reads.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub http: &'a Http,
    pub cache: &'a Cache,
    pub target: &'a Target,
    pub sources: &'a Sources,
    /// Versions of the current lock that stay while they fit.
    pub preferred: &'a BTreeMap<String, Version>,
    /// Normalised names that may be installed from a source distribution.
    pub sdist: &'a BTreeSet<String>,
    pub progress: &'a Progress,
    pub parallel: usize,
}

/// A version chosen for a package.
#[derive(Debug, Clone)]
struct Chosen {
    version: Version,
    files: Vec<IndexFile>,
    requires: Vec<PackageRequirement>,
    /// The layer whose index it was taken from.
    source: Layer,
}

/// What the packages chosen so far ask of one package.
#[derive(Debug, Clone)]
struct Demand {
    /// Each requirement with who made it.
    constraints: Vec<(PackageRequirement, String)>,
    extras: BTreeSet<ExtraName>,
    layer: Layer,
}

impl Demand {
    fn allows(&self, version: &Version) -> bool {
        self.constraints
            .iter()
            .all(|(requirement, _)| match &requirement.version_or_url {
                None => true,
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.contains(version),
                Some(VersionOrUrl::Url(_)) => false,
            })
    }

    /// The version an `==X` (without `*`) pins, if one does.
    fn exact(&self) -> Option<Version> {
        self.specifiers().find_map(|specifiers| {
            let mut iter = specifiers.iter();
            match (iter.next(), iter.next()) {
                (Some(only), None)
                    if matches!(only.operator(), Operator::Equal | Operator::ExactEqual) =>
                {
                    Some(only.version().clone())
                }
                _ => None,
            }
        })
    }

    fn allows_prereleases(&self) -> bool {
        self.specifiers().any(|specifiers| {
            specifiers
                .iter()
                .any(|spec| spec.version().any_prerelease())
        })
    }

    fn specifiers(&self) -> impl Iterator<Item = &VersionSpecifiers> {
        self.constraints
            .iter()
            .filter_map(|(requirement, _)| match &requirement.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => Some(specifiers),
                _ => None,
            })
    }

    /// `name>=1 (from x 1.0), name<2 (from the manifest)`.
    fn explain(&self) -> String {
        self.constraints
            .iter()
            .map(|(requirement, who)| {
                let spec = match &requirement.version_or_url {
                    Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.to_string(),
                    Some(VersionOrUrl::Url(url)) => format!(" @ {url}"),
                    None => String::new(),
                };
                format!("{}{spec} (from {who})", requirement.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Resolver<'_> {
    /// The closure of `roots`, sorted by name; or every package that failed.
    pub async fn resolve(&self, roots: &[Root]) -> Result<Vec<LockedPackage>, Vec<ResolveError>> {
        let markers = self.target.markers();
        let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
        for round in 1..=MAX_ROUNDS {
            let demands = self.demands(roots, &chosen, &markers);
            let pending: Vec<(String, Demand)> = demands
                .iter()
                .filter(|(name, demand)| {
                    chosen.get(*name).is_none_or(|chosen| {
                        !demand.allows(&chosen.version)
                            || self.sources.of_layer(chosen.source)
                                != self.sources.of_layer(demand.layer)
                    })
                })
                .map(|(name, demand)| (name.clone(), demand.clone()))
                .collect();
            if pending.is_empty() {
                return self.finish(&demands, chosen).await;
            }
            self.progress.status(format!(
                "resolving Python packages: round {round}, {} to choose, {} chosen",
                pending.len(),
                chosen.len()
            ));
            let results: Vec<(String, Result<Chosen, ResolveError>)> = stream::iter(pending)
                .map(|(name, demand)| async move {
                    let result = self.choose(&name, &demand).await;
                    (name, result)
                })
                .buffer_unordered(self.parallel.max(1))
                .collect()
                .await;
            let mut errors = Vec::new();
            for (name, result) in results {
                match result {
                    Ok(choice) => {
                        chosen.insert(name, choice);
                    }
                    Err(err) => errors.push(err),
                }
            }
            if !errors.is_empty() {
                errors.sort_by(|a, b| a.package.cmp(&b.package));
                return Err(errors);
            }
        }
        Err(vec![ResolveError {
            package: "python packages".to_owned(),
            message: format!("the requirements did not settle after {MAX_ROUNDS} rounds"),
            hint: "pin the packages that keep changing with `==` in [python] packages".to_owned(),
            unreachable: false,
        }])
    }

    /// What the roots and the chosen versions (those that still fit) ask for, by package.
    fn demands(
        &self,
        roots: &[Root],
        chosen: &BTreeMap<String, Chosen>,
        markers: &MarkerEnvironment,
    ) -> BTreeMap<String, Demand> {
        let mut demands: BTreeMap<String, Demand> = BTreeMap::new();
        let add = |demands: &mut BTreeMap<String, Demand>,
                   requirement: &PackageRequirement,
                   who: String,
                   layer: Layer|
         -> bool {
            let name = normalize_name(requirement.name.as_ref());
            let demand = demands.entry(name).or_insert_with(|| Demand {
                constraints: Vec::new(),
                extras: BTreeSet::new(),
                layer,
            });
            let mut changed = false;
            if !demand
                .constraints
                .iter()
                .any(|(known, from)| known == requirement && *from == who)
            {
                demand.constraints.push((requirement.clone(), who));
                changed = true;
            }
            for extra in &requirement.extras {
                changed |= demand.extras.insert(extra.clone());
            }
            if layer == Layer::Torch && demand.layer != Layer::Torch {
                demand.layer = Layer::Torch;
                changed = true;
            }
            changed
        };
        for root in roots {
            if root.requirement.marker.evaluate(markers, &[]) {
                let who = match root.layer {
                    Layer::Torch => "[torch]".to_owned(),
                    Layer::Packages => "[python] packages".to_owned(),
                };
                add(&mut demands, &root.requirement, who, root.layer);
            }
        }
        loop {
            let mut changed = false;
            let snapshot: Vec<(String, Demand)> = demands
                .iter()
                .map(|(name, demand)| (name.clone(), demand.clone()))
                .collect();
            for (name, demand) in snapshot {
                let Some(choice) = chosen
                    .get(&name)
                    .filter(|choice| demand.allows(&choice.version))
                else {
                    continue;
                };
                let extras: Vec<ExtraName> = demand.extras.iter().cloned().collect();
                for requirement in &choice.requires {
                    if requirement.marker.evaluate(markers, &extras) {
                        let who = format!("{name} {}", choice.version);
                        changed |= add(&mut demands, requirement, who, demand.layer);
                    }
                }
            }
            if !changed {
                return demands;
            }
        }
    }

    /// Picks the version of one package and reads what it requires.
    async fn choose(&self, name: &str, demand: &Demand) -> Result<Chosen, ResolveError> {
        let index = self.sources.of_layer(demand.layer);
        let fail = |message: String, hint: String| ResolveError {
            package: name.to_owned(),
            message,
            hint,
            unreachable: false,
        };
        if let Some((_, requirement)) = demand
            .constraints
            .iter()
            .map(|(requirement, who)| (who, requirement))
            .find(|(_, requirement)| {
                matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_)))
            })
        {
            return Err(fail(
                format!(
                    "`{requirement}` installs from a URL, which the lock cannot pin by version"
                ),
                "give the wheel as a [[wheel]] with its URL instead".to_owned(),
            ));
        }
        let sdist = self.sdist.contains(name);
        if let Some(exact) = demand.exact().filter(|exact| !demand.allows(exact)) {
            return Err(fail(
                format!("{name} is asked for in versions that exclude each other: {}", demand.explain()),
                format!("the requirements cannot all hold with {name} {exact}; change the pins that disagree"),
            ));
        }
        let first_choice = demand.exact().or_else(|| {
            self.preferred
                .get(name)
                .filter(|version| demand.allows(version))
                .cloned()
        });
        if let Some(version) = first_choice {
            let release = index
                .release(self.http, self.cache, name, &version)
                .await
                .map_err(|err| self.index_error(name, index, &err))?;
            let exact = demand.exact().is_some();
            match self.usable(&release.files, sdist, exact) {
                Ok(files) => {
                    let requires = match release.requires_dist {
                        Some(lines) => lines,
                        None => self.requires_dist(name, &version, index, &files).await?,
                    };
                    return self.chosen(name, version, files, &requires, demand.layer);
                }
                Err(reasons) if exact => {
                    return Err(self.no_fitting_file(
                        name,
                        &version,
                        &release.files,
                        &reasons,
                        sdist,
                    ))
                }
                Err(_) => {}
            }
        }
        let project = index
            .project(self.http, name)
            .await
            .map_err(|err| self.index_error(name, index, &err))?;
        let prereleases = demand.allows_prereleases();
        for (version, files) in project.releases.iter().rev() {
            if !demand.allows(version) || (version.any_prerelease() && !prereleases) {
                continue;
            }
            let Ok(files) = self.usable(files, sdist, false) else {
                continue;
            };
            let requires = self.requires_dist(name, version, index, &files).await?;
            return self.chosen(name, version.clone(), files, &requires, demand.layer);
        }
        let newest = project
            .releases
            .keys()
            .next_back()
            .map(|version| format!(" (newest: {version})"))
            .unwrap_or_default();
        Err(fail(
            format!(
                "no version of {name} on {} satisfies {} and has a file for {}{newest}",
                index.label(),
                demand.explain(),
                self.target
            ),
            "pin a version that has a wheel for the image in [python] packages, or allow a source build with [python] sdist".to_owned(),
        ))
    }

    fn chosen(
        &self,
        name: &str,
        version: Version,
        files: Vec<IndexFile>,
        requires: &[String],
        source: Layer,
    ) -> Result<Chosen, ResolveError> {
        let requires = requires
            .iter()
            .map(|line| {
                crate::manifest::parse_requirement(line).map_err(|err| ResolveError {
                    package: name.to_owned(),
                    message: format!(
                        "{name} {version} requires `{line}`, which does not parse: {err}"
                    ),
                    hint: "pin another version of it".to_owned(),
                    unreachable: false,
                })
            })
            .collect::<Result<_, _>>()?;
        self.progress.status(format!("resolved {name} {version}"));
        Ok(Chosen {
            version,
            files,
            requires,
            source,
        })
    }

    /// The files that install on the image: fitting wheels, and the sdist where allowed;
    /// otherwise every reason.
    fn usable(
        &self,
        files: &[IndexFile],
        sdist: bool,
        yanked_ok: bool,
    ) -> Result<Vec<IndexFile>, Vec<String>> {
        let mut usable = Vec::new();
        let mut reasons = Vec::new();
        for file in files {
            if file.yanked && !yanked_ok {
                reasons.push(format!("{} is yanked", file.filename));
                continue;
            }
            match self
                .target
                .fit(&file.filename, file.requires_python.as_deref(), sdist)
            {
                FileFit::Wheel | FileFit::Sdist => usable.push(file.clone()),
                FileFit::No(reason) => reasons.push(reason),
            }
        }
        if usable.is_empty() {
            Err(reasons)
        } else {
            Ok(usable)
        }
    }

    /// What a release requires: from the core metadata of one of its wheels (PEP 658, else
    /// read out of the wheel), else from the index's per-version document.
    async fn requires_dist(
        &self,
        name: &str,
        version: &Version,
        index: &Index,
        files: &[IndexFile],
    ) -> Result<Vec<String>, ResolveError> {
        let mut wheels: Vec<&IndexFile> = files
            .iter()
            .filter(|file| file.filename.ends_with(".whl"))
            .collect();
        wheels.sort_by_key(|file| !file.metadata);
        if let Some(file) = wheels.first() {
            return index
                .requires_dist(self.http, self.cache, file)
                .await
                .map_err(|err| self.index_error(name, index, &err));
        }
        let release = index
            .release(self.http, self.cache, name, version)
            .await
            .map_err(|err| self.index_error(name, index, &err))?;
        release.requires_dist.ok_or_else(|| ResolveError {
            package: name.to_owned(),
            message: format!(
                "{} serves no metadata for {name} {version}: its requirements are unknown",
                index.label()
            ),
            hint: format!("pin {name} and what it needs with `==` in [python] packages"),
            unreachable: false,
        })
    }

    fn index_error(&self, name: &str, index: &Index, err: &IndexError) -> ResolveError {
        let (hint, unreachable) = match err {
            IndexError::Http(http) if http.is_unreachable() => (
                format!("{} stays unresolved; run `podstack lock` where it can be reached", index.label()),
                true,
            ),
            IndexError::NoProject { .. } => (
                format!("check the name `{name}`; a package from elsewhere goes in [[wheel]] with its URL"),
                false,
            ),
            IndexError::NoVersion { .. } => (
                "pin a version that exists; the project's page lists them".to_owned(),
                false,
            ),
            _ => ("try again; a mirror or proxy in between may be at fault".to_owned(), false),
        };
        ResolveError {
            package: name.to_owned(),
            message: err.to_string(),
            hint,
            unreachable,
        }
    }

    fn no_fitting_file(
        &self,
        name: &str,
        version: &Version,
        files: &[IndexFile],
        reasons: &[String],
        sdist: bool,
    ) -> ResolveError {
        let python = self.target.python;
        let sdist_fits = files.iter().any(|file| {
            is_sdist(&file.filename) && self.target.allows_python(file.requires_python.as_deref())
        });
        let hint = if sdist_fits && !sdist {
            format!("only a source distribution fits: allow building it with `sdist = [\"{name}\"]` under [python], or pin a version with a wheel for CPython {python}")
        } else if files
            .iter()
            .any(|file| !self.target.allows_python(file.requires_python.as_deref()))
        {
            format!("{name} {version} does not support CPython {python}: pin a version of {name} that does")
        } else if files.iter().any(|file| file.filename.contains("-abi3-")) {
            "an abi3 wheel exists but does not fit the platform; `podstack wheel-compat FILE --python X.Y` explains a file".to_owned()
        } else {
            format!(
                "pin a version of {name} with a wheel for CPython {python} on {} Linux; `podstack wheel-compat FILE --python {python}` explains a file",
                self.target.arch
            )
        };
        let mut distinct: Vec<&str> = Vec::new();
        for reason in reasons {
            if !distinct.contains(&reason.as_str()) {
                distinct.push(reason);
            }
        }
        let shown = &distinct[..distinct.len().min(4)];
        let more = distinct.len() - shown.len();
        ResolveError {
            package: name.to_owned(),
            message: format!(
                "no file of {name} {version} installs on {}: {}{}",
                self.target,
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ),
            hint,
            unreachable: false,
        }
    }

    /// The locked packages: each demanded package's choice with its files' hashes (a file an
    /// index lists without a hash is downloaded and hashed).
    async fn finish(
        &self,
        demands: &BTreeMap<String, Demand>,
        mut chosen: BTreeMap<String, Chosen>,
    ) -> Result<Vec<LockedPackage>, Vec<ResolveError>> {
        let mut packages = Vec::new();
        let mut errors = Vec::new();
        for (name, demand) in demands {
            let Some(choice) = chosen.remove(name) else {
                continue;
            };
            let mut files = Vec::new();
            for file in choice.files {
                match self.hashed(name, &file).await {
                    Ok(locked) => files.push(locked),
                    Err(err) => errors.push(err),
                }
            }
            files.sort_by(|a, b| a.file.cmp(&b.file));
            packages.push(LockedPackage {
                name: name.clone(),
                version: choice.version.to_string(),
                layer: demand.layer,
                files,
            });
        }
        if errors.is_empty() {
            Ok(packages)
        } else {
            Err(errors)
        }
    }

    async fn hashed(&self, name: &str, file: &IndexFile) -> Result<LockedFile, ResolveError> {
        if let Some(sha256) = &file.sha256 {
            return Ok(LockedFile {
                file: file.filename.clone(),
                sha256: sha256.clone(),
                size: file.size,
            });
        }
        let _permit = self.http.permit().await;
        let bar = self.progress.transfer(&file.filename, file.size);
        let fetched = download::fetch(
            self.http,
            Source {
                url: &file.url,
                bearer: None,
            },
            Sink::Discard,
            &|bytes| bar.set(bytes),
        )
        .await
        .map_err(|err| ResolveError {
            package: name.to_owned(),
            unreachable: matches!(&err, DownloadError::Http(http) if http.is_unreachable()),
            message: format!(
                "{} has no hash in its index, and downloading it to hash it failed: {err}",
                file.filename
            ),
            hint: "try again; the index serves the file".to_owned(),
        })?;
        Ok(LockedFile {
            file: file.filename.clone(),
            sha256: fetched.sha256,
            size: Some(fetched.size),
        })
    }
}
