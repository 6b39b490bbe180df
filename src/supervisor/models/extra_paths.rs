//! The `extra_model_paths.yaml` that points ComfyUI at the shared models folder
//! (`--extra-model-paths-config`): one section with `base_path` and `is_default: true`, so
//! every pod finds the volume's models and downloads into the volume, and a key per model
//! folder ComfyUI knows (plus any folder a `[[model]]` destination names).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::comfyui_cli::MODEL_FOLDERS;
use crate::supervisor::settings::Settings;

/// Writes this pod's file (`<volume>/.podstack/comfyui/<pod>/extra_model_paths.yaml`, per
/// pod so no pod rewrites another's) and creates the models folder; returns the file.
pub fn write(settings: &Settings) -> io::Result<PathBuf> {
    let models = std::path::absolute(settings.models_dir())?;
    std::fs::create_dir_all(&models)?;
    let dir = settings
        .podstack_dir()
        .join("comfyui")
        .join(settings.pod.as_str());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("extra_model_paths.yaml");
    let dests: Vec<String> = settings
        .stack
        .models
        .iter()
        .map(|model| model.dest.clone())
        .collect();
    let text = yaml(&models, &dests);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text)?;
    }
    Ok(path)
}

/// The file's text for `models` (the shared folder) and the manifest's destinations.
pub fn yaml(models: &Path, dests: &[String]) -> String {
    let mut folders: BTreeSet<&str> = MODEL_FOLDERS.iter().copied().collect();
    for dest in dests {
        if let Some((folder, _)) = dest.split_once('/') {
            folders.insert(folder);
        }
    }
    let mut text = String::from(
        "# Written by podstack: ComfyUI's models live in the volume's shared models folder.\n\
         podstack:\n",
    );
    let _ = writeln!(
        text,
        "    base_path: {}",
        quoted(&models.display().to_string())
    );
    text.push_str("    is_default: true\n");
    for folder in folders {
        let _ = writeln!(text, "    {folder}: {}", quoted(folder));
    }
    text
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_shared_folder_and_every_model_folder() {
        let text = yaml(
            Path::new("/workspace/models"),
            &[
                "ipadapter/x.safetensors".to_owned(),
                "checkpoints/y.ckpt".to_owned(),
            ],
        );
        assert!(text.starts_with("# Written by podstack"), "{text}");
        assert!(
            text.contains(
                "\npodstack:\n    base_path: \"/workspace/models\"\n    is_default: true\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n    checkpoints: \"checkpoints\"\n"),
            "{text}"
        );
        assert!(text.contains("\n    ipadapter: \"ipadapter\"\n"), "{text}");
        assert_eq!(text.matches("checkpoints").count(), 2, "{text}");
    }
}
