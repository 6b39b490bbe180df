//! ComfyUI's command line and log lines (FACTS.md, checked against ComfyUI 0.3.64), kept in
//! one place so the generator and the supervisor agree on them. The flag list itself is data
//! (`compat/data/comfyui_flags.toml`, read from the pinned ComfyUI's `cli_args.py`).

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
    (
        "--cuda-device",
        "podstack gives each ComfyUI slot its GPUs (runtime.slots)",
    ),
    (
        "--database-url",
        "podstack gives each user <volume>/users/<user>/comfyui.db",
    ),
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

/// ComfyUI's own flags at the pinned version, with where they were read.
const FLAGS_DATA: &str = include_str!("compat/data/comfyui_flags.toml");

#[derive(serde::Deserialize)]
struct FlagsData {
    version: String,
    flags: Vec<String>,
}

fn flags_data() -> &'static FlagsData {
    static DATA: std::sync::OnceLock<FlagsData> = std::sync::OnceLock::new();
    DATA.get_or_init(|| toml::from_str(FLAGS_DATA).expect("comfyui_flags.toml is valid TOML"))
}

/// The ComfyUI version the flag list was read from.
pub fn flags_version() -> &'static str {
    &flags_data().version
}

/// How ComfyUI's argparse parser reads one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// Not an option: a value of the option before it.
    Value,
    /// The flag argparse takes it for: itself, its `--flag=value` form, or a unique prefix.
    Flag(&'static str),
    /// A prefix of more than one flag; argparse exits with "ambiguous option".
    Ambiguous(Vec<&'static str>),
    /// No flag; argparse exits with "unrecognized arguments".
    Unknown,
}

/// Reads `arg` as argparse does (Python 3.9+, `allow_abbrev=True`): an exact flag, then the
/// part before `=`, then a unique prefix of a long flag; a negative number is a value.
pub fn resolve(arg: &str) -> Argument {
    let flags = &flags_data().flags;
    let known = |name: &str| flags.iter().find(|flag| *flag == name).map(String::as_str);
    if !arg.starts_with('-') || arg.len() == 1 {
        return Argument::Value;
    }
    if let Some(flag) = known(arg) {
        return Argument::Flag(flag);
    }
    let name = arg.split_once('=').map_or(arg, |(name, _)| name);
    if let Some(flag) = known(name) {
        return Argument::Flag(flag);
    }
    let matches: Vec<&'static str> = if arg.starts_with("--") {
        flags
            .iter()
            .filter(|flag| flag.starts_with(name))
            .map(String::as_str)
            .collect()
    } else {
        // `-hX`: a short flag with its value attached, or a prefix of a single-dash flag.
        flags
            .iter()
            .filter(|flag| Some(flag.as_str()) == arg.get(..2) || flag.starts_with(arg))
            .map(String::as_str)
            .collect()
    };
    match matches.as_slice() {
        [flag] => Argument::Flag(flag),
        [] if is_negative_number(arg) || arg.contains(' ') => Argument::Value,
        [] => Argument::Unknown,
        _ => Argument::Ambiguous(matches),
    }
}

fn is_negative_number(arg: &str) -> bool {
    let digits = &arg[1..];
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !digits.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Why podstack refuses `arg` in `runtime.comfyui_args`, if it does: the flag argparse reads
/// it as (`--output-dir=/etc` is `--output-directory`) is one podstack sets.
pub fn managed_flag(arg: &str) -> Option<&'static str> {
    let Argument::Flag(flag) = resolve(arg) else {
        return None;
    };
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

    #[test]
    fn reads_arguments_as_argparse_does() {
        assert_eq!(
            resolve("--output-dir=/etc"),
            Argument::Flag("--output-directory")
        );
        assert_eq!(resolve("--por"), Argument::Flag("--port"));
        assert_eq!(resolve("--liste"), Argument::Flag("--listen"));
        assert_eq!(
            resolve("--use-sage"),
            Argument::Flag("--use-sage-attention")
        );
        assert_eq!(resolve("--base-dir"), Argument::Flag("--base-directory"));
        assert_eq!(
            resolve("--preview-method"),
            Argument::Flag("--preview-method")
        );
        assert_eq!(resolve("auto"), Argument::Value);
        assert_eq!(resolve("-1"), Argument::Value);
        assert_eq!(resolve("--nope"), Argument::Unknown);
        assert_eq!(
            resolve("--fp16"),
            Argument::Ambiguous(vec!["--fp16-unet", "--fp16-vae", "--fp16-text-enc"])
        );
        for arg in [
            "--output-dir=/etc",
            "--por",
            "--liste",
            "--use-sage",
            "--base-dir",
        ] {
            assert!(managed_flag(arg).is_some(), "{arg}");
        }
        assert_eq!(flags_version(), "0.3.64");
    }
}
