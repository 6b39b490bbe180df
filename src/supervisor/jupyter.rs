//! JupyterLab beside ComfyUI, when the manifest enables it: its argv (no shell), and the token
//! rule from L16 — it never starts without `JUPYTER_TOKEN` unless the manifest says
//! `allow_without_token`, and then the status carries a warning.
//!
//! The token reaches Jupyter through the `JUPYTER_TOKEN` environment variable it reads itself,
//! not through argv, where every process of the pod could read it in /proc.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::manifest::Jupyter;
use crate::service::secrets::JUPYTER_TOKEN_ENV;

/// What to do about JupyterLab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JupyterPlan {
    /// `runtime.jupyter.enabled` is off.
    Disabled,
    /// Enabled but not allowed to start.
    Refused { reason: String, hint: String },
    Run {
        program: PathBuf,
        args: Vec<OsString>,
        /// Shown in the status for as long as it runs.
        warning: Option<String>,
    },
}

/// Plans JupyterLab from the manifest, the token (when set) and where it runs.
pub fn plan(
    config: &Jupyter,
    token: Option<&str>,
    python: &Path,
    listen: IpAddr,
    volume: &Path,
) -> JupyterPlan {
    if !config.enabled {
        return JupyterPlan::Disabled;
    }
    let has_token = token.is_some_and(|token| !token.trim().is_empty());
    if !has_token && !config.allow_without_token {
        return JupyterPlan::Refused {
            reason: format!("JupyterLab is not started: {JUPYTER_TOKEN_ENV} is not set"),
            hint: format!(
                "set {JUPYTER_TOKEN_ENV} in the pod's environment (a RunPod secret), or set runtime.jupyter.allow_without_token = true for a pod nobody else can reach"
            ),
        };
    }
    let mut args: Vec<OsString> = vec![
        "-m".into(),
        "jupyter".into(),
        "lab".into(),
        format!("--ip={listen}").into(),
        format!("--port={}", config.port).into(),
        "--no-browser".into(),
        "--allow-root".into(),
    ];
    let mut root_dir = OsString::from("--ServerApp.root_dir=");
    root_dir.push(volume);
    args.push(root_dir);
    let warning = (!has_token).then(|| {
        args.push("--ServerApp.token=".into());
        format!(
            "JupyterLab runs without a token (runtime.jupyter.allow_without_token): anyone who reaches port {} can run code on this pod",
            config.port
        )
    });
    JupyterPlan::Run {
        program: python.to_owned(),
        args,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jupyter(enabled: bool, allow_without_token: bool) -> Jupyter {
        Jupyter {
            enabled,
            port: 8888,
            allow_without_token,
        }
    }

    fn run(config: &Jupyter, token: Option<&str>) -> JupyterPlan {
        plan(
            config,
            token,
            Path::new("/opt/venv/bin/python"),
            "0.0.0.0".parse().unwrap(),
            Path::new("/workspace"),
        )
    }

    #[test]
    fn refuses_without_a_token_unless_the_manifest_allows_it() {
        assert_eq!(run(&jupyter(false, false), None), JupyterPlan::Disabled);
        let JupyterPlan::Refused { reason, .. } = run(&jupyter(true, false), Some(" ")) else {
            panic!("started without a token");
        };
        assert_eq!(
            reason,
            "JupyterLab is not started: JUPYTER_TOKEN is not set"
        );
        let JupyterPlan::Run { args, warning, .. } = run(&jupyter(true, true), None) else {
            panic!("refused although allowed");
        };
        assert!(args.contains(&"--ServerApp.token=".into()));
        assert!(warning.is_some_and(|w| w.contains("anyone who reaches port 8888")));
    }

    #[test]
    fn with_a_token_the_argv_never_carries_it() {
        let JupyterPlan::Run {
            program,
            args,
            warning,
        } = run(&jupyter(true, false), Some("s3cret"))
        else {
            panic!("refused with a token");
        };
        assert_eq!(program, Path::new("/opt/venv/bin/python"));
        let argv: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv,
            [
                "-m",
                "jupyter",
                "lab",
                "--ip=0.0.0.0",
                "--port=8888",
                "--no-browser",
                "--allow-root",
                "--ServerApp.root_dir=/workspace"
            ]
        );
        assert_eq!(warning, None);
    }
}
