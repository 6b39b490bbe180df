//! Rendering a validated stack into `generated/<stack>/`: the templates, the render context
//! built from the manifest, the digest, and the drift check against files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::compat::{Compat, PYTORCH_INDEX};
use crate::deploy::DeployContext;
use crate::digest::{DigestInputs, StackDigest};
use crate::lock::{Layer, LockedPackage, Lockfile};
use crate::manifest::{Loaded, Manifest, TorchIndex};
use crate::project::Project;
use crate::resolved::{paths, PinnedPackage, ResolvedStack};
use crate::shell::ShellWord;
use crate::value::{
    self, AptPackage, CommitHash, DownloadUrl, FolderName, GitRef, GitRevision, GitUrl,
    ImageDigest, ImageReference, Invalid, PackageName, PinnedImage, PipRequirement, ProjectPath,
    Sha256, WheelLink,
};

pub(crate) static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Template names, each rendered to the output file of the same name without `.j2`.
pub const DOCKERFILE: &str = "Dockerfile.j2";
pub const START_SH: &str = "start.sh.j2";
pub const REQUIREMENTS: &str = "requirements.lock.txt.j2";
/// torch and what it needs, for the torch layer; rendered only for stacks with `[torch]`.
pub const TORCH_LOCK: &str = "torch.lock.txt.j2";
pub const CONSTRAINTS: &str = "constraints.txt.j2";
pub const DIGEST: &str = "DIGEST.j2";
const RENDERED: [&str; 6] = [
    DOCKERFILE,
    START_SH,
    REQUIREMENTS,
    TORCH_LOCK,
    CONSTRAINTS,
    DIGEST,
];

/// How to run the image beyond RunPod, rendered after the digest and not part of it (see
/// [`crate::deploy`]): Compose for one box, Kubernetes objects for a cluster.
pub const COMPOSE: &str = "compose.yaml.j2";
pub const KUBERNETES_STATEFULSET: &str = "kubernetes/statefulset.yaml.j2";
pub const KUBERNETES_VOLUME: &str = "kubernetes/volume.yaml.j2";
pub const KUBERNETES_SERVICES: &str = "kubernetes/services.yaml.j2";
const DEPLOYMENTS: [&str; 4] = [
    COMPOSE,
    KUBERNETES_STATEFULSET,
    KUBERNETES_VOLUME,
    KUBERNETES_SERVICES,
];

/// Files of a project rather than of a stack (`podstack init`, the CI workflow); rendered on
/// their own with [`render_project_file`].
const PROJECT_FILES: [&str; 2] = [crate::workflow::WORKFLOW, crate::init::STACK_TEMPLATE];

/// The resolved manifest's output name; it is serialised, not templated.
pub const STACK_JSON: &str = "stack.json";
/// The RunPod pod template (a REST API `POST /templates` body), serialised.
pub const RUNPOD_TEMPLATE: &str = "runpod-template.json";
/// Control panel assets, copied into the image as they are.
pub const UI_DIR: &str = "templates/ui";

/// Stands in for the digest while rendering the files the digest is computed over.
const DIGEST_PLACEHOLDER: &str = "sha256:<digest of this stack>";

/// A stack rendered in memory.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub files: BTreeMap<String, String>,
    pub digest: StackDigest,
    pub image_tag: String,
}

/// Why a stack could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot read {path}: {source}\n  hint: {hint}")]
    Read {
        path: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {invalid}")]
    Invalid { key: String, invalid: Invalid },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the templates see; built from the manifest, never the manifest itself. Every
/// value from the manifest or lock is a validated type; what reaches a `RUN` line is a
/// [`ShellWord`].
#[derive(Debug, Serialize)]
struct RenderContext<'a> {
    header: String,
    stack: StackContext<'a>,
    image_tag: String,
    digest: String,
    builder_image: PinnedImage,
    base_image: PinnedImage,
    python: String,
    venv: &'static str,
    runtime_dir: &'static str,
    comfyui_dir: &'static str,
    apt: Vec<ShellWord>,
    torch: Option<TorchContext>,
    wheels: Vec<ShellWord>,
    packages: bool,
    /// Requirement lines, each with its `--hash` options when the stack is locked.
    requirements: Vec<PipRequirement>,
    /// Every requirement line carries the hashes of its files (`stacks/<stack>.lock`).
    requirements_hashed: bool,
    constraints: Vec<PipRequirement>,
    comfyui: ComfyUiContext,
    custom_nodes: Vec<CustomNodeContext>,
    ports: Vec<u16>,
}

#[derive(Debug, Serialize)]
struct StackContext<'a> {
    name: &'a str,
    version: String,
}

#[derive(Debug, Serialize)]
struct TorchContext {
    index_url: Option<String>,
    /// torch.lock.txt's lines: torch's closure with hashes when locked, else the three specs.
    requirements: Vec<PipRequirement>,
    hashed: bool,
    /// `NVIDIA_VISIBLE_DEVICES` and `NVIDIA_DRIVER_CAPABILITIES`: a torch stack is a GPU
    /// stack, and the NVIDIA container runtime injects the driver into an image that sets them.
    nvidia_visible_devices: String,
    nvidia_driver_capabilities: String,
}

#[derive(Debug, Serialize)]
struct ComfyUiContext {
    path: Option<ProjectPath>,
    repo: Option<ShellWord>,
    commit: Option<ShellWord>,
    requirements: bool,
}

#[derive(Debug, Serialize)]
struct CustomNodeContext {
    name: ShellWord,
    repo: ShellWord,
    /// The pinned commit, or the branch or tag an unlocked manifest follows.
    commit: ShellWord,
    requirements: bool,
}

/// The header every generated file starts with (templates put it behind a comment marker).
pub fn header(shown_as: &str) -> String {
    // One line whatever the file is called: it goes behind a `#` in the Dockerfile.
    format!(
        "generated by podstack from {}; do not edit",
        crate::problem::one_line(shown_as)
    )
}

/// Renders a stack that passed validation, with its lock file already pinned into the manifest
/// ([`crate::lock::lockfile::pin`]); the lock adds the hashes of the Python packages.
pub fn render(
    project: &Project,
    loaded: &Loaded,
    lock: Option<&Lockfile>,
) -> Result<Rendered, RenderError> {
    let manifest = &loaded.manifest;
    let shown_as = &loaded.source.shown_as;
    let mut resolved = ResolvedStack::new(manifest, &header(shown_as));
    let layers = Layers::of(manifest, lock)?;
    if let Some(locked) = lock.filter(|lock| lock.python_is_current(manifest)) {
        resolved.pin_packages(locked.packages.iter().map(|package| PinnedPackage {
            name: package.name.clone(),
            version: package.version.clone(),
        }));
    }
    let stack_json = resolved.to_json();

    let mut inputs = DigestInputs::default();
    inputs.add("podstack-version", env!("CARGO_PKG_VERSION"));
    inputs.add(format!("generated/{STACK_JSON}"), stack_json.as_bytes());
    for (name, content) in render_templates(manifest, &layers, shown_as, DIGEST_PLACEHOLDER)? {
        inputs.add(format!("generated/{name}"), content);
    }
    for (name, content) in crate::panel_files::panel_files(project)? {
        inputs.add(name, content);
    }
    if let Some(path) = &manifest.comfyui.path {
        for (name, content) in read_tree(&project.root, path)? {
            inputs.add(name, content);
        }
    }
    let digest = inputs.digest();

    let mut files = render_templates(manifest, &layers, shown_as, &digest.to_string())?;
    files.insert(STACK_JSON.to_owned(), stack_json);
    files.extend(render_deployments(manifest, shown_as, &digest.to_string())?);
    Ok(Rendered {
        name: manifest.stack.name.clone(),
        image_tag: image_tag(manifest, &digest.to_string()),
        files,
        digest,
    })
}

/// The image as a registry pulls it: the digest tag behind `deploy.registry` when set.
fn image_name(manifest: &Manifest, digest: &str) -> String {
    let tag = image_tag(manifest, digest);
    let registry = &manifest.deploy.registry;
    if registry.is_empty() {
        tag
    } else {
        format!("{}/{tag}", registry.trim_end_matches('/'))
    }
}

fn image_tag(manifest: &Manifest, digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    let short: String = hex.chars().take(12).collect();
    format!("{}:{}-{short}", manifest.stack.name, manifest.stack.version)
}

/// The pip installs' requirement lines, with hashes where the lock has the layer.
#[derive(Debug)]
struct Layers {
    torch: Option<Vec<PipRequirement>>,
    packages: Option<Vec<PipRequirement>>,
}

impl Layers {
    fn of(manifest: &Manifest, lock: Option<&Lockfile>) -> Result<Self, RenderError> {
        let hashed = |layer| {
            lock.and_then(|lock| lock.layer(manifest, layer))
                .map(|packages| packages.into_iter().map(hashed_line).collect())
                .transpose()
        };
        Ok(Self {
            torch: hashed(Layer::Torch)?,
            packages: hashed(Layer::Packages)?,
        })
    }
}

/// `name==version` and a `--hash` line per file, from a lock entry (checked when it was read).
fn hashed_line(package: &LockedPackage) -> Result<PipRequirement, RenderError> {
    let hashes = package
        .files
        .iter()
        .map(|file| typed("package.files.sha256", Sha256::parse(&file.sha256)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PipRequirement::pinned(
        &typed("package.name", PackageName::parse(&package.name))?,
        &typed("package.version", value::locked_version(&package.version))?,
        &hashes,
    ))
}

fn render_templates(
    manifest: &Manifest,
    layers: &Layers,
    shown_as: &str,
    digest: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let env = environment()?;
    let context = RenderContext::new(manifest, layers, shown_as, digest)?;
    let mut files = BTreeMap::new();
    files.insert(
        RUNPOD_TEMPLATE.to_owned(),
        runpod_template(manifest, shown_as, digest),
    );
    for name in RENDERED {
        if name == TORCH_LOCK && manifest.torch.is_none() {
            continue;
        }
        let (file, text) = render_one(&env, name, &context)?;
        files.insert(file, text);
    }
    Ok(files)
}

/// `compose.yaml` and `kubernetes/*.yaml`, for the image of this digest.
fn render_deployments(
    manifest: &Manifest,
    shown_as: &str,
    digest: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let env = environment()?;
    let context = DeployContext::new(
        manifest,
        header(shown_as),
        image_name(manifest, digest),
        digest,
    );
    DEPLOYMENTS
        .iter()
        .map(|name| render_one(&env, name, &context))
        .collect()
}

/// One template, named as its output file (without `.j2`), normalised.
fn render_one(
    env: &Environment<'static>,
    name: &str,
    context: &impl Serialize,
) -> Result<(String, String), RenderError> {
    let text = env
        .get_template(name)
        .and_then(|template| template.render(context))
        .map_err(|source| RenderError::Template {
            name: name.to_owned(),
            source,
        })?;
    Ok((
        name.trim_end_matches(".j2").to_owned(),
        normalise_text(&text),
    ))
}

/// One of the [`PROJECT_FILES`] rendered with its context, LF endings and one final newline.
pub(crate) fn render_project_file(
    name: &str,
    context: &impl Serialize,
) -> Result<String, RenderError> {
    render_one(&environment()?, name, context).map(|(_, text)| text)
}

/// A template copied through as it is (no `.j2`), e.g. `init/gitignore`.
pub(crate) fn plain_template(name: &str) -> &'static str {
    TEMPLATES
        .get_file(name)
        .and_then(|file| file.contents_utf8())
        .unwrap_or_else(|| panic!("templates/{name} is compiled in"))
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("quoted", yaml_quoted);
    for name in RENDERED.into_iter().chain(DEPLOYMENTS).chain(PROJECT_FILES) {
        let text = TEMPLATES
            .get_file(name)
            .and_then(|file| file.contents_utf8())
            .unwrap_or_default();
        env.add_template(name, text)
            .map_err(|source| RenderError::Template {
                name: name.to_owned(),
                source,
            })?;
    }
    Ok(env)
}

/// A string as a double-quoted YAML scalar (a JSON string is one), so no value of the
/// manifest can start a YAML structure of its own.
fn yaml_quoted(value: String) -> String {
    serde_json::to_string(&value).expect("a string serialises to JSON")
}

/// LF line endings and exactly one final newline.
fn normalise_text(text: &str) -> String {
    let mut text = text.replace("\r\n", "\n").trim_end().to_owned();
    text.push('\n');
    text
}

/// A value of the manifest as its validated type; render only runs on validated stacks, so
/// this fails only when a caller skipped validation.
fn typed<T>(key: &str, parsed: Result<T, Invalid>) -> Result<T, RenderError> {
    parsed.map_err(|invalid| RenderError::Invalid {
        key: key.to_owned(),
        invalid,
    })
}

fn pinned_image(
    key: &str,
    image: &str,
    digest: Option<&String>,
) -> Result<PinnedImage, RenderError> {
    Ok(PinnedImage {
        image: typed(key, ImageReference::parse(image))?,
        digest: digest
            .map(|digest| typed(key, ImageDigest::parse(digest)))
            .transpose()?,
    })
}

fn revision(
    key: &str,
    commit: Option<&str>,
    git_ref: Option<&str>,
) -> Result<Option<ShellWord>, RenderError> {
    let revision = match (commit, git_ref) {
        (Some(commit), _) => GitRevision::Commit(typed(key, CommitHash::parse(commit))?),
        (None, Some(git_ref)) => GitRevision::Ref(typed(key, GitRef::parse(git_ref))?),
        (None, None) => return Ok(None),
    };
    Ok(Some(ShellWord::of(&revision)))
}

impl<'a> RenderContext<'a> {
    fn new(
        manifest: &'a Manifest,
        layers: &Layers,
        shown_as: &str,
        digest: &str,
    ) -> Result<Self, RenderError> {
        let base = &manifest.base;
        let python = base.python.to_string();
        let mut apt: Vec<AptPackage> = [
            format!("python{python}"),
            format!("python{python}-venv"),
            "ca-certificates".to_owned(),
        ]
        .iter()
        .chain(&manifest.system.apt)
        .map(|name| typed("system.apt", AptPackage::parse(name)))
        .collect::<Result<_, _>>()?;
        let clones = manifest.comfyui.repo.is_some() || !manifest.comfyui.custom_nodes.is_empty();
        if clones {
            apt.push(typed("system.apt", AptPackage::parse("git"))?);
        }
        apt.sort();
        apt.dedup();

        let mut torch_specs = Vec::new();
        if let Some(torch) = &manifest.torch {
            for (name, key, version) in [
                ("torch", "torch.version", &torch.version),
                ("torchvision", "torch.torchvision", &torch.torchvision),
                ("torchaudio", "torch.torchaudio", &torch.torchaudio),
            ] {
                let bare = typed(key, value::BareVersion::parse(version))?;
                let local = typed(
                    key,
                    value::locked_version(&torch.local_version(&bare.to_string())),
                )?;
                let name = typed(key, PackageName::parse(name))?;
                torch_specs.push(PipRequirement::pinned(&name, &local, &[]));
            }
        }
        let driver = Compat::embedded().driver_environment();
        let torch = manifest.torch.as_ref().map(|torch| TorchContext {
            index_url: (torch.index == TorchIndex::Pytorch)
                .then(|| format!("{PYTORCH_INDEX}/{}", torch.cuda.torch_variant())),
            requirements: layers.torch.clone().unwrap_or_else(|| torch_specs.clone()),
            hashed: layers.torch.is_some(),
            nvidia_visible_devices: driver.visible_devices.clone(),
            nvidia_driver_capabilities: driver.capabilities.join(","),
        });

        let mut wheels = Vec::new();
        for wheel in &manifest.wheels {
            let url = typed("wheel.url", DownloadUrl::parse(&wheel.url))?;
            let sha256 = wheel
                .sha256
                .as_deref()
                .map(|hash| typed("wheel.sha256", Sha256::parse(hash)))
                .transpose()?;
            wheels.push(ShellWord::of(&WheelLink::new(&url, sha256.as_ref())));
        }
        let comfyui = &manifest.comfyui;
        let mut custom_nodes = Vec::new();
        for node in &comfyui.custom_nodes {
            let key = "comfyui.custom_nodes";
            custom_nodes.push(CustomNodeContext {
                name: ShellWord::of(&typed(key, FolderName::parse(&node.folder_name()))?),
                repo: ShellWord::of(&typed(key, GitUrl::parse(&node.repo))?),
                commit: revision(key, node.commit.as_deref(), node.git_ref.as_deref())?
                    .ok_or_else(|| RenderError::Invalid {
                        key: key.to_owned(),
                        invalid: Invalid {
                            message: format!("`{}` has no commit", node.repo),
                            hint: "validate the stack first".to_owned(),
                        },
                    })?,
                requirements: node.requirements,
            });
        }

        let mut ports = vec![manifest.runtime.panel_port];
        ports.extend(manifest.comfyui_ports());
        if manifest.runtime.jupyter.enabled {
            ports.push(manifest.runtime.jupyter.port);
        }
        Ok(Self {
            header: header(shown_as),
            stack: StackContext {
                name: &manifest.stack.name,
                version: manifest.stack.version.to_string(),
            },
            image_tag: image_tag(manifest, digest),
            digest: digest.to_owned(),
            builder_image: pinned_image(
                "base.builder",
                &base.builder,
                base.builder_digest.as_ref(),
            )?,
            base_image: pinned_image("base.image", &base.image, base.digest.as_ref())?,
            python,
            venv: paths::VENV,
            runtime_dir: paths::RUNTIME,
            comfyui_dir: paths::COMFYUI,
            apt: apt.iter().map(ShellWord::of).collect(),
            torch,
            wheels,
            packages: layers
                .packages
                .as_ref()
                .map_or(!manifest.python.packages.is_empty(), |lines| {
                    !lines.is_empty()
                }),
            requirements: match &layers.packages {
                Some(lines) => lines.clone(),
                None => manifest
                    .python
                    .packages
                    .iter()
                    .map(|line| typed("python.packages", PipRequirement::line(line)))
                    .collect::<Result<_, _>>()?,
            },
            requirements_hashed: layers.packages.is_some(),
            constraints: torch_specs,
            comfyui: ComfyUiContext {
                path: comfyui
                    .path
                    .as_deref()
                    .map(|path| typed("comfyui.path", ProjectPath::parse(path)))
                    .transpose()?,
                repo: comfyui
                    .repo
                    .as_deref()
                    .map(|repo| {
                        typed("comfyui.repo", GitUrl::parse(repo)).map(|url| ShellWord::of(&url))
                    })
                    .transpose()?,
                commit: revision(
                    "comfyui.commit",
                    comfyui.commit.as_deref(),
                    comfyui.git_ref.as_deref(),
                )?,
                requirements: comfyui.requirements,
            },
            custom_nodes,
            ports,
        })
    }
}

/// A RunPod template that runs exactly this build: the image by its digest tag, the digest
/// the pod must verify against, and the pod's ports and volume.
fn runpod_template(manifest: &Manifest, shown_as: &str, digest: &str) -> String {
    let deploy = &manifest.deploy;
    let image = image_name(manifest, digest);
    let runtime = &manifest.runtime;
    // Every slot's ComfyUI port, so RunPod's proxy serves each slot's Open link.
    let mut ports = vec![format!("{}/http", runtime.panel_port)];
    ports.extend(
        manifest
            .comfyui_ports()
            .into_iter()
            .map(|port| format!("{port}/http")),
    );
    if runtime.jupyter.enabled {
        ports.push(format!("{}/http", runtime.jupyter.port));
    }
    let template = serde_json::json!({
        "name": format!("{} {}", manifest.stack.name, manifest.stack.version),
        "imageName": image,
        "category": if manifest.torch.is_some() { "NVIDIA" } else { "CPU" },
        "containerDiskInGb": deploy.container_disk_gb,
        "volumeMountPath": runtime.volume,
        "ports": ports,
        "env": { "PODSTACK_EXPECTED_DIGEST": digest },
        "isPublic": false,
        "isServerless": false,
        "readme": format!("{}. The pod checks at start that it runs {digest}.", header(shown_as)),
    });
    let mut text = serde_json::to_string_pretty(&template).expect("a template serialises to JSON");
    text.push('\n');
    text
}

/// Every file under `root/dir` (skipping Python caches), named `dir/<relative path>`, in a
/// stable order.
pub(crate) fn read_tree(root: &Path, dir: &str) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    let top = root.join(dir);
    let read_error = |path: &Path, source| RenderError::Read {
        path: path.display().to_string(),
        hint: "the stack copies this folder into the image; check the path",
        source,
    };
    if !top.is_dir() {
        return Err(read_error(
            &top,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(&top)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.file_name() != "__pycache__");
    for entry in walker {
        let entry = entry.map_err(|err| {
            let path = err.path().unwrap_or(&top).to_owned();
            read_error(&path, err.into())
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace('\\', "/");
        let content = std::fs::read(entry.path()).map_err(|err| read_error(entry.path(), err))?;
        files.push((rel, content));
    }
    Ok(files)
}

impl Rendered {
    /// Writes the files into `dir`, removing files there that the stack no longer renders.
    pub fn write(&self, dir: &Path) -> Result<(), RenderError> {
        let write_error = |path: &Path, source| RenderError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|err| write_error(dir, err))?;
        for stale in self.extra_files(dir) {
            std::fs::remove_file(&stale).map_err(|err| write_error(&stale, err))?;
        }
        for (name, content) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|err| write_error(parent, err))?;
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content) {
                std::fs::write(&path, content).map_err(|err| write_error(&path, err))?;
            }
            if name.ends_with(".sh") {
                set_executable(&path).map_err(|err| write_error(&path, err))?;
            }
        }
        Ok(())
    }

    /// A unified diff of `dir` against what this stack renders; empty when up to date.
    pub fn drift(&self, dir: &Path) -> String {
        let mut diff = String::new();
        for (name, content) in &self.files {
            let path = dir.join(name);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if &on_disk != content {
                diff.push_str(&file_diff(&path, &on_disk, content));
            }
        }
        for stale in self.extra_files(dir) {
            diff.push_str(&format!(
                "only on disk: {} (no longer rendered)\n",
                stale.display()
            ));
        }
        diff
    }

    /// Files under `dir` (subfolders such as `kubernetes/` included) this stack does not render.
    fn extra_files(&self, dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_file())
            .filter(|entry| {
                let name = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(entry.path())
                    .to_string_lossy()
                    .replace('\\', "/");
                !self.files.contains_key(&name)
            })
            .map(|entry| entry.into_path())
            .collect()
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// A unified diff of one file from what is on disk to what podstack renders.
pub fn file_diff(path: &Path, on_disk: &str, rendered: &str) -> String {
    similar::TextDiff::from_lines(on_disk, rendered)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{}", path.display()),
            &format!("b/{}", path.display()),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_const_loads() {
        let env = environment().unwrap();
        for name in RENDERED.into_iter().chain(DEPLOYMENTS).chain(PROJECT_FILES) {
            assert!(env.get_template(name).is_ok(), "{name}");
            assert!(
                TEMPLATES.get_file(name).is_some(),
                "{name} is not in templates/"
            );
        }
    }

    #[test]
    fn every_plain_template_const_loads() {
        assert!(!plain_template(crate::init::GITIGNORE_TEMPLATE).is_empty());
    }

    #[test]
    fn output_has_lf_and_one_final_newline() {
        assert_eq!(normalise_text("a\r\nb\n\n\n"), "a\nb\n");
        assert_eq!(normalise_text("a"), "a\n");
    }
}
