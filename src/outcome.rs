//! How a command ended, as the documented exit codes: what every command returns (`cli`'s
//! build-time commands and `supervisor`'s `podstack supervise`) and `main` turns into the
//! process's exit code.

use std::process::ExitCode;

/// How a command ended, as the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: everything is fine.
    Ok,
    /// 1: a manifest is invalid, or generated files drifted.
    Failed,
    /// 2: the command line or the project layout is wrong.
    Usage,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
        }
    }
}
