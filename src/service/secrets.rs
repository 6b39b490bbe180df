//! The pod's secrets by environment variable, and the one place that keeps a child from
//! inheriting those it has no business with: ComfyUI gets none of them (custom nodes run
//! anyone's code), JupyterLab keeps its own token, rclone keeps the remote's secrets.

use std::process::Command;

/// The panel token.
pub const PANEL_TOKEN_ENV: &str = "PODSTACK_PANEL_TOKEN";
/// The environment variable holding Jupyter's token.
pub const JUPYTER_TOKEN_ENV: &str = "JUPYTER_TOKEN";
/// Environment prefixes whose variables become options of the sync remote, in the order they
/// are read. RunPod exposes a secret named `RCLONE_PASS` as `RUNPOD_SECRET_RCLONE_PASS`.
pub const SYNC_SECRET_PREFIXES: [&str; 2] = ["RUNPOD_SECRET_RCLONE_", "PODSTACK_SYNC_"];

/// A secret a child can be kept from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// [`PANEL_TOKEN_ENV`].
    PanelToken,
    /// [`JUPYTER_TOKEN_ENV`].
    JupyterToken,
    /// Every variable under [`SYNC_SECRET_PREFIXES`] in the supervisor's environment.
    SyncRemote,
}

/// Keeps `secrets` out of what `command` inherits from the supervisor's environment.
pub fn withhold(command: &mut Command, secrets: &[Secret]) {
    for secret in secrets {
        match secret {
            Secret::PanelToken => {
                command.env_remove(PANEL_TOKEN_ENV);
            }
            Secret::JupyterToken => {
                command.env_remove(JUPYTER_TOKEN_ENV);
            }
            Secret::SyncRemote => {
                for (name, _) in std::env::vars_os() {
                    if name.to_str().is_some_and(|name| {
                        SYNC_SECRET_PREFIXES.iter().any(|p| name.starts_with(p))
                    }) {
                        command.env_remove(name);
                    }
                }
            }
        }
    }
}
