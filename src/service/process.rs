//! PID-1 duties for every supervised process, the pod's services and the sync's rclone alike:
//! the child subreaper, the reaper that collects every exited child, services in their own
//! process groups, and signals to whole process trees.
//!
//! A process group does not hold everything a service starts: a custom node may start a helper
//! in a session of its own (`setsid`, often after a double fork), which leaves the group and,
//! once its parent exits, is re-parented to us with no link to the service left. So every
//! spawned service carries a mark in its environment ([`TREE_ENV`]) that its descendants
//! inherit, and a signal to the service goes to its group and to every process bearing its
//! mark (found in `/proc/<pid>/environ`). Only a descendant that clears its environment
//! escapes.
//!
//! Every child the supervisor starts after start-up goes through [`Reaper::spawn`]: the reaper
//! calls `waitpid(-1)` on each SIGCHLD, hands the status of a registered pid to its owner and
//! silently reaps everything else (orphans the kernel re-parented to us as subreaper). A
//! `std::process::Command::output()` run while the reaper runs could lose its status to it, so
//! one-shot tools (the GPU probe) run before [`Reaper::start`].

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::process::{ChildStderr, ChildStdout};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use super::exit_reason::Termination;

/// Makes orphaned descendants re-parent to this process instead of the real PID 1, so the
/// reaper can collect them (and the pod leaves no zombie when the supervisor is not PID 1).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

type Owners = HashMap<i32, oneshot::Sender<Termination>>;

/// The environment variable that marks every process of one spawned service.
pub const TREE_ENV: &str = "PODSTACK_PROCESS_TREE";

/// The number of the next spawned service's tree.
static NEXT_TREE: AtomicU64 = AtomicU64::new(1);

/// Reaps every exited child and routes the status of spawned services to their owners.
/// `waitpid(-1)` collects the children of the whole process: start one per process, and not
/// in unit tests, where other tests' children would be taken (the integration tests run it).
#[derive(Debug, Clone)]
pub struct Reaper {
    owners: Arc<Mutex<Owners>>,
}

/// A spawned service: its own process group, output pipes, and the news of its death.
#[derive(Debug)]
pub struct Spawned {
    pub group: ProcessGroup,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
    pub exited: oneshot::Receiver<Termination>,
}

/// How long the output pumps may take to drain after a process exited.
const DRAIN: Duration = Duration::from_millis(500);

impl ProcessGroup {
    /// Once the process exited: waits (at most a moment) for its output `pumps` to drain, so the
    /// lines that explain the exit are read first, kills whatever it left in its group, and
    /// hands the termination to `report`.
    pub fn report_exit(
        self,
        exited: oneshot::Receiver<Termination>,
        pumps: [tokio::task::JoinHandle<()>; 2],
        report: impl FnOnce(Termination) + Send + 'static,
    ) {
        tokio::spawn(async move {
            let Ok(termination) = exited.await else {
                return;
            };
            let _ = tokio::time::timeout(DRAIN, async {
                for pump in pumps {
                    let _ = pump.await;
                }
            })
            .await;
            self.signal(Signal::SIGKILL);
            report(termination);
        });
    }
}

impl Reaper {
    /// Installs the SIGCHLD handler and starts the reaping task. Call inside the runtime,
    /// before the first spawn.
    pub fn start() -> io::Result<Self> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Self {
            owners: Arc::default(),
        };
        let owners = Arc::clone(&reaper.owners);
        tokio::spawn(async move {
            loop {
                reap_exited(&owners);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    /// A reaper whose reaping task never runs, for unit tests that build an orchestrator but
    /// spawn nothing (a real one would collect the children of other tests).
    #[cfg(test)]
    pub(crate) fn idle() -> Self {
        Self {
            owners: Arc::default(),
        }
    }

    /// Starts `command` in a new process group with stdin closed and stdout/stderr piped.
    pub fn spawn(&self, mut command: Command) -> io::Result<Spawned> {
        let tree = NEXT_TREE.fetch_add(1, Ordering::Relaxed);
        command
            .env(TREE_ENV, tree_mark(tree))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Holding the lock across fork/exec keeps the reaper from collecting the child before
        // its owner is registered.
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        let mut child = command.spawn()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
        let (tx, exited) = oneshot::channel();
        owners.insert(pid.as_raw(), tx);
        drop(owners);
        let missing = || io::Error::other("the child's output pipe is missing");
        let stdout = ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
        let stderr = ChildStderr::from_std(child.stderr.take().ok_or_else(missing)?)?;
        Ok(Spawned {
            group: ProcessGroup { leader: pid, tree },
            stdout,
            stderr,
            exited,
        })
    }

    /// Waits until the supervisor has no child left at all (services, their descendants and
    /// adopted orphans), killing stragglers found in /proc once `deadline` has passed.
    pub async fn wait_no_children(&self, deadline: Duration) {
        let start = tokio::time::Instant::now();
        let mut killed = false;
        loop {
            reap_exited(&self.owners);
            let children = own_children();
            if children.is_empty() {
                return;
            }
            if !killed && start.elapsed() >= deadline {
                for pid in children {
                    tracing::warn!(pid, "killing a leftover child with SIGKILL");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                killed = true;
            }
            // Only at shutdown: a short pause between scans of /proc.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Collects every exited child without blocking.
fn reap_exited(owners: &Mutex<Owners>) {
    let mut owners = owners.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let (pid, termination) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Termination::Exited { code }),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (
                pid,
                Termination::Killed {
                    signal: signal as i32,
                },
            ),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(err) => {
                tracing::error!(%err, "waitpid failed");
                return;
            }
        };
        match owners.remove(&pid.as_raw()) {
            Some(owner) => {
                let _ = owner.send(termination);
            }
            None => tracing::debug!(pid = pid.as_raw(), ?termination, "reaped an adopted orphan"),
        }
    }
}

/// Pids whose parent is this process, read from /proc.
fn own_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The command name in parentheses may hold spaces; the fields after it do not.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|ppid| ppid == me))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// A service's processes: its process group, whose id is the pid of the process that leads
/// it, and every process that bears its tree's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessGroup {
    leader: Pid,
    tree: u64,
}

impl ProcessGroup {
    /// The pid of the service's main process.
    pub fn leader(self) -> u32 {
        self.leader.as_raw().unsigned_abs()
    }

    /// Sends `signal` to every process in the group and to every process its members started
    /// that left it. Processes that are already gone are fine.
    pub fn signal(self, signal: Signal) {
        match killpg(self.leader, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(group = self.leader(), %err, ?signal, "could not signal the group")
            }
        }
        for pid in marked(Path::new("/proc"), &tree_mark(self.tree)) {
            if nix::unistd::getpgid(Some(pid)).is_ok_and(|group| group == self.leader) {
                continue;
            }
            tracing::info!(
                "{} to pid {pid}, which the service's process {} started outside its group",
                signal.as_str(),
                self.leader()
            );
            match kill(pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(err) => {
                    tracing::warn!(%pid, %err, ?signal, "could not signal a detached process")
                }
            }
        }
    }
}

/// The mark of one tree: unique to this supervisor's run.
fn tree_mark(tree: u64) -> String {
    format!("{}-{tree}", std::process::id())
}

/// Every process under `proc_root` whose environment holds `TREE_ENV=<mark>`.
fn marked(proc_root: &Path, mark: &str) -> Vec<Pid> {
    let wanted = format!("{TREE_ENV}={mark}");
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(proc_root.join(pid.to_string()).join("environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|variable| variable == wanted.as_bytes())
            })
        })
        .map(Pid::from_raw)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_processes_bearing_a_trees_mark() {
        let proc_root = tempfile::tempdir().unwrap();
        for (pid, environ) in [
            ("101", "PATH=/bin\0PODSTACK_PROCESS_TREE=7-1\0"),
            ("102", "PODSTACK_PROCESS_TREE=7-12\0"),
            ("103", "PODSTACK_PROCESS_TREE=7-1"),
            ("self", "PODSTACK_PROCESS_TREE=7-1\0"),
        ] {
            let dir = proc_root.path().join(pid);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("environ"), environ).unwrap();
        }
        // 104 has exited between the listing and the read: no environ.
        std::fs::create_dir(proc_root.path().join("104")).unwrap();
        let mut found = marked(proc_root.path(), "7-1");
        found.sort();
        assert_eq!(found, [Pid::from_raw(101), Pid::from_raw(103)]);
    }
}
