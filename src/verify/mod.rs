//! Pod self-verification: before anything starts, the pod checks its own files against the
//! seal made at build time, its Python packages against the pins, and its digest against the
//! one it should run. `podstack verify` runs the same checks as a command.

pub mod files;
pub mod freshness;
pub mod packages;
pub mod rclone;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use files::{FileDrift, SEAL_FILE};
pub use freshness::Freshness;
pub use packages::PackageDrift;
pub use rclone::RcloneCheck;

use crate::manifest::OnMismatch;
use crate::resolved::ResolvedStack;

/// Where the checks look, and what the pod should be.
#[derive(Debug, Clone)]
pub struct Subject {
    pub stack: ResolvedStack,
    /// The folder holding stack.json, the UI and the seal (`/opt/podstack`).
    pub runtime_dir: PathBuf,
    /// The podstack binary, sealed with the runtime files.
    pub binary: PathBuf,
    /// The venv whose packages are checked; `None` when ComfyUI runs with another Python
    /// than the image's (a checkout outside the image), where the pins do not apply.
    pub venv: Option<PathBuf>,
    /// The digest this image was built with.
    pub running: String,
    /// The digest the deploy pins, if any.
    pub expected: Option<String>,
    /// The rclone the sync runs.
    pub rclone: PathBuf,
}

impl Subject {
    /// The subject for an image's stack. `python` is the interpreter ComfyUI runs with: the
    /// image's own venv is checked only when it is the one in stack.json.
    pub fn new(
        stack: ResolvedStack,
        runtime_dir: PathBuf,
        running: String,
        expected: Option<String>,
        python: &Path,
        rclone: &Path,
    ) -> Self {
        let image_python = Path::new(&stack.comfyui.python);
        let venv = (python == image_python)
            .then(|| {
                image_python
                    .parent()
                    .and_then(Path::parent)
                    .map(Path::to_owned)
            })
            .flatten();
        Self {
            binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from(IMAGE_BINARY)),
            venv,
            runtime_dir,
            running,
            expected: expected.filter(|digest| !digest.trim().is_empty()),
            rclone: rclone.to_owned(),
            stack,
        }
    }
}

/// Where the podstack binary lives in an image.
pub const IMAGE_BINARY: &str = "/usr/local/bin/podstack";

/// Everything verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stack: String,
    pub version: String,
    pub freshness: Freshness,
    pub files: Vec<FileDrift>,
    pub packages: Vec<PackageDrift>,
    /// The rclone the sync runs; `None` when the stack neither syncs nor pins rclone.
    pub rclone: Option<RcloneCheck>,
    /// Checks that could not run, in plain words.
    pub not_checked: Vec<String>,
}

impl Report {
    /// Files or packages differ from the build.
    pub fn drifted(&self) -> bool {
        !self.files.is_empty() || !self.packages.is_empty() || self.rclone_drifted()
    }

    fn rclone_drifted(&self) -> bool {
        self.rclone.as_ref().is_some_and(RcloneCheck::drifted)
    }

    /// Why the sync cannot run with the rclone found, when the stack syncs: no policy lets
    /// such a pod start.
    pub fn rclone_unusable(&self, stack: &ResolvedStack) -> Option<String> {
        stack.sync.as_ref()?;
        self.rclone.as_ref()?.unusable()
    }

    /// The pod is not the build it should be: stale or drifted.
    pub fn mismatch(&self) -> bool {
        self.drifted() || self.freshness.is_stale()
    }

    /// One line for logs and the refusal message.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Freshness::Stale {
            running,
            expected,
            source,
        } = &self.freshness
        {
            parts.push(format!(
                "stale: running {running}, expected {expected} ({source})"
            ));
        }
        if !self.files.is_empty() {
            parts.push(format!("{} podstack file(s) drifted", self.files.len()));
        }
        if !self.packages.is_empty() {
            parts.push(format!("{} Python package(s) drifted", self.packages.len()));
        }
        if self.rclone_drifted() {
            parts.push("rclone is not the pinned release".to_owned());
        }
        match (parts.is_empty(), self.not_checked.is_empty()) {
            (true, true) => "the pod matches its build".to_owned(),
            (true, false) => format!(
                "no drift found ({} check(s) could not run: see not_checked)",
                self.not_checked.len()
            ),
            (false, _) => parts.join("; "),
        }
    }
}

/// Runs every check.
pub async fn verify(subject: &Subject, latest_timeout: Duration) -> Report {
    let mut not_checked = Vec::new();
    let binary = [subject.binary.clone()];
    let files = files::check(&subject.runtime_dir, &binary).unwrap_or_else(|err| {
        not_checked.push(format!("files: {err}"));
        Vec::new()
    });
    let packages = match subject
        .venv
        .as_deref()
        .map(|venv| (venv, packages::installed(venv)))
    {
        Some((_, Ok(installed))) => packages::check(&subject.stack.packages, &installed),
        Some((venv, Err(err))) => {
            not_checked.push(format!("packages in {}: {err}", venv.display()));
            Vec::new()
        }
        None => {
            not_checked
                .push("packages: ComfyUI runs with another Python than the image's".to_owned());
            Vec::new()
        }
    };
    let stack = &subject.stack;
    let rclone = (stack.sync.is_some() || stack.rclone.is_some())
        .then(|| RcloneCheck::run(&subject.rclone, stack.rclone));
    let verify = &subject.stack.runtime.verify;
    let freshness = freshness::check(
        &subject.running,
        subject.expected.as_deref(),
        verify.latest_digest_url.as_deref(),
        latest_timeout,
    )
    .await;
    Report {
        stack: subject.stack.name.clone(),
        version: subject.stack.version.clone(),
        freshness,
        files,
        packages,
        rclone,
        not_checked,
    }
}

/// The policy in force: `PODSTACK_VERIFY_POLICY` (`warn` | `refuse`) over the manifest's.
pub fn policy(stack: &ResolvedStack, env: Option<&str>) -> Result<OnMismatch, String> {
    match env {
        None | Some("") => Ok(stack.runtime.verify.on_mismatch),
        Some("warn") => Ok(OnMismatch::Warn),
        Some("refuse") => Ok(OnMismatch::Refuse),
        Some(other) => Err(format!(
            "PODSTACK_VERIFY_POLICY is `{other}`\n  hint: use `warn` or `refuse`"
        )),
    }
}

/// The digest an image runs: `PODSTACK_DIGEST` (baked into the image), else the DIGEST file
/// beside stack.json.
pub fn running_digest(env: Option<&str>, runtime_dir: &Path) -> Option<String> {
    env.filter(|digest| !digest.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            std::fs::read_to_string(runtime_dir.join("DIGEST"))
                .ok()
                .and_then(|text| freshness::find_digest(&text))
        })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.stack, self.version)?;
        match &self.freshness {
            Freshness::Current { running } => writeln!(f, "  build: current ({running})")?,
            Freshness::Stale {
                running,
                expected,
                source,
            } => {
                writeln!(f, "  build: STALE: running {running}")?;
                writeln!(f, "         expected {expected} (from {source})")?;
                writeln!(
                    f,
                    "         hint: redeploy the pod with the image tagged for the expected digest"
                )?;
            }
            Freshness::Unknown { running, why } => {
                writeln!(f, "  build: unknown ({running}): {why}")?
            }
        }
        if self.files.is_empty() {
            writeln!(f, "  files: as built")?;
        } else {
            writeln!(f, "  files: DRIFTED (changed in the running pod; a restart of the image restores them)")?;
            for drift in &self.files {
                match drift {
                    FileDrift::Changed { path } => writeln!(f, "    changed  {path}")?,
                    FileDrift::Missing { path } => writeln!(f, "    missing  {path}")?,
                    FileDrift::Extra { path } => writeln!(f, "    extra    {path}")?,
                }
            }
        }
        if self.packages.is_empty() {
            writeln!(f, "  packages: as pinned")?;
        } else {
            writeln!(f, "  packages: DRIFTED (installed at run time, or replaced by a custom node's requirements)")?;
            for drift in &self.packages {
                match drift {
                    PackageDrift::Missing { name, expected } => {
                        writeln!(f, "    missing  {name} (expected {expected})")?
                    }
                    PackageDrift::Version {
                        name,
                        expected,
                        found,
                    } => writeln!(f, "    version  {name}: expected {expected}, found {found}")?,
                }
            }
        }
        if let Some(rclone) = &self.rclone {
            writeln!(f, "  rclone: {}", rclone.line())?;
        }
        for what in &self.not_checked {
            writeln!(f, "  not checked: {what}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_digest_is_the_env_or_the_digest_file() {
        let dir = tempfile::tempdir().unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        std::fs::write(
            dir.path().join("DIGEST"),
            format!("# generated by podstack\n{digest}\n"),
        )
        .unwrap();
        assert_eq!(running_digest(None, dir.path()), Some(digest.clone()));
        assert_eq!(running_digest(Some(""), dir.path()), Some(digest));
        assert_eq!(
            running_digest(Some("sha256:env"), dir.path()).as_deref(),
            Some("sha256:env")
        );
        assert_eq!(running_digest(None, &dir.path().join("missing")), None);
    }
}
