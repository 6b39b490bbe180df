//! ComfyUI's command line and log lines (FACTS.md, checked against ComfyUI 0.3.64), kept in
//! one place so the generator and the supervisor agree on them.

/// Flags podstack sets itself when it launches ComfyUI; a manifest may not pass them in
/// `runtime.comfyui_args`, because two values for one flag is how the field lost sage (L9).
pub const MANAGED_FLAGS: &[(&str, &str)] = &[
    (
        "--listen",
        "podstack listens on all addresses for the pod's proxy",
    ),
    ("--port", "set runtime.comfyui_port"),
    (
        "--output-directory",
        "podstack gives each user <volume>/output/<user>",
    ),
    (
        "--input-directory",
        "podstack gives each user <volume>/input/<user>",
    ),
    (
        "--user-directory",
        "podstack gives each user <volume>/users/<user>",
    ),
    (
        "--temp-directory",
        "podstack gives each pod its own temp folder",
    ),
    ("--base-directory", "podstack sets each folder on its own"),
    ("--use-split-cross-attention", "set gpu.attention"),
    ("--use-quad-cross-attention", "set gpu.attention"),
    ("--use-pytorch-cross-attention", "set gpu.attention"),
    ("--use-sage-attention", "set gpu.attention"),
    ("--use-flash-attention", "set gpu.attention"),
    ("--disable-xformers", "set gpu.attention"),
    ("--cpu", "podstack adds it when the pod has no GPU"),
    (
        "--multi-user",
        "podstack isolates users by folders, one user per pod at a time",
    ),
    ("--disable-auto-launch", "podstack always adds it"),
    (
        "--extra-model-paths-config",
        "podstack points ComfyUI at <volume>/models; put models there or in [[model]]",
    ),
];

/// ComfyUI's model folder names (`folder_paths.py`), the keys of an `extra_model_paths.yaml`
/// section; ComfyUI takes a name it does not know as a new kind of folder.
pub const MODEL_FOLDERS: &[&str] = &[
    "checkpoints",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "gligen",
    "hypernetworks",
    "loras",
    "photomaker",
    "style_models",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
];

/// Why podstack refuses `flag` in `runtime.comfyui_args`, if it does.
pub fn managed_flag(arg: &str) -> Option<&'static str> {
    let flag = arg.split_once('=').map_or(arg, |(flag, _)| flag);
    MANAGED_FLAGS
        .iter()
        .find(|(name, _)| *name == flag)
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_flags_it_sets_also_in_equals_form() {
        assert_eq!(managed_flag("--port"), Some("set runtime.comfyui_port"));
        assert_eq!(
            managed_flag("--port=9000"),
            Some("set runtime.comfyui_port")
        );
        assert_eq!(managed_flag("--preview-method"), None);
        assert_eq!(managed_flag("auto"), None);
    }
}
