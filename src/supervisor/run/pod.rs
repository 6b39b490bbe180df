//! The pod as the orchestrator holds it: set up from [`Setup`] (the GPU, the attention
//! choice, the roster, the usage log, JupyterLab's plan and the warnings that hold for the
//! whole run), the API's requests (start, stop, add a user), the news from processes and timers
//! routed to their handlers, and which service is which.

use tokio::sync::mpsc;

use super::{Internal, Kind, Pod, Setup, Slot, Supervised};
use crate::service::clock::now_ms;
use crate::service::loopback::local_client;
use crate::service::secrets::PANEL_TOKEN_ENV;
use crate::service::state::Event;
use crate::supervisor::control::{Refusal, StartRequest, StopRequest};
use crate::supervisor::gpu::Device;
use crate::supervisor::jupyter::{self, JupyterPlan};
use crate::supervisor::placement::{self, Placement, Seat};
use crate::supervisor::slots::{self, SlotIndex};
use crate::supervisor::usage::UsageLog;
use crate::supervisor::users::{AddError, Roster};
use crate::user::UserName;

impl Pod {
    pub(super) fn new(
        setup: Setup,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Result<Self, reqwest::Error> {
        let Setup {
            settings,
            reaper,
            logs,
            gpus,
            verification,
            auth,
            jupyter_token,
            sync,
            host,
        } = setup;
        let device = gpus.device();
        let mut warnings = gpus.notes.clone();
        let (plans, slot_warnings) =
            slots::plan(settings.stack.runtime.slots, &gpus, settings.comfyui_port);
        warnings.extend(slot_warnings);
        let runpod = settings.runpod_pod_id.is_some();
        for warning in slots::unpublished(&plans, runpod, settings.stack.published_slots) {
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
        let slots = plans
            .into_iter()
            .map(|plan| Slot::new(plan, &settings))
            .collect();
        if verification.mismatch() {
            warnings.push(format!(
                "This pod is not the build it should be: {}",
                verification.summary()
            ));
        }
        if device == Device::Cpu && warnings.is_empty() {
            warnings.push("No NVIDIA GPU: ComfyUI runs on the CPU (--cpu)".to_owned());
        }
        if !auth.token_required {
            warnings.push(format!(
                "The panel has no token: anyone who reaches port {} can start and stop ComfyUI. Set {PANEL_TOKEN_ENV}.",
                settings.panel_port
            ));
        }
        let users_file = settings
            .podstack_dir()
            .join("users")
            .join(format!("{}.json", settings.pod.as_str()));
        let runtime = &settings.stack.runtime;
        let (roster, roster_warnings) =
            Roster::load(&runtime.users, runtime.allow_new_users, users_file);
        warnings.extend(roster_warnings);
        let usage = UsageLog::open(&settings.podstack_dir().join("sessions"), &settings.pod)
            .map_err(|err| warnings.push(format!("GPU hours are not recorded: {err}")))
            .ok();
        let jupyter_plan = jupyter::plan(
            &runtime.jupyter,
            jupyter_token.as_deref(),
            &settings.python,
            settings.listen,
            &settings.volume,
        );
        if let JupyterPlan::Run {
            warning: Some(warning),
            ..
        } = &jupyter_plan
        {
            warnings.push(warning.clone());
        }
        let jupyter = (jupyter_plan != JupyterPlan::Disabled)
            .then(|| (Supervised::new("JupyterLab", &settings), jupyter_plan));
        Ok(Self {
            client: local_client()?,
            slots,
            settings,
            reaper,
            logs,
            gpus,
            roster,
            auth,
            verification,
            started_ms: now_ms(),
            warnings,
            jupyter,
            usage,
            sync,
            host,
            generation: 0,
            internal,
        })
    }

    /// What runs from the start: JupyterLab when enabled (or its refusal, as a failed state).
    pub(super) fn begin(&mut self) {
        for slot in &self.slots {
            tracing::info!(
                "slot {} (port {}): attention {} ({})",
                slot.plan.index,
                slot.plan.port,
                slot.attention.kernel,
                slot.attention.why
            );
        }
        if self.jupyter.is_some() {
            self.drive(Kind::Jupyter, Event::StartRequested);
        }
    }

    pub(super) fn seats(&self) -> Vec<Seat> {
        self.slots.iter().map(Slot::seat).collect()
    }

    pub(super) fn start(&mut self, request: StartRequest) -> Result<(), Refusal> {
        let StartRequest { user, slot, force } = request;
        if !self.roster.contains(&user) {
            return Err(Refusal::UnknownUser {
                user,
                users: self.roster.names(),
            });
        }
        let placement =
            placement::start(&self.seats(), &user, slot, force).map_err(Refusal::Slot)?;
        let (slot, replaced) = match placement {
            Placement::Take(slot) => (slot, None),
            Placement::Replace { slot, holder } => (slot, Some(holder)),
        };
        // A slot's last user, whose ComfyUI stopped or failed, is replaced without a word.
        let running_for = self
            .slot(slot)
            .service
            .process
            .as_ref()
            .and_then(|p| p.user.clone());
        match &replaced {
            Some(holder) => tracing::warn!(
                "{user} forced slot {slot}: {holder}'s ComfyUI is stopped, with whatever it was running"
            ),
            None => tracing::info!("start requested for {user} in slot {slot}"),
        }
        if let Some(sync) = &self.sync {
            sync.serve(user.clone());
        }
        let switching = running_for.is_some_and(|running| running != user);
        self.slot_mut(slot).user = Some(user);
        if switching {
            // Stop the other user's ComfyUI; the state machine starts again once it exited.
            self.drive(Kind::ComfyUi(slot), Event::StopRequested);
        }
        self.drive(Kind::ComfyUi(slot), Event::StartRequested);
        Ok(())
    }

    pub(super) fn stop(&mut self, request: &StopRequest) -> Result<(), Refusal> {
        let slot = placement::stop(
            &self.seats(),
            request.asker.as_ref(),
            request.slot,
            request.force,
        )
        .map_err(Refusal::Slot)?;
        let holder = self.slot_mut(slot).user.take();
        match (&request.asker, &holder) {
            (Some(asker), Some(holder)) if asker != holder => tracing::warn!(
                "{asker} forced a stop of {holder}'s ComfyUI in slot {slot}, with whatever it was running"
            ),
            _ => tracing::info!("stop requested for slot {slot}"),
        }
        self.drive(Kind::ComfyUi(slot), Event::StopRequested);
        Ok(())
    }

    pub(super) fn stop_all(&mut self) {
        tracing::info!("stopping every service");
        for index in 0..self.slots.len() {
            let slot = self.slots[index].plan.index;
            self.slots[index].user = None;
            self.drive(Kind::ComfyUi(slot), Event::StopRequested);
        }
        if self.jupyter.is_some() {
            self.drive(Kind::Jupyter, Event::StopRequested);
        }
    }

    pub(super) fn add_user(&mut self, user: UserName) -> Result<(), Refusal> {
        match self.roster.add(user.clone()) {
            Ok(()) => {
                tracing::info!("user {user} added");
                Ok(())
            }
            Err(AddError::Off) => Err(Refusal::NewUsersOff),
            Err(AddError::Exists(user)) => Err(Refusal::UserExists(user)),
            Err(err @ AddError::Save { .. }) => Err(Refusal::Persist(err.to_string())),
        }
    }

    pub(super) fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Line {
                kind,
                generation,
                line,
            } => self.on_line(kind, generation, &line.text),
            Internal::Exited {
                kind,
                generation,
                termination,
            } => self.on_exit(kind, generation, termination),
            Internal::Answering { kind, generation } => {
                if self.current_generation(kind) == Some(generation) {
                    self.drive(kind, Event::ReadyProbeOk);
                }
            }
            Internal::Timer { kind, event } => self.drive(kind, event),
        }
    }

    pub(super) fn all_down(&self) -> bool {
        self.slots.iter().all(|slot| slot.service.process.is_none())
            && self
                .jupyter
                .as_ref()
                .is_none_or(|(service, _)| service.process.is_none())
    }

    pub(super) fn current_generation(&self, kind: Kind) -> Option<u64> {
        self.supervised_ref(kind)
            .process
            .as_ref()
            .map(|p| p.generation)
    }

    pub(super) fn supervised(&mut self, kind: Kind) -> &mut Supervised {
        let slot = match kind {
            Kind::ComfyUi(slot) => slot,
            // No JupyterLab, no news from one: the first slot stands in.
            Kind::Jupyter if self.jupyter.is_none() => SlotIndex(0),
            Kind::Jupyter => {
                return self
                    .jupyter
                    .as_mut()
                    .map(|(jupyter, _)| jupyter)
                    .unwrap_or_else(|| unreachable!("checked above"));
            }
        };
        &mut self.slot_mut(slot).service
    }

    pub(super) fn supervised_ref(&self, kind: Kind) -> &Supervised {
        match (kind, &self.jupyter) {
            (Kind::Jupyter, Some((jupyter, _))) => jupyter,
            (Kind::ComfyUi(slot), _) => &self.slot(slot).service,
            (Kind::Jupyter, None) => &self.slots[0].service,
        }
    }

    /// A slot of the pod; slot numbers come from the pod's own plan.
    pub(super) fn slot(&self, slot: SlotIndex) -> &Slot {
        &self.slots[usize::from(slot.0)]
    }

    pub(super) fn slot_mut(&mut self, slot: SlotIndex) -> &mut Slot {
        &mut self.slots[usize::from(slot.0)]
    }
}
