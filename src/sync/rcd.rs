//! `rclone rcd`, the long-running rclone the passes go through: bound to loopback on a free
//! port, with a user and password made up at each boot (given in `RCLONE_RC_USER` and
//! `RCLONE_RC_PASS`, rclone's environment form of `--rc-user`/`--rc-pass`, so they never show
//! in `ps`), the remote configured by `RCLONE_CONFIG_<NAME>_*` variables and no config file
//! (`--config ""`). The bandwidth and transactions-per-second limits are its global flags:
//! rclone applies them to everything the process does, whatever a call's `_config` says.
//!
//! It runs under the service state machine (`crate::service`) like ComfyUI: its own process
//! group, reaped, and restarted after a death with a short backoff (first 500 ms, at most 4 s:
//! L22's sync that died silently for hours is restarted within 5 s).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use rand::distributions::{Alphanumeric, DistString as _};

use crate::duration::HumanDuration;
use crate::manifest::{RestartPolicy, Sync};
use crate::service::secrets::{self, Secret};

/// rclone prints this once its remote control listens.
pub const READY_LINE: &str = "Serving remote control on";

/// The remote control's user and password, made up at each boot.
#[derive(Clone)]
pub struct RcLogin {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for RcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RcLogin { .. }")
    }
}

impl RcLogin {
    pub fn random() -> Self {
        let mut rng = rand::thread_rng();
        Self {
            user: format!("podstack-{}", Alphanumeric.sample_string(&mut rng, 12)),
            password: Alphanumeric.sample_string(&mut rng, 32),
        }
    }
}

/// A port on loopback that is free now (bound, then released for rclone to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The `rclone rcd` command: `remote_env` configures the remote.
pub fn command(
    program: &Path,
    port: u16,
    login: &RcLogin,
    remote_env: &[(String, String)],
    sync: &Sync,
) -> Command {
    let mut command = Command::new(program);
    command
        .args(["rcd", "--rc-addr", &format!("127.0.0.1:{port}")])
        .args(["--config", "", "--log-level", "INFO", "--stats", "0"])
        // Finished jobs are read within a second; keep them long enough for a slow poll.
        .args(["--rc-job-expire-duration", "10m"]);
    if !sync.bwlimit.is_empty() {
        command.args(["--bwlimit", &sync.bwlimit]);
    }
    if sync.tpslimit > 0 {
        command.args(["--tpslimit", &sync.tpslimit.to_string()]);
    }
    command
        .env("RCLONE_RC_USER", &login.user)
        .env("RCLONE_RC_PASS", &login.password)
        .envs(remote_env.iter().map(|(name, value)| (name, value)));
    secrets::withhold(&mut command, &[Secret::PanelToken, Secret::JupyterToken]);
    command
}

/// How rclone is restarted after it died: within 5 s, and given up only after ten deaths in
/// two minutes.
pub fn restart_policy() -> RestartPolicy {
    RestartPolicy {
        backoff_initial: HumanDuration::from_millis(500),
        backoff_max: HumanDuration::from_secs(4),
        crash_loop_failures: 10,
        crash_loop_window: HumanDuration::from_secs(120),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::exit_reason::{ExitReason, Termination};
    use crate::service::state::{Action, Event, Service};

    fn sync(extra: &str) -> Sync {
        toml::from_str(&format!(
            "remote = \"r\"\nbackend = \"alias\"\nroot = \"x\"\nfolders = [{{ path = \"output\", mode = \"copy\" }}]\n{extra}"
        ))
        .unwrap()
    }

    fn args(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn rcd_listens_on_loopback_with_the_login_in_its_environment_only() {
        let login = RcLogin::random();
        let command = command(
            Path::new("rclone"),
            5572,
            &login,
            &[("RCLONE_CONFIG_R_TYPE".to_owned(), "alias".to_owned())],
            &sync("bwlimit = \"20M\"\ntpslimit = 10"),
        );
        let args = args(&command);
        assert_eq!(&args[..3], ["rcd", "--rc-addr", "127.0.0.1:5572"]);
        assert!(args.windows(2).any(|w| w == ["--bwlimit", "20M"]));
        assert!(args.windows(2).any(|w| w == ["--tpslimit", "10"]));
        assert!(!args.iter().any(|arg| arg.contains(&login.password)));
        let env: Vec<_> = command.get_envs().collect();
        assert!(env.iter().any(|(name, value)| *name == "RCLONE_RC_PASS"
            && value.is_some_and(|v| v == login.password.as_str())));
        assert!(!format!("{login:?}").contains(&login.password));
    }

    #[test]
    fn no_limits_means_no_flags() {
        let args = args(&command(
            Path::new("rclone"),
            1,
            &RcLogin::random(),
            &[],
            &sync(""),
        ));
        assert!(!args
            .iter()
            .any(|arg| arg == "--bwlimit" || arg == "--tpslimit"));
    }

    #[test]
    fn logins_differ_between_boots() {
        assert_ne!(RcLogin::random().password, RcLogin::random().password);
    }

    #[test]
    fn a_dead_rclone_is_restarted_within_five_seconds_until_ten_deaths_in_two_minutes() {
        let killed = || Event::Exited {
            reason: ExitReason::new(Termination::Killed { signal: 9 }, None, None),
            last_lines: Vec::new(),
        };
        let mut service = Service::new("rclone", restart_policy(), std::time::Duration::ZERO);
        service.handle(Event::StartRequested, 0);
        let mut now = 0;
        for death in 1..=9 {
            service.handle(Event::Spawned, now);
            let actions = service.handle(killed(), now);
            let Some((after, timer)) = actions.iter().find_map(|action| match action {
                Action::ScheduleRestart { after, timer } => Some((*after, *timer)),
                _ => None,
            }) else {
                panic!("death {death}: no restart in {actions:?}");
            };
            assert!(
                after <= std::time::Duration::from_secs(5),
                "death {death}: {after:?}"
            );
            now += u64::try_from(after.as_millis()).unwrap();
            service.handle(Event::RestartDue(timer), now);
        }
        service.handle(Event::Spawned, now);
        let actions = service.handle(killed(), now);
        assert_eq!(actions, [], "the tenth death within 2m is a crash loop");
    }
}
