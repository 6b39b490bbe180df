//! One-shot rclone commands (`backend drives`, `dedupe`) while the reaper runs: a plain
//! `Command::output()` could lose its exit status to the reaper's `waitpid(-1)`, so they are
//! spawned through it like a service, their output read whole, and killed at a deadline.

use std::io;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt as _;

use crate::service::exit_reason::Termination;
use crate::service::process::Reaper;

/// What a one-shot command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub termination: Termination,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited { code: 0 }
    }

    /// The last lines of its stderr, for a message.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].join(" / ")
    }
}

/// Runs `command` to its end, or kills its group after `deadline`.
pub async fn run(reaper: &Reaper, command: Command, deadline: Duration) -> io::Result<Finished> {
    let spawned = reaper.spawn(command)?;
    let group = spawned.group;
    let (mut stdout, mut stderr) = (spawned.stdout, spawned.stderr);
    let exited = spawned.exited;
    let work = async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        read_out?;
        read_err?;
        let termination = exited
            .await
            .map_err(|_| io::Error::other("the reaper stopped before the command ended"))?;
        Ok(Finished {
            termination,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(finished) => finished,
        Err(_) => {
            group.signal(Signal::SIGKILL);
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("it did not finish within {} s", deadline.as_secs()),
            ))
        }
    }
}
