//! `podstack plan STACK [--against REF|DIR]`: what a change to a stack costs before anything is
//! built (L8). The stack's Dockerfile as it renders now is walked step by step against a
//! previous rendering the way BuildKit's cache walks it: a layer is kept while its instruction
//! and the files it copies are unchanged and every layer before it was kept. Each layer gets
//! its verdict, the first input that changed (a manifest key, a lock entry, a file), and its
//! size; the totals are the bytes every pod pulls after the change and the whole image.

pub mod base;
pub mod cause;
pub mod dockerfile;
pub mod size;
pub mod snapshot;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::lock::{Layer, Lockfile};
use crate::manifest::Manifest;
use base::BaseImage;
use dockerfile::{Dockerfile, Step};
use size::{AptIndex, LayerSize, Total, WheelSum, Wheels};
use snapshot::{Files, Snapshot};

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("`{rev}` is neither a folder nor a git revision of {root}\n  hint: pass --against with a commit, a branch, a tag, or a folder of generated files")]
    NoRevision { rev: String, root: String },
    #[error("{dir} holds no rendering of `{stack}`: neither {dir}/Dockerfile nor {dir}/generated/{stack}/Dockerfile\n  hint: pass a folder that `podstack build --out` wrote, generated/{stack}/ of an older checkout, or that checkout itself")]
    NotARendering { dir: String, stack: String },
    #[error("{what} failed: {detail}\n  hint: plan reads previous renderings with git; run it inside the project's repository, or pass --against DIR")]
    Git { what: String, detail: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Render(String),
    #[error("the rendered Dockerfile has no stage")]
    NoStage,
}

/// What a plan compares and where its sizes come from.
#[derive(Debug)]
pub struct PlanInputs<'a> {
    pub manifest: &'a Manifest,
    pub lock: Option<&'a Lockfile>,
    /// The project now, with the stack rendered in memory.
    pub current: &'a Snapshot,
    pub previous: &'a Snapshot,
    /// How the previous side is named in the output.
    pub against: String,
    pub wheels: Wheels,
    /// The base image's size, measured before the plan ([`base::measure`]).
    pub base: &'a BaseImage,
}

/// The plan of one stack.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stack: String,
    pub version: String,
    pub against: String,
    /// The base image's size and which source gave it.
    pub base: BaseImage,
    pub layers: Vec<LayerPlan>,
    /// The rebuilt layers: what every pod pulls after the change.
    pub pull: Total,
    /// Every layer.
    pub image: Total,
}

/// One layer of the image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    /// 1-based, in the order of the Dockerfile (the base image is 1).
    pub number: usize,
    pub layer: String,
    /// The Dockerfile line it starts on.
    pub line: usize,
    pub instruction: String,
    pub verdict: Verdict,
    /// The first input of this layer that changed, or the earlier layer it follows.
    pub why: Option<String>,
    pub size: LayerSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Kept,
    Rebuilt,
}

/// What a step of podstack's Dockerfile installs, recognised by its instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerKind {
    Base,
    Apt,
    Venv,
    GeneratedFile,
    Torch,
    Wheels,
    Packages,
    ComfyUiFolder,
    ComfyUiClone,
    CustomNode,
    Supervisor,
    ControlPanel,
    RuntimeFiles,
    Seal,
    Other,
}

/// How each layer of the template is recognised: the first row whose every needle is in the
/// instruction, in this order (a custom node's clone also names `/opt/ComfyUI`).
const KINDS: &[(LayerKind, &str, &[&str])] = &[
    (LayerKind::Base, "base image", &["FROM "]),
    (LayerKind::Apt, "apt packages", &["apt-get install"]),
    (LayerKind::Venv, "Python venv", &["-m venv"]),
    (LayerKind::Torch, "torch (pip)", &["RUN ", "torch.lock.txt"]),
    (
        LayerKind::Packages,
        "Python packages (pip)",
        &["RUN ", "requirements.lock.txt"],
    ),
    (
        LayerKind::Wheels,
        "kernel wheels (pip)",
        &["RUN ", "pip install", ".whl"],
    ),
    (
        LayerKind::GeneratedFile,
        "",
        &["COPY generated/", "/opt/podstack/constraints.txt"],
    ),
    (
        LayerKind::GeneratedFile,
        "",
        &["COPY generated/", "lock.txt"],
    ),
    (
        LayerKind::RuntimeFiles,
        "runtime files",
        &["COPY ", "stack.json"],
    ),
    (
        LayerKind::CustomNode,
        "custom node",
        &["RUN ", "/custom_nodes/"],
    ),
    (
        LayerKind::ComfyUiClone,
        "ComfyUI (git)",
        &["RUN ", "git init", "/opt/ComfyUI"],
    ),
    (
        LayerKind::ComfyUiFolder,
        "ComfyUI (folder)",
        &["COPY ", " /opt/ComfyUI"],
    ),
    (LayerKind::Supervisor, "podstack binary", &["COPY --from="]),
    (
        LayerKind::ControlPanel,
        "control panel",
        &["COPY templates/ui"],
    ),
    (LayerKind::Seal, "file seal", &["seal"]),
];

fn kind(step: &Step) -> (LayerKind, String) {
    let found = KINDS
        .iter()
        .find(|(_, _, needles)| needles.iter().all(|needle| step.text.contains(needle)));
    match found {
        Some((LayerKind::GeneratedFile, _, _)) => {
            let file = step
                .sources
                .first()
                .and_then(|source| source.rsplit('/').next())
                .unwrap_or("file");
            (LayerKind::GeneratedFile, file.to_owned())
        }
        Some((LayerKind::CustomNode, label, _)) => {
            let name = step
                .text
                .split("/custom_nodes/")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_default();
            (LayerKind::CustomNode, format!("{label} {name}"))
        }
        Some((kind, label, _)) => (*kind, (*label).to_owned()),
        None => (
            LayerKind::Other,
            step.text
                .split('=')
                .next()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect::<String>(),
        ),
    }
}

/// The manifest key an instruction of this kind comes from.
fn key(kind: LayerKind) -> &'static str {
    match kind {
        LayerKind::Base => "base.image",
        LayerKind::Apt => "system.apt",
        LayerKind::Venv => "base.python",
        LayerKind::Torch => "torch",
        LayerKind::Wheels => "wheel",
        LayerKind::Packages => "python.packages",
        LayerKind::ComfyUiFolder => "comfyui.path",
        LayerKind::ComfyUiClone => "comfyui",
        LayerKind::CustomNode => "comfyui.custom_nodes",
        _ => "Dockerfile",
    }
}

/// Makes the plan.
pub fn plan(inputs: &PlanInputs<'_>) -> Result<Plan, PlanError> {
    let name = &inputs.manifest.stack.name;
    let dockerfile_path = format!("generated/{name}/Dockerfile");
    let current_text = inputs
        .current
        .text(&dockerfile_path)?
        .ok_or(PlanError::NoStage)?;
    let current = Dockerfile::parse(&current_text);
    let steps: Vec<&Step> = current
        .final_stage()
        .ok_or(PlanError::NoStage)?
        .steps
        .iter()
        .filter(|step| step.keys_later_steps())
        .collect();
    let previous = inputs
        .previous
        .text(&dockerfile_path)?
        .map(|text| Dockerfile::parse(&text));
    let previous_steps: Vec<Step> = previous
        .as_ref()
        .and_then(Dockerfile::final_stage)
        .map(|stage| {
            stage
                .steps
                .iter()
                .filter(|step| step.keys_later_steps())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // Once a layer is rebuilt, every layer after it is too (the cache is a chain).
    let mut broken: Option<usize> = None;
    let mut pending: Option<String> = None;
    let mut layers = Vec::new();
    let (mut pull, mut image) = (Total::default(), Total::default());
    for (index, step) in steps.iter().enumerate() {
        let (kind, label) = kind(step);
        // Its own change is against the previous step of the same name wherever it was; the
        // cache chain is positional, so a step that moved is rebuilt all the same.
        let matched = previous_steps.iter().find(|old| self::kind(old).1 == label);
        let own = if previous.is_none() {
            Some(format!("no rendering of {name} in {}", inputs.against))
        } else {
            change(inputs, &current, step, kind, matched)?
        };
        let moved = previous.is_some()
            && previous_steps
                .get(index)
                .is_none_or(|old| self::kind(old).1 != label);
        if !step.makes_layer() {
            if own.is_some() && pending.is_none() {
                pending = own.map(|change| format!("line {}: {change}", step.line));
            }
            continue;
        }
        let number = layers.len() + 1;
        let why = match (own.or_else(|| pending.take()), broken) {
            (Some(change), _) => Some(change),
            (None, Some(first)) => Some(format!("follows layer {first}, rebuilt")),
            (None, None) if moved => Some(match previous_steps.get(index) {
                Some(old) => format!("`{}` before it was removed", self::kind(old).1),
                None => "a new step".to_owned(),
            }),
            (None, None) => None,
        };
        if why.is_some() && broken.is_none() {
            broken = Some(number);
        }
        let size = layer_size(inputs, &steps[..index], step, kind);
        let verdict = if why.is_some() {
            pull.add(&size);
            Verdict::Rebuilt
        } else {
            Verdict::Kept
        };
        image.add(&size);
        layers.push(LayerPlan {
            number,
            layer: label,
            line: step.line,
            instruction: step.text.clone(),
            verdict,
            why,
            size,
        });
    }
    Ok(Plan {
        stack: name.clone(),
        version: inputs.manifest.stack.version.to_string(),
        against: inputs.against.clone(),
        base: inputs.base.clone(),
        layers,
        pull,
        image,
    })
}

/// This step's own first change against the previous step at its place, if any.
fn change(
    inputs: &PlanInputs<'_>,
    current: &Dockerfile,
    step: &Step,
    kind: LayerKind,
    previous: Option<&Step>,
) -> Result<Option<String>, PlanError> {
    let Some(previous) = previous else {
        return Ok(Some(format!("{}: a new step", key(kind))));
    };
    if previous.text != step.text {
        return Ok(Some(format!(
            "{}: {}",
            key(kind),
            cause::instruction_change(&previous.text, &step.text)
        )));
    }
    let (sources, prefix) = match &step.from_stage {
        Some(stage) => (current.stage_sources(stage), "podstack's sources: "),
        None => (step.sources.clone(), ""),
    };
    for source in &sources {
        let new = inputs.current.files(source)?.unwrap_or_default();
        let Some(old) = inputs.previous.files(source)? else {
            return Ok(Some(format!(
                "{prefix}{source} cannot be compared: {} holds generated files only",
                inputs.against
            )));
        };
        if let Some(change) = cause::files_change(&old, &new) {
            return Ok(Some(format!("{prefix}{change}")));
        }
    }
    Ok(None)
}

/// The size of `step`'s layer; `earlier` are the final stage's steps before it.
fn layer_size(
    inputs: &PlanInputs<'_>,
    earlier: &[&Step],
    step: &Step,
    kind: LayerKind,
) -> LayerSize {
    let manifest = inputs.manifest;
    match kind {
        LayerKind::Base => inputs.base.size.clone(),
        LayerKind::Apt => {
            let packages: Vec<String> = step
                .text
                .split("apt-get install")
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .filter(|word| !word.starts_with('-') && *word != "&&")
                .map(str::to_owned)
                .collect();
            AptIndex.size(&packages)
        }
        LayerKind::Venv => {
            LayerSize::unknown("what `python -m venv` writes depends on the base image's Python")
        }
        LayerKind::Torch => locked_layer(inputs, Layer::Torch),
        LayerKind::Packages => locked_layer(inputs, Layer::Packages),
        LayerKind::Wheels => {
            let mut sum = WheelSum::default();
            for wheel in &manifest.wheels {
                let file = crate::value::link_file_name(&wheel.url);
                let size = inputs
                    .lock
                    .and_then(|lock| lock.wheel(&wheel.url))
                    .map(|locked| locked.size);
                inputs.wheels.add(&mut sum, &file, size);
            }
            sum.size()
        }
        LayerKind::GeneratedFile
        | LayerKind::ComfyUiFolder
        | LayerKind::ControlPanel
        | LayerKind::RuntimeFiles => copied_bytes(inputs.current, &step.sources),
        LayerKind::ComfyUiClone | LayerKind::CustomNode => {
            LayerSize::unknown("a git clone's size is known only once it is fetched")
        }
        LayerKind::Supervisor => std::env::current_exe()
            .and_then(std::fs::metadata)
            .map_or_else(
                |_| LayerSize::unknown("this podstack binary cannot be read"),
                |meta| LayerSize::Estimate {
                    bytes: meta.len(),
                    basis: "the size of this podstack binary; the image's own build differs by compiler and target".to_owned(),
                },
            ),
        LayerKind::Seal => seal_size(inputs.current, earlier),
        LayerKind::Other => LayerSize::unknown("podstack does not know what this step writes"),
    }
}

/// `files.sha256`, which `podstack seal` writes (`crate::verify::files::seal`): a line for each
/// file the earlier steps copied into the runtime folder, and for the podstack binary.
fn seal_size(current: &Snapshot, earlier: &[&Step]) -> LayerSize {
    let runtime = format!("{}/", crate::resolved::paths::RUNTIME);
    let mut paths = vec![crate::verify::IMAGE_BINARY.to_owned()];
    for step in earlier.iter().filter(|step| step.from_stage.is_none()) {
        for source in &step.sources {
            let Ok(Some(files)) = current.files(source) else {
                return LayerSize::unknown(format!("{source} cannot be read"));
            };
            paths.extend(
                files
                    .keys()
                    .filter_map(|name| step.image_path(source, name))
                    .filter(|path| path.starts_with(&runtime)),
            );
        }
    }
    paths.sort();
    paths.dedup();
    LayerSize::exact(
        paths
            .iter()
            .map(|path| crate::verify::files::line_len(Path::new(path)))
            .sum(),
    )
}

fn copied_bytes(current: &Snapshot, sources: &[String]) -> LayerSize {
    let mut bytes = 0;
    for source in sources {
        match current.files(source) {
            Ok(Some(files)) => {
                bytes += files
                    .values()
                    .map(|content| content.len() as u64)
                    .sum::<u64>()
            }
            _ => return LayerSize::unknown(format!("{source} cannot be read")),
        }
    }
    LayerSize::exact(bytes)
}

fn locked_layer(inputs: &PlanInputs<'_>, layer: Layer) -> LayerSize {
    let Some(packages) = inputs
        .lock
        .and_then(|lock| lock.layer(inputs.manifest, layer))
    else {
        return LayerSize::unknown(format!(
            "the lock does not hold this layer's packages: run `podstack lock {}`",
            inputs.manifest.stack.name
        ));
    };
    let mut sum = WheelSum::default();
    for package in packages {
        // pip takes one file of the package; the largest one that fits is assumed.
        if let Some(file) = package
            .files
            .iter()
            .max_by_key(|file| file.size.unwrap_or(0))
        {
            inputs.wheels.add(&mut sum, &file.file, file.size);
        }
    }
    sum.size()
}

impl Plan {
    /// Whether any layer is rebuilt.
    pub fn rebuilds(&self) -> bool {
        self.pull.layers > 0
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} against {}",
            self.stack, self.version, self.against
        )?;
        let width = self
            .layers
            .iter()
            .map(|layer| layer.layer.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "   #  {:<width$}  verdict  {:>10}  why", "layer", "size")?;
        for layer in &self.layers {
            let verdict = match layer.verdict {
                Verdict::Kept => "kept",
                Verdict::Rebuilt => "rebuilt",
            };
            let line = format!(
                "{:>4}  {:<width$}  {verdict:<7}  {:>10}  {}",
                layer.number,
                layer.layer,
                layer.size.shown(),
                layer.why.as_deref().unwrap_or("")
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        writeln!(
            f,
            "every pod pulls: {} ({} of {} layers rebuilt)",
            self.pull.shown(),
            self.pull.layers,
            self.image.layers
        )?;
        writeln!(f, "whole image:     {}", self.image.shown())?;
        let source = match self.base.source {
            base::BaseSizeSource::RegistryManifest => "size from its registry manifest",
            base::BaseSizeSource::LocalEngine => "size from the local Docker engine",
            base::BaseSizeSource::Unknown => "size unknown",
        };
        writeln!(f, "base image:      {}, {source}", self.base.image)?;
        let notes: Vec<(usize, &str)> = self
            .layers
            .iter()
            .filter_map(|layer| layer.size.note().map(|note| (layer.number, note)))
            .collect();
        if !notes.is_empty() {
            writeln!(f, "sizes:")?;
            for (number, note) in notes {
                writeln!(f, "  layer {number}: {note}")?;
            }
        }
        Ok(())
    }
}

/// The files a stack renders, keyed by their place in the build context.
pub fn generated_files(name: &str, files: &std::collections::BTreeMap<String, String>) -> Files {
    files
        .iter()
        .map(|(file, content)| {
            (
                format!("generated/{name}/{file}"),
                content.as_bytes().to_vec(),
            )
        })
        .collect()
}
