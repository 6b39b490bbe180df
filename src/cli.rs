//! The command line: clap's raw arguments, and one function per command that runs it and
//! says how it ended. `main` only parses and maps the outcome to an exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::lock::lockfile::{self, Layer, Lockfile};
use crate::manifest::{self, Loaded, Located};
use crate::outcome::Outcome;
use crate::problem::Severity;
use crate::project::{Project, StackFile};
use crate::render;
use crate::version::{GlibcVersion, PythonVersion};
use crate::wheel::{Platform, WheelFilename};

const EXAMPLES: &str = "\
Examples:
  podstack init my-studio             a new project: one stack, .gitignore, the CI workflow
  podstack build                      render every stacks/*.toml into generated/
  podstack build comfyui-cu129        one stack, by name
  podstack build --check              fail if generated/ is stale (CI)
  podstack check stacks/my.toml       validate a manifest, list every problem
  podstack digest smoke               print the stack's digest
  podstack plan smoke                 what the working tree's change costs against HEAD
  podstack fleet --volume /workspace  every pod on the volume; exit 1 when a live one is stale
  podstack lock comfyui-cu128         pin every open input into stacks/comfyui-cu128.lock
  podstack wheelhouse smoke /tmp/wh   download every locked wheel, checked
  podstack wheel-compat sageattention-2.2.0.post4-cp39-abi3-linux_x86_64.whl --python 3.11

Exit codes: 0 ok, 1 invalid manifest or drift, 2 usage error.";

/// podstack: stack manifests to reproducible ComfyUI pod images, and the pod's supervisor.
#[derive(Debug, Parser)]
#[command(name = "podstack", version = VERSION.as_str(), after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: podstack's and the day its compatibility data was checked, which says how
/// current its knowledge of torch, xformers and GPUs is.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (compat data {})",
        env!("CARGO_PKG_VERSION"),
        crate::compat::Compat::embedded().checked()
    )
});

// The comments are clap's help text, printed as written: `<stack>` there is a placeholder for
// the reader, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project: one commented GPU stack, .gitignore, and the CI workflow.
    #[command(
        after_help = "Examples:\n  podstack init                       here: stacks/studio.toml, .gitignore, .github/workflows/podstack.yml\n  podstack init my-studio --name sdxl  in ./my-studio (created): stacks/sdxl.toml, ...\n\nNothing is written when any of those files exists.\n\nExit codes: 0 written, 1 a file exists or the name is not a stack name, 2 usage."
    )]
    Init {
        /// The project folder, created when missing.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The stack's name: lower-case letters, digits and dashes, starting with a letter.
        #[arg(long, value_name = "STACK", default_value = crate::init::DEFAULT_STACK)]
        name: String,
    },
    /// Run the pod: PID 1 of the image (start.sh execs it).
    Supervise(Box<crate::supervisor::SuperviseArgs>),
    /// Validate stacks and render generated/<stack>/ (Dockerfile, start.sh, locks, DIGEST).
    #[command(
        after_help = "Examples:\n  podstack build\n  podstack build smoke --out /tmp/gen\n  podstack build --check --strict"
    )]
    Build {
        /// Stack names from stacks/ or paths to manifests; every stacks/*.toml when none.
        stacks: Vec<String>,
        /// Write into DIR/<stack>/ instead of generated/<stack>/.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Render in memory and fail with a diff if the files on disk differ.
        #[arg(long)]
        check: bool,
        /// Fail on any unpinned input (missing digest, sha256 or exact version).
        #[arg(long)]
        strict: bool,
    },
    /// Parse and validate stacks only; prints every problem at once.
    #[command(
        after_help = "Examples:\n  podstack check comfyui-cu129\n  podstack check stacks/*.toml"
    )]
    Check {
        #[arg(required = true)]
        stacks: Vec<String>,
        /// Treat unpinned inputs as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Pin what a stack leaves open into stacks/<stack>.lock: base image digests, wheel hashes,
    /// commits of branches and tags, and every Python package with the sha256 of its files.
    #[command(
        after_help = "Examples:\n  podstack lock comfyui-cu128\n  podstack lock comfyui-cu128 --update transformers --update base\n\nEntries of the current lock are kept while the manifest asks for the same thing; --update\nresolves one again (a package, `base`, `builder`, a wheel's name, `comfyui`, a custom node).\nHosts that cannot be reached leave their inputs unresolved: listed, and refused by\n`build --strict`. Environment: PODSTACK_PYPI_URL, PODSTACK_PYTORCH_INDEX_URL (mirrors),\nPODSTACK_CACHE_DIR (default ~/.cache/podstack).\n\nExit codes: 0 locked (maybe with unresolved inputs), 1 an input failed (nothing written), 2 usage."
    )]
    Lock {
        stack: String,
        /// Resolve this entry again instead of keeping it; repeatable.
        #[arg(long = "update", value_name = "NAME")]
        update: Vec<String>,
    },
    /// Download every file the lock pins into DIR, checked against its sha256, with a pip.conf
    /// for image builds without a package index.
    #[command(
        after_help = "Example:\n  podstack context smoke /tmp/ctx --binary target/release/podstack\n  podstack wheelhouse smoke /tmp/ctx/wheelhouse\n  DOCKER_BUILDKIT=1 docker build -f /tmp/ctx/generated/smoke/Dockerfile --build-arg PODSTACK_SUPERVISOR=prebuilt --build-arg PODSTACK_PACKAGES=wheelhouse /tmp/ctx\n\nFiles already there with the right hash are kept; a broken download resumes."
    )]
    Wheelhouse {
        stack: String,
        /// The folder to fill (created when missing).
        dir: PathBuf,
    },
    /// Render the book's manifest reference from the JSON Schema (podstack's own docs/).
    #[command(hide = true)]
    Docs {
        /// Render in memory and fail with a diff if the page on disk differs.
        #[arg(long)]
        check: bool,
    },
    /// Print the JSON Schema of stack manifests (for taplo / Even Better TOML).
    #[command(after_help = "Example:\n  podstack schema > generated/stack.schema.json")]
    Schema,
    /// Before building: which layers a change rebuilds, why, and how many bytes every pod pulls.
    #[command(
        after_help = "Examples:\n  podstack plan comfyui-cu129                   the working tree against HEAD\n  podstack plan smoke --against origin/main     against a branch\n  podstack plan smoke --against /tmp/old-gen    against a folder of generated files\n  podstack plan smoke --json --wheelhouse wh    for CI, sizes read from the wheels\n\nExit codes: 0 planned, 1 the stack is invalid, 2 usage (no such revision or folder)."
    )]
    Plan {
        stack: String,
        /// The previous rendering: a git revision of the project, a project tree, or a folder
        /// of the stack's generated files.
        #[arg(long, default_value = "HEAD", value_name = "REF|DIR")]
        against: String,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// A wheelhouse (`podstack wheelhouse`): installed sizes are read from its wheels.
        #[arg(long, value_name = "DIR")]
        wheelhouse: Option<PathBuf>,
    },
    /// Print a stack's full digest (sha256:<64 hex>).
    #[command(after_help = "Example:\n  podstack digest comfyui-cu129")]
    Digest { stack: String },
    /// Stage a Docker build context for a stack: its generated files, the control panel,
    /// and the podstack sources or a prebuilt binary.
    #[command(
        after_help = "Example:\n  podstack context smoke /tmp/ctx --binary target/release/podstack\n  DOCKER_BUILDKIT=1 docker build -f /tmp/ctx/generated/smoke/Dockerfile --build-arg PODSTACK_SUPERVISOR=prebuilt /tmp/ctx"
    )]
    Context {
        stack: String,
        /// An empty (or new) folder to fill.
        dir: PathBuf,
        /// A podstack binary for the prebuilt-supervisor stage; without it the image
        /// compiles podstack from the staged sources.
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Check this pod against its build: podstack's files, the Python packages, rclone, the
    /// digest.
    #[command(
        after_help = "Examples:\n  docker run --rm IMAGE podstack verify --expected sha256:...\n  podstack verify --json\n\nExit codes: 0 the pod matches its build (or no expected digest is known), 1 stale or drifted, 2 usage error."
    )]
    Verify {
        /// The stack.json of the image.
        #[arg(long, env = "PODSTACK_CONFIG", default_value = IMAGE_STACK_JSON)]
        config: PathBuf,
        /// The digest the pod should run (what the deploy template pins).
        #[arg(long, env = "PODSTACK_EXPECTED_DIGEST")]
        expected: Option<String>,
        /// The rclone program the sync runs, a path or a name on PATH.
        #[arg(
            long,
            env = "PODSTACK_RCLONE",
            value_name = "PATH",
            default_value = "rclone"
        )]
        rclone: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every pod on a volume: its build, users, GPU, last beat; which are stale or silent.
    #[command(
        after_help = "Examples:\n  podstack fleet --volume /workspace\n  podstack fleet --volume /mnt/vol --expected sha256:... --json\n\nStale is measured against --expected (PODSTACK_EXPECTED_DIGEST), else the digest published at\n--latest-url, else the newest build a live pod runs.\n\nExit codes: 0 no live pod is stale, 1 a live pod runs another build, 2 usage."
    )]
    Fleet {
        /// The shared volume (its `.podstack/pods/` holds the heartbeats).
        #[arg(long, env = "PODSTACK_VOLUME", value_name = "DIR")]
        volume: PathBuf,
        /// The digest every pod should run.
        #[arg(long, env = "PODSTACK_EXPECTED_DIGEST", value_name = "DIGEST")]
        expected: Option<String>,
        /// A URL that publishes the latest digest (as `runtime.verify.latest_digest_url`).
        #[arg(long, value_name = "URL")]
        latest_url: Option<String>,
        /// Print the fleet as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the list of sha256 of podstack's files in an image (run by the Dockerfile).
    Seal {
        /// The image's runtime folder.
        #[arg(long, default_value = crate::resolved::paths::RUNTIME)]
        runtime_dir: PathBuf,
        /// The podstack binary, sealed with the runtime files.
        #[arg(long, default_value = IMAGE_BINARY)]
        binary: PathBuf,
    },
    /// Ask this pod's supervisor whether it is alive (`GET /api/health` on loopback): the
    /// container health check of compose.yaml.
    #[command(after_help = "Exit codes: 0 healthy, 1 not answering or not healthy.")]
    Health {
        /// The panel port.
        #[arg(long, env = "PODSTACK_PANEL_PORT", default_value_t = 7777)]
        port: u16,
        /// How long the supervisor may take to answer.
        #[arg(long, default_value = "5s")]
        timeout: crate::duration::HumanDuration,
    },
    /// Say whether a wheel installs on a Python and platform, and why not.
    #[command(
        name = "wheel-compat",
        after_help = "Examples:\n  podstack wheel-compat xformers-0.0.32.post2-cp39-abi3-manylinux_2_28_x86_64.whl --python 3.11 --glibc 2.35\n  podstack wheel-compat flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl --python 3.10"
    )]
    WheelCompat {
        /// The wheel's filename (or a URL ending in it).
        filename: String,
        /// CPython version, e.g. 3.11.
        #[arg(long)]
        python: PythonVersion,
        /// glibc version of the target system, e.g. 2.35.
        #[arg(long)]
        glibc: Option<GlibcVersion>,
    },
}

/// Where the runtime files live in an image, for the in-pod commands.
const IMAGE_STACK_JSON: &str = "/opt/podstack/stack.json";
use crate::verify::IMAGE_BINARY;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Outcome {
    let result = match cli.command {
        Command::Supervise(args) => Ok(crate::supervisor::supervise(*args)),
        Command::Init { dir, name } => Ok(init(&dir, &name)),
        Command::Build {
            stacks,
            out,
            check,
            strict,
        } => build(&stacks, out.as_deref(), check, strict),
        Command::Check { stacks, strict } => check(&stacks, strict),
        Command::Schema => {
            print!("{}", manifest::json_schema());
            Ok(Outcome::Ok)
        }
        Command::Digest { stack } => digest(&stack),
        Command::Docs { check } => docs(check),
        Command::Plan {
            stack,
            against,
            json,
            wheelhouse,
        } => plan(&stack, &against, json, wheelhouse),
        Command::Lock { stack, update } => lock(&stack, &update),
        Command::Wheelhouse { stack, dir } => wheelhouse(&stack, &dir),
        Command::Context { stack, dir, binary } => context(&stack, &dir, binary.as_deref()),
        Command::Verify {
            config,
            expected,
            json,
            rclone,
        } => verify(&config, expected, &rclone, json),
        Command::Fleet {
            volume,
            expected,
            latest_url,
            json,
        } => fleet(&volume, expected, latest_url.as_deref(), json),
        Command::Seal {
            runtime_dir,
            binary,
        } => seal(&runtime_dir, binary),
        Command::Health { port, timeout } => Ok(health(port, timeout.0)),
        Command::WheelCompat {
            filename,
            python,
            glibc,
        } => Ok(wheel_compat(&filename, python, glibc)),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        Outcome::Usage
    })
}

fn init(dir: &Path, stack: &str) -> Outcome {
    let written = crate::init::NewProject::new(dir, stack).and_then(|project| {
        project.write()?;
        Ok(project)
    });
    let project = match written {
        Ok(project) => project,
        Err(err) => {
            eprintln!("error: {err}");
            return Outcome::Failed;
        }
    };
    println!("wrote a podstack project in {}:", dir.display());
    for (path, _) in &project.files {
        println!("  {path}");
    }
    println!("next:");
    if dir != Path::new(".") {
        println!("  cd {}", dir.display());
    }
    let steps = [
        (
            format!("podstack check {stack}"),
            "every problem of the stack at once".to_owned(),
        ),
        (
            format!("podstack lock {stack}"),
            "pin the base image and every Python package (reaches PyPI)".to_owned(),
        ),
        (
            "podstack build".to_owned(),
            format!("render generated/{stack}/; commit it with stacks/"),
        ),
    ];
    let width = steps
        .iter()
        .map(|(command, _)| command.len())
        .max()
        .unwrap_or(0);
    for (command, why) in steps {
        println!("  {command:width$}   {why}");
    }
    Outcome::Ok
}

fn project() -> anyhow::Result<Project> {
    let cwd = std::env::current_dir()?;
    Ok(Project::find(&cwd)?)
}

fn stack_files(project: &Project, args: &[String]) -> anyhow::Result<Vec<StackFile>> {
    if args.is_empty() {
        return Ok(project.all_stacks()?);
    }
    args.iter().map(|arg| Ok(project.stack(arg)?)).collect()
}

/// A stack that passed validation, with its lock file (already pinned into the manifest).
#[derive(Debug)]
struct Checked {
    loaded: Loaded,
    lock: Option<Lockfile>,
}

/// Loads one stack and its lock file, pins what the lock holds, validates, and prints the
/// problems. `None` when it has errors.
fn checked(file: &StackFile, strict: bool) -> Option<Checked> {
    let mut loaded = match manifest::load(&file.path, &file.shown_as) {
        Ok(loaded) => loaded,
        Err(located) => {
            eprintln!("{located}");
            eprintln!("{}: 1 error(s); nothing was rendered", file.shown_as);
            return None;
        }
    };
    let mut lock =
        match Lockfile::read(&lockfile::path_for(&file.path), &loaded.manifest.stack.name) {
            Ok(lock) => lock,
            Err(err @ lockfile::LockfileError::Fields { .. }) => {
                eprintln!("{err}");
                return None;
            }
            Err(err) => {
                eprintln!("error: {err}");
                return None;
            }
        };
    let mut problems = lockfile::pin(lock.as_mut(), &mut loaded.manifest, &file.shown_as, strict);
    problems.extend(manifest::validate(&loaded.manifest, strict));
    let mut located: Vec<Located> = problems
        .into_iter()
        .map(|problem| loaded.source.locate(problem))
        .collect();
    located.sort_by_key(|l| (std::cmp::Reverse(l.problem.severity), l.line, l.column));
    for problem in &located {
        eprintln!("{problem}");
    }
    let errors = located
        .iter()
        .filter(|l| l.problem.severity == Severity::Error)
        .count();
    if errors > 0 {
        eprintln!("{}: {errors} error(s); nothing was rendered", file.shown_as);
        return None;
    }
    Some(Checked { loaded, lock })
}

/// The stacks of one run by name: two manifests of one name would render into one
/// `generated/<name>/`.
#[derive(Debug, Default)]
struct StackNames(std::collections::BTreeMap<String, String>);

impl StackNames {
    /// Records a checked stack; `None` (with the error printed) when another manifest of this
    /// run has its name.
    fn claim(&mut self, checked: Checked) -> Option<Checked> {
        let name = &checked.loaded.manifest.stack.name;
        let shown_as = &checked.loaded.source.shown_as;
        match self.0.get(name) {
            Some(other) => {
                let problem = crate::problem::Problem::error(
                    "stack.name",
                    format!("stack name `{name}` is also the name of {other}: both would render generated/{name}/"),
                )
                .with_hint("give each manifest its own stack.name");
                eprintln!("{}", checked.loaded.source.locate(problem));
                eprintln!("{shown_as}: 1 error(s); nothing was rendered");
                None
            }
            None => {
                self.0.insert(name.clone(), shown_as.clone());
                Some(checked)
            }
        }
    }
}

fn check(args: &[String], strict: bool) -> anyhow::Result<Outcome> {
    let project = project()?;
    let mut outcome = Outcome::Ok;
    let mut names = StackNames::default();
    for file in stack_files(&project, args)? {
        match checked(&file, strict).and_then(|checked| names.claim(checked)) {
            Some(checked) => println!(
                "{}: ok ({})",
                file.shown_as, checked.loaded.manifest.stack.name
            ),
            None => outcome = Outcome::Failed,
        }
    }
    Ok(outcome)
}

fn build(
    args: &[String],
    out: Option<&Path>,
    check: bool,
    strict: bool,
) -> anyhow::Result<Outcome> {
    let project = project()?;
    let out = out.map_or_else(|| project.root.join("generated"), Path::to_owned);
    let mut outcome = Outcome::Ok;
    let mut names = StackNames::default();
    for file in stack_files(&project, args)? {
        let Some(checked) = checked(&file, strict).and_then(|checked| names.claim(checked)) else {
            outcome = Outcome::Failed;
            continue;
        };
        let rendered = render::render(&project, &checked.loaded, checked.lock.as_ref())?;
        let dir = out.join(&rendered.name);
        if check {
            let drift = rendered.drift(&dir);
            if !drift.is_empty() {
                eprint!("{drift}");
                eprintln!(
                    "{}: {} is stale\n  hint: run `podstack build {}` and commit the result",
                    file.shown_as,
                    dir.display(),
                    rendered.name
                );
                outcome = Outcome::Failed;
                continue;
            }
        } else {
            rendered.write(&dir)?;
        }
        println!("{}", rendered.image_tag);
    }
    let schema_path = out.join(SCHEMA_FILE);
    let schema = manifest::json_schema();
    if check {
        if std::fs::read_to_string(&schema_path).ok().as_deref() != Some(schema.as_str()) {
            eprintln!(
                "{} is stale\n  hint: run `podstack build` and commit the result",
                schema_path.display()
            );
            outcome = Outcome::Failed;
        }
    } else {
        std::fs::create_dir_all(&out)?;
        std::fs::write(&schema_path, schema)?;
    }
    std::io::stdout().flush()?;
    Ok(outcome)
}

/// The JSON Schema beside the generated stacks, which manifests point their editors at.
pub const SCHEMA_FILE: &str = "stack.schema.json";

/// Writes (or with `check`, compares) the book's manifest reference, rendered from the schema.
fn docs(check: bool) -> anyhow::Result<Outcome> {
    let project = project()?;
    let path = project.root.join(manifest::reference::PAGE);
    let schema: serde_json::Value = serde_json::from_str(&manifest::json_schema())?;
    let page = manifest::reference::render(&schema);
    if !check {
        std::fs::create_dir_all(path.parent().unwrap_or(&project.root))?;
        std::fs::write(&path, page)?;
        return Ok(Outcome::Ok);
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk == page {
        return Ok(Outcome::Ok);
    }
    eprint!("{}", render::file_diff(&path, &on_disk, &page));
    eprintln!(
        "{} is stale\n  hint: run `cargo run -- docs` and commit the result",
        manifest::reference::PAGE
    );
    Ok(Outcome::Failed)
}

fn digest(arg: &str) -> anyhow::Result<Outcome> {
    let project = project()?;
    let file = project.stack(arg)?;
    let Some(checked) = checked(&file, false) else {
        return Ok(Outcome::Failed);
    };
    let rendered = render::render(&project, &checked.loaded, checked.lock.as_ref())?;
    println!("{}", rendered.digest);
    Ok(Outcome::Ok)
}

fn plan(
    arg: &str,
    against: &str,
    json: bool,
    wheelhouse: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    use crate::plan::{self, snapshot::Snapshot};
    let project = project()?;
    let file = project.stack(arg)?;
    let Some(checked) = checked(&file, false) else {
        return Ok(Outcome::Failed);
    };
    let rendered = render::render(&project, &checked.loaded, checked.lock.as_ref())?;
    let current = Snapshot::Current {
        root: project.root.clone(),
        generated: plan::generated_files(&rendered.name, &rendered.files),
    };
    let previous = Snapshot::against(&project.root, against, &rendered.name)?;
    let http = plan::base::registry_client()?;
    let base = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(plan::base::measure(&http, &checked.loaded.manifest.base));
    let plan = plan::plan(&plan::PlanInputs {
        manifest: &checked.loaded.manifest,
        lock: checked.lock.as_ref(),
        current: &current,
        previous: &previous,
        against: previous.describe(against),
        wheels: plan::size::Wheels { wheelhouse },
        base: &base,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{plan}");
    }
    Ok(Outcome::Ok)
}

/// The subject of verification for the image a `stack.json` belongs to.
fn verify_subject(
    config: &Path,
    expected: Option<String>,
    rclone: &Path,
) -> anyhow::Result<crate::verify::Subject> {
    let text = std::fs::read_to_string(config).map_err(|err| {
        anyhow::anyhow!(
            "cannot read {}: {err}\n  hint: run this in a podstack image, or pass --config generated/<stack>/stack.json",
            config.display()
        )
    })?;
    let stack = crate::resolved::ResolvedStack::from_json(&text)?;
    let runtime_dir = config.parent().unwrap_or(Path::new(".")).to_owned();
    let env_digest = std::env::var("PODSTACK_DIGEST").ok();
    let running =
        crate::verify::running_digest(env_digest.as_deref(), &runtime_dir).ok_or_else(|| {
            anyhow::anyhow!(
                "no digest: PODSTACK_DIGEST is unset and {} has no DIGEST file",
                runtime_dir.display()
            )
        })?;
    let python = PathBuf::from(&stack.comfyui.python);
    Ok(crate::verify::Subject::new(
        stack,
        runtime_dir,
        running,
        expected,
        &python,
        rclone,
    ))
}

fn context(arg: &str, dir: &Path, binary: Option<&Path>) -> anyhow::Result<Outcome> {
    let project = project()?;
    let file = project.stack(arg)?;
    let Some(checked) = checked(&file, false) else {
        return Ok(Outcome::Failed);
    };
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} is not empty\n  hint: stage into a new folder",
            dir.display()
        );
    }
    let rendered = render::render(&project, &checked.loaded, checked.lock.as_ref())?;
    crate::context::stage(&project, &checked.loaded.manifest, &rendered, dir, binary)?;
    let stage_arg = if binary.is_some() {
        " --build-arg PODSTACK_SUPERVISOR=prebuilt"
    } else {
        ""
    };
    println!("{}", rendered.image_tag);
    eprintln!(
        "staged {}; build it with:\n  DOCKER_BUILDKIT=1 docker build -f {}/generated/{}/Dockerfile{stage_arg} -t {} {}",
        dir.display(),
        dir.display(),
        rendered.name,
        rendered.image_tag,
        dir.display()
    );
    Ok(Outcome::Ok)
}

/// Transfers at once for `lock` and `wheelhouse`.
const PARALLEL_FETCHES: usize = 8;

fn fetch_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn lock(arg: &str, updates: &[String]) -> anyhow::Result<Outcome> {
    let project = project()?;
    let file = project.stack(arg)?;
    let loaded = match manifest::load(&file.path, &file.shown_as) {
        Ok(loaded) => loaded,
        Err(located) => {
            eprintln!("{located}");
            return Ok(Outcome::Failed);
        }
    };
    let manifest = &loaded.manifest;
    let errors: Vec<Located> = manifest::validate(manifest, false)
        .into_iter()
        .filter(|problem| problem.is_error())
        .map(|problem| loaded.source.locate(problem))
        .collect();
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("{error}");
        }
        eprintln!(
            "{}: {} error(s); nothing was locked",
            file.shown_as,
            errors.len()
        );
        return Ok(Outcome::Failed);
    }
    let lock_path = lockfile::path_for(&file.path);
    let shown_lock = lockfile::path_for(Path::new(&file.shown_as));
    // A lock whose fields are not what they name is not kept from: everything is resolved again.
    let old = match Lockfile::read(&lock_path, &manifest.stack.name) {
        Err(lockfile::LockfileError::Fields { located, .. }) => {
            eprint!("{located}");
            eprintln!(
                "{}: not trusted; every input is resolved again",
                shown_lock.display()
            );
            None
        }
        read => read?,
    };
    let known = crate::lock::update_names(manifest, old.as_ref());
    let mut wanted = std::collections::BTreeSet::new();
    for name in updates {
        let name = crate::compat::normalize_name(name);
        if !known.contains(&name) {
            anyhow::bail!(
                "`--update {name}` names nothing in {}\n  hint: names here: {}",
                file.shown_as,
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        wanted.insert(name);
    }
    let http = crate::http::Http::new(PARALLEL_FETCHES)?;
    let cache = crate::lock::Cache::from_env();
    let endpoints = crate::lock::Endpoints::from_env();
    let progress = crate::lock::Progress::for_stderr();
    let run = crate::lock::LockRun {
        http: &http,
        cache: &cache,
        endpoints: &endpoints,
        progress: &progress,
        parallel: PARALLEL_FETCHES,
    };
    let started = std::time::Instant::now();
    let locked =
        fetch_runtime()?.block_on(crate::lock::lock(&run, manifest, old.as_ref(), &wanted));
    progress.finish();
    for unresolved in &locked.lock.unresolved {
        eprintln!(
            "unresolved: {} ({}): {}",
            unresolved.input, unresolved.key, unresolved.reason
        );
    }
    if !locked.errors.is_empty() {
        for error in &locked.errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "{}: {} input(s) failed; {} was not written",
            file.shown_as,
            locked.errors.len(),
            shown_lock.display()
        );
        return Ok(Outcome::Failed);
    }
    let text = locked.lock.to_toml(&manifest.stack.name);
    let unchanged = std::fs::read_to_string(&lock_path).ok().as_deref() == Some(text.as_str());
    if !unchanged {
        std::fs::write(&lock_path, &text)?;
    }
    let unresolved = match locked.lock.unresolved.len() {
        0 => String::new(),
        n => format!(
            "; {n} input(s) unresolved (`build --strict` refuses them until they are locked)"
        ),
    };
    println!(
        "{} {} ({} fetched in {:.1} s){unresolved}",
        shown_lock.display(),
        if unchanged {
            "is up to date"
        } else {
            "written"
        },
        locked.fetched,
        started.elapsed().as_secs_f64()
    );
    if locked.lock.python.is_some() {
        let packages = &locked.lock.packages;
        let (bytes, unknown) = lockfile::download_size(packages);
        let (torch, _) =
            lockfile::download_size(packages.iter().filter(|p| p.layer == Layer::Torch));
        let unknown = match unknown {
            0 => String::new(),
            n => format!("; {n} package(s) of unknown size"),
        };
        println!(
            "pip downloads at most {} MB of wheels ({} MB for the torch layer){unknown}",
            bytes.div_ceil(1_000_000),
            torch.div_ceil(1_000_000)
        );
    }
    Ok(Outcome::Ok)
}

fn wheelhouse(arg: &str, dir: &Path) -> anyhow::Result<Outcome> {
    let project = project()?;
    let file = project.stack(arg)?;
    let Some(checked) = checked(&file, false) else {
        return Ok(Outcome::Failed);
    };
    let manifest = &checked.loaded.manifest;
    let shown_lock = lockfile::path_for(Path::new(&file.shown_as));
    let Some(lock) = checked
        .lock
        .as_ref()
        .filter(|lock| lock.python_is_current(manifest))
    else {
        eprintln!(
            "error: {} does not lock the Python packages of {}\n  hint: run `podstack lock {}` first",
            shown_lock.display(),
            file.shown_as,
            manifest.stack.name
        );
        return Ok(Outcome::Failed);
    };
    let http = crate::http::Http::new(PARALLEL_FETCHES)?;
    let cache = crate::lock::Cache::from_env();
    let endpoints = crate::lock::Endpoints::from_env();
    let progress = crate::lock::Progress::for_stderr();
    let filled = fetch_runtime()?.block_on(crate::wheelhouse::fill(
        &http, &cache, &endpoints, manifest, lock, dir, &progress,
    ));
    progress.finish();
    match filled {
        Ok(filled) => {
            println!(
                "{}: {} files checked against {} ({} downloaded, {} bytes)",
                dir.display(),
                filled.files,
                shown_lock.display(),
                filled.downloaded,
                filled.bytes
            );
            Ok(Outcome::Ok)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{}: {} file(s) failed", dir.display(), errors.len());
            Ok(Outcome::Failed)
        }
    }
}

/// How long `fleet` waits for the latest-digest URL.
const LATEST_DIGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn fleet(
    volume: &Path,
    expected: Option<String>,
    latest_url: Option<&str>,
    json: bool,
) -> anyhow::Result<Outcome> {
    use crate::supervisor::fleet::{Fleet, Reference};
    use crate::verify::freshness;
    if !volume.is_dir() {
        anyhow::bail!(
            "{} is not a folder\n  hint: pass the mounted volume, e.g. --volume /workspace",
            volume.display()
        );
    }
    let reference = match (expected.filter(|digest| !digest.is_empty()), latest_url) {
        (Some(digest), _) => {
            if freshness::find_digest(&digest).as_deref() != Some(digest.as_str()) {
                anyhow::bail!("--expected `{digest}` is not `sha256:<64 hex>`\n  hint: pass the digest `podstack digest STACK` prints");
            }
            Some(Reference {
                digest,
                source: "PODSTACK_EXPECTED_DIGEST".to_owned(),
            })
        }
        (None, Some(url)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match runtime.block_on(freshness::fetch_latest(url, LATEST_DIGEST_TIMEOUT)) {
                Ok(digest) => Some(Reference {
                    digest,
                    source: url.to_owned(),
                }),
                Err(why) => {
                    eprintln!("note: the latest digest could not be read from {url}: {why}; comparing with the newest build seen");
                    None
                }
            }
        }
        (None, None) => None,
    };
    let fleet = Fleet::read(volume, crate::service::clock::now_ms(), reference);
    if json {
        println!("{}", serde_json::to_string_pretty(&fleet)?);
    } else {
        print!("{fleet}");
    }
    Ok(if fleet.has_stale_live_pod() {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

fn seal(runtime_dir: &Path, binary: PathBuf) -> anyhow::Result<Outcome> {
    let count = crate::verify::files::seal(runtime_dir, &[binary])?;
    println!(
        "sealed {count} files in {}",
        runtime_dir.join(crate::verify::SEAL_FILE).display()
    );
    Ok(Outcome::Ok)
}

fn verify(
    config: &Path,
    expected: Option<String>,
    rclone: &Path,
    json: bool,
) -> anyhow::Result<Outcome> {
    let subject = verify_subject(config, expected, rclone)?;
    let timeout = subject.stack.runtime.verify.latest_digest_timeout.0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(crate::verify::verify(&subject, timeout));
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(
        if report.mismatch() || report.rclone_unusable(&subject.stack).is_some() {
            Outcome::Failed
        } else {
            Outcome::Ok
        },
    )
}

fn health(port: u16, timeout: std::time::Duration) -> Outcome {
    match crate::deploy::health::check(port, timeout) {
        Ok(()) => Outcome::Ok,
        Err(unhealthy) => {
            eprintln!("error: {unhealthy}");
            Outcome::Failed
        }
    }
}

fn wheel_compat(filename: &str, python: PythonVersion, glibc: Option<GlibcVersion>) -> Outcome {
    let name = crate::value::link_file_name(filename);
    let wheel: WheelFilename = match name.parse() {
        Ok(wheel) => wheel,
        Err(err) => {
            eprintln!("error: {err}");
            return Outcome::Failed;
        }
    };
    let platform = Platform {
        python,
        glibc,
        arch: "x86_64".to_owned(),
    };
    let verdict = wheel.verdict(&platform);
    println!("{verdict}");
    if verdict.installs() {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}
