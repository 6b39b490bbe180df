//! Starting a service's process: ComfyUI's command for the active user (its launch plan, the
//! shared models' paths, its cgroup) or JupyterLab's, each without the secrets it has no
//! business with, spawned through the reaper with its output pumped into the log book and
//! the inbox.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::{name_of, Internal, Kind, Pod, Process};
use crate::service::clock::now_ms;
use crate::service::exit_reason::{KnownFailure, OomWatch};
use crate::service::logs::pump_lines;
use crate::service::process::Spawned;
use crate::service::secrets::{self, Secret};
use crate::supervisor::jupyter::JupyterPlan;
use crate::supervisor::launch::{ComfyUiLaunch, LaunchPlan};
use crate::supervisor::log_watch::LogWatch;
use crate::supervisor::models;
use crate::supervisor::slots::SlotIndex;
use crate::supervisor::usage::SessionEvent;
use crate::user::UserName;

impl Pod {
    /// Starts the service's process; the error is a reason and a hint.
    pub(super) fn spawn(&mut self, kind: Kind) -> Result<(), (String, String)> {
        let (command, user) = match kind {
            Kind::ComfyUi(slot) => {
                let user = self.slot(slot).user.clone().ok_or_else(|| {
                    (
                        "ComfyUI was asked to start for nobody".to_owned(),
                        "start it with POST /api/start {\"user\": ...}".to_owned(),
                    )
                })?;
                self.check_port_free(slot)?;
                (self.comfyui_command(slot, &user)?, Some(user))
            }
            Kind::Jupyter => (self.jupyter_command()?, None),
        };
        let spawned = self.reaper.spawn(command).map_err(|err| {
            (
                format!("{} could not be started: {err}", name_of(kind)),
                "check PODSTACK_PYTHON (or --python) and the ComfyUI folder".to_owned(),
            )
        })?;
        let pid = spawned.group.leader();
        if let Kind::ComfyUi(slot) = kind {
            let slot = self.slot_mut(slot);
            slot.confirmed = None;
            slot.import_failed.clear();
            slot.prompt = None;
            self.join_cgroup(pid);
        }
        let oom = OomWatch::start(Path::new("/proc"), Path::new("/sys/fs/cgroup"), pid);
        self.generation += 1;
        let generation = self.generation;
        let group = spawned.group;
        self.watch_process(kind, generation, spawned);
        let session = now_ms();
        let whose = user
            .as_ref()
            .map_or(String::new(), |user| format!(" for {user}"));
        tracing::info!("{} started{whose} (pid {pid})", name_of(kind));
        if let (Kind::ComfyUi(slot), Some(user)) = (kind, &user) {
            self.record(slot, user, session, SessionEvent::Started);
        }
        self.supervised(kind).process = Some(Process {
            generation,
            group,
            user,
            watch: LogWatch::default(),
            known: None,
            tail: VecDeque::new(),
            oom,
            session,
            probe: None,
        });
        Ok(())
    }

    /// A port another program holds fails the start at once, with the words ComfyUI's own
    /// complaint would get, instead of a boot that dies at its end and restarts in a loop.
    fn check_port_free(&self, slot: SlotIndex) -> Result<(), (String, String)> {
        let (address, port) = (self.settings.listen, self.slot(slot).plan.port);
        match std::net::TcpListener::bind((address, port)) {
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                let taken = KnownFailure::PortInUse {
                    port,
                    address: address.to_string(),
                };
                Err((
                    format!("ComfyUI cannot start: {}", taken.what()),
                    taken.hint(),
                ))
            }
            // Anything else (an address this machine lacks) is ComfyUI's to report.
            _ => Ok(()),
        }
    }

    fn comfyui_command(
        &self,
        slot: SlotIndex,
        user: &UserName,
    ) -> Result<Command, (String, String)> {
        let settings = &self.settings;
        let slot = self.slot(slot);
        let device = slot.plan.device();
        let listen = settings.listen.to_string();
        let extra_model_paths = models::extra_paths::write(settings).map_err(|err| {
            (
                format!("the shared models folder could not be prepared: {err}"),
                "check that the volume is mounted and writable".to_owned(),
            )
        })?;
        let plan = LaunchPlan {
            python: &settings.python,
            comfyui_dir: &settings.comfyui_dir,
            listen: &listen,
            port: slot.plan.port,
            slot: slot.plan.index,
            gpus: &slot.plan.selection(),
            volume: &settings.volume,
            pod: &settings.pod,
            user,
            device: &device,
            attention: &slot.attention,
            torch: settings
                .stack
                .torch
                .as_ref()
                .map(|torch| torch.version.as_str()),
            extra_model_paths: &extra_model_paths,
            extra_args: &settings.stack.runtime.comfyui_args,
        };
        let refused = |err: &dyn fmt::Display| {
            (
                format!("ComfyUI could not be prepared for {user}: {err}"),
                "check the volume and runtime.comfyui_args".to_owned(),
            )
        };

        let launch = ComfyUiLaunch::new(&plan).map_err(|err| refused(&err))?;
        launch.create_folders().map_err(|err| refused(&err))?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(name, value)| (name, value)))
            .current_dir(&launch.cwd);
        // Custom nodes have no business with any of the pod's secrets.
        secrets::withhold(
            &mut command,
            &[Secret::PanelToken, Secret::JupyterToken, Secret::SyncRemote],
        );
        Ok(command)
    }

    fn jupyter_command(&self) -> Result<Command, (String, String)> {
        match self.jupyter.as_ref().map(|(_, plan)| plan) {
            Some(JupyterPlan::Run { program, args, .. }) => {
                let mut command = Command::new(program);
                command.args(args).current_dir(&self.settings.volume);
                // Notebooks keep Jupyter's own token, and nothing else of the pod's secrets.
                secrets::withhold(&mut command, &[Secret::PanelToken, Secret::SyncRemote]);
                Ok(command)
            }
            Some(JupyterPlan::Refused { reason, hint }) => Err((reason.clone(), hint.clone())),
            Some(JupyterPlan::Disabled) | None => Err((
                "JupyterLab is disabled".to_owned(),
                "set runtime.jupyter.enabled = true".to_owned(),
            )),
        }
    }

    /// Moves ComfyUI into the configured memory cgroup, so its OOM counter explains a kill.
    fn join_cgroup(&mut self, pid: u32) {
        let Some(cgroup) = &self.settings.comfyui_cgroup else {
            return;
        };
        if let Err(err) = std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()) {
            let warning = format!(
                "ComfyUI could not join the cgroup {}: {err}",
                cgroup.display()
            );
            tracing::warn!("{warning}");
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }

    /// Pumps the process's output into its log and the inbox, and reports its exit once the
    /// output has drained (so the lines that explain it are read first).
    fn watch_process(&self, kind: Kind, generation: u64, spawned: Spawned) {
        let Spawned {
            group,
            stdout,
            stderr,
            exited,
        } = spawned;
        let pump = |pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            let internal = self.internal.clone();
            tokio::spawn(pump_lines(
                pipe,
                Arc::clone(&self.logs),
                kind.log(),
                move |line| {
                    let _ = internal.send(Internal::Line {
                        kind,
                        generation,
                        line,
                    });
                },
            ))
        };
        let pumps = [pump(Box::new(stdout)), pump(Box::new(stderr))];
        let internal = self.internal.clone();
        group.report_exit(exited, pumps, move |termination| {
            let _ = internal.send(Internal::Exited {
                kind,
                generation,
                termination,
            });
        });
    }
}
