//! `podstack init [DIR]`: a new project that `podstack build` accepts at once: one commented
//! GPU stack (`stacks/<name>.toml`, ComfyUI on PyTorch 2.8 / CUDA 12.8), a `.gitignore`, and
//! the CI workflow (`.github/workflows/podstack.yml`). It never writes over a file: a folder
//! that holds any of them is refused as a whole, before anything is written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{self, Manifest};
use crate::problem::Severity;
use crate::render::{plain_template, render_project_file, RenderError};
use crate::workflow::{workflow, Install};

pub const STACK_TEMPLATE: &str = "init/stack.toml.j2";
pub const GITIGNORE_TEMPLATE: &str = "init/gitignore";
/// Where the workflow goes: GitHub runs every file in this folder.
const WORKFLOW_PATH: &str = ".github/workflows/podstack.yml";
/// The stack a project starts with when `--name` is not given.
pub const DEFAULT_STACK: &str = "studio";

/// Why `podstack init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("`{name}` cannot name a stack:\n{problems}")]
    StackName { name: String, problems: String },
    #[error("{dir} already has {files}; podstack init writes nothing over existing files\n  hint: run it in a new or empty folder (`podstack init DIR`), or move those files away first")]
    Exists { dir: String, files: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// A project about to be written: its files by path relative to its folder.
#[derive(Debug)]
pub struct NewProject {
    pub dir: PathBuf,
    pub stack: String,
    pub files: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct StackContext<'a> {
    stack: &'a str,
    /// The name as a TOML string, quoted by the TOML writer.
    name_toml: String,
}

impl NewProject {
    /// Renders the project for a stack name, which is checked by the manifest's own rules
    /// (the rendered stack is validated as `podstack check` would).
    pub fn new(dir: &Path, stack: &str) -> Result<Self, InitError> {
        let manifest_text = render_project_file(
            STACK_TEMPLATE,
            &StackContext {
                stack,
                name_toml: toml::Value::String(stack.to_owned()).to_string(),
            },
        )?;
        let name_problems = |problems: Vec<String>| InitError::StackName {
            name: stack.to_owned(),
            problems: problems.join("\n"),
        };
        let manifest: Manifest = toml::from_str(&manifest_text)
            .map_err(|err| name_problems(vec![format!("  {}", err.message())]))?;
        let errors: Vec<String> = manifest::validate(&manifest, false)
            .into_iter()
            .filter(|problem| problem.severity == Severity::Error)
            .map(|problem| format!("  {}", problem.to_string().replace('\n', "\n  ")))
            .collect();
        if !errors.is_empty() {
            return Err(name_problems(errors));
        }
        let origin = format!(
            "Written by `podstack init` (podstack {}); yours to edit.",
            env!("CARGO_PKG_VERSION")
        );
        let files = vec![
            (format!("stacks/{stack}.toml"), manifest_text),
            (
                ".gitignore".to_owned(),
                plain_template(GITIGNORE_TEMPLATE).to_owned(),
            ),
            (
                WORKFLOW_PATH.to_owned(),
                workflow(&[stack.to_owned()], Install::ThisRelease, &origin)?,
            ),
        ];
        Ok(Self {
            dir: dir.to_owned(),
            stack: stack.to_owned(),
            files,
        })
    }

    /// Writes every file, or none when any of them exists already.
    pub fn write(&self) -> Result<(), InitError> {
        let existing: Vec<&str> = self
            .files
            .iter()
            .map(|(path, _)| path.as_str())
            .filter(|path| self.dir.join(path).symlink_metadata().is_ok())
            .collect();
        if !existing.is_empty() {
            return Err(InitError::Exists {
                dir: self.dir.display().to_string(),
                files: existing.join(", "),
            });
        }
        for (path, text) in &self.files {
            let target = self.dir.join(path);
            let write_error = |source| InitError::Write {
                path: target.display().to_string(),
                source,
            };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(write_error)?;
            }
            // create_new: a file that appeared since the check above is still not overwritten.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(write_error)?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(write_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_stack_is_valid_and_names_itself() {
        let project = NewProject::new(Path::new("x"), "my-studio").unwrap();
        let (path, text) = &project.files[0];
        assert_eq!(path, "stacks/my-studio.toml");
        assert!(text.contains("\nname = \"my-studio\"\n"), "{text}");
    }

    #[test]
    fn a_name_cannot_break_out_of_its_toml_string() {
        let err = NewProject::new(Path::new("x"), "a\"\n[evil]").unwrap_err();
        assert!(matches!(err, InitError::StackName { .. }), "{err}");
    }
}
