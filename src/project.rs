//! The project a command works in: the folder holding `stacks/`, and how a STACK argument
//! (a name from `stacks/` or a path to a manifest) becomes a file.

use std::path::{Path, PathBuf};

/// A project root: the folder that holds `stacks/` (and `templates/`, `generated/`).
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

/// A manifest file and the name it is shown under in messages and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFile {
    pub path: PathBuf,
    pub shown_as: String,
}

/// Why a project or a stack could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no `stacks/` folder in {0} or any folder above it\n  hint: run podstack inside a podstack project, or give a path to a manifest")]
    NoProject(String),
    #[error("no stack `{name}`: {path} does not exist\n  hint: stacks here: {known}")]
    NoStack {
        name: String,
        path: String,
        known: String,
    },
    #[error("cannot list {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Project {
    /// The nearest folder at or above `start` that has a `stacks/` folder.
    pub fn find(start: &Path) -> Result<Self, ProjectError> {
        start
            .ancestors()
            .find(|dir| dir.join("stacks").is_dir())
            .map(|root| Self {
                root: root.to_owned(),
            })
            .ok_or_else(|| ProjectError::NoProject(start.display().to_string()))
    }

    pub fn stacks_dir(&self) -> PathBuf {
        self.root.join("stacks")
    }

    /// Every `stacks/*.toml`, sorted by name.
    pub fn all_stacks(&self) -> Result<Vec<StackFile>, ProjectError> {
        let dir = self.stacks_dir();
        let io = |source| ProjectError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut stacks = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                stacks.push(self.stack_file(path));
            }
        }
        stacks.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(stacks)
    }

    /// A STACK argument: a path when it names an existing file or ends in `.toml`, else a
    /// name in `stacks/`.
    pub fn stack(&self, arg: &str) -> Result<StackFile, ProjectError> {
        let as_path = Path::new(arg);
        if as_path.is_file() || arg.ends_with(".toml") || arg.contains('/') {
            let path = std::path::absolute(as_path).unwrap_or_else(|_| as_path.to_owned());
            return Ok(self.stack_file(path));
        }
        let path = self.stacks_dir().join(format!("{arg}.toml"));
        if path.is_file() {
            return Ok(self.stack_file(path));
        }
        let known = self
            .all_stacks()?
            .iter()
            .filter_map(|stack| {
                stack
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(ProjectError::NoStack {
            name: arg.to_owned(),
            path: format!("stacks/{arg}.toml"),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known
            },
        })
    }

    /// Shown relative to the root when inside it, so output never depends on where the
    /// command ran.
    fn stack_file(&self, path: PathBuf) -> StackFile {
        let shown_as = path
            .strip_prefix(&self.root)
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|_| path.display().to_string());
        StackFile { path, shown_as }
    }
}
