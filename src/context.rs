//! Staging a Docker build context for one stack: exactly the files its Dockerfile copies,
//! rendered fresh, plus either the podstack sources or a prebuilt binary.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::panel_files::panel_files;
use crate::project::Project;
use crate::render::Rendered;

/// Where the Dockerfile's prebuilt-supervisor stage takes the binary from.
pub const PREBUILT_BINARY: &str = "prebuilt/podstack";
/// What the source stage compiles, relative to the project root.
const SOURCES: &[&str] = &["Cargo.toml", "Cargo.lock", "build.rs", "src", "templates"];

/// Why a context could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot stage {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

/// Fills `dir` (which must be empty or absent) with the build context of a rendered stack.
/// With `binary`, the supervisor comes from it; without, from the project's sources.
pub fn stage(
    project: &Project,
    manifest: &Manifest,
    rendered: &Rendered,
    dir: &Path,
    binary: Option<&Path>,
) -> Result<(), StageError> {
    let generated = dir.join("generated").join(&rendered.name);
    rendered.write(&generated)?;
    for (name, content) in panel_files(project)? {
        let target = dir.join(&name);
        mkdir(target.parent().unwrap_or(dir))?;
        std::fs::write(&target, content).map_err(|source| StageError::Io {
            path: target.display().to_string(),
            source,
        })?;
    }
    if let Some(path) = &manifest.comfyui.path {
        copy_tree(&project.root.join(path), &dir.join(path))?;
    }
    match binary {
        Some(binary) => {
            let target = dir.join(PREBUILT_BINARY);
            mkdir(target.parent().unwrap_or(dir))?;
            std::fs::copy(binary, &target).map_err(|source| StageError::Io {
                path: binary.display().to_string(),
                source,
            })?;
        }
        None => {
            for source in SOURCES {
                copy_tree(&project.root.join(source), &dir.join(source))?;
            }
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), StageError> {
    std::fs::create_dir_all(dir).map_err(|source| StageError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// Copies a file or a folder (skipping Python caches, as the digest does), keeping modes.
fn copy_tree(from: &Path, to: &Path) -> Result<(), StageError> {
    let error = |path: &Path, source| StageError::Io {
        path: path.display().to_string(),
        source,
    };
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|entry| entry.file_name() != "__pycache__")
    {
        let entry = entry.map_err(|err| error(from, err.into()))?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target: PathBuf = if rel.as_os_str().is_empty() {
            to.to_owned()
        } else {
            to.join(rel)
        };
        if entry.file_type().is_dir() {
            mkdir(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                mkdir(parent)?;
            }
            std::fs::copy(entry.path(), &target).map_err(|err| error(entry.path(), err))?;
        }
    }
    Ok(())
}
