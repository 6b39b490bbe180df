//! Is the remote there? A pass against a remote that went away does not fail for minutes:
//! rclone retries each call with a backoff (ten low-level retries, at `DEBUG` level only), and
//! its job reports no error until a file gives up. So when a pass makes no progress for
//! [`STALLED_AFTER`], and before a final sync when the remote was last seen down, the service
//! asks a separate, short-lived rclone to list the remote's root once, without retries and
//! with short timeouts: its error is what the status shows, and what the final sync fails fast
//! on.

use std::time::Duration;

use crate::service::exit_reason::Termination;

/// A pass that moved no byte for this long gets the remote probed.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// How long a probe may take: its connect timeout and I/O timeout, and some slack.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// rclone's exit code for "directory not found": the remote answered, the root is not made yet.
const DIRECTORY_NOT_FOUND: i32 = 3;

/// `rclone lsf` arguments that list the top of `root` (`remote:root`) once.
pub fn args(root: &str) -> Vec<String> {
    [
        "lsf",
        "--config",
        "",
        "--dirs-only",
        "--max-depth",
        "1",
        "--retries",
        "1",
        "--low-level-retries",
        "1",
        "--contimeout",
        "5s",
        "--timeout",
        "10s",
        root,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Whether a probe that ended with `termination` reached the remote.
pub fn reached(termination: Termination) -> bool {
    matches!(
        termination,
        Termination::Exited {
            code: 0 | DIRECTORY_NOT_FOUND
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_lists_the_root_once_and_a_missing_root_is_an_answer() {
        let args = args("dav:ComfyUI");
        assert_eq!(args.first().map(String::as_str), Some("lsf"));
        assert_eq!(args.last().map(String::as_str), Some("dav:ComfyUI"));
        assert!(args.windows(2).any(|w| w == ["--low-level-retries", "1"]));
        let exited = |code| Termination::Exited { code };
        assert!(reached(exited(0)) && reached(exited(3)));
        assert!(!reached(exited(1)) && !reached(Termination::Killed { signal: 9 }));
    }
}
