//! The API's handle on the orchestrator: requests go in on a channel and are answered with the
//! new status at once, or refused with a reason and a hint; the latest status is always at hand
//! without asking.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::placement::Conflict;
use super::slots::SlotIndex;
use super::status::{PublishedStatus, Status};
use crate::user::UserName;

/// `POST /api/start`: `user`'s ComfyUI, in `slot` or a free one; `force` takes the slot from
/// whoever holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    pub user: UserName,
    pub slot: Option<SlotIndex>,
    pub force: bool,
}

/// `POST /api/stop`: the session in `slot`, or `asker`'s own; `force` stops someone else's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopRequest {
    /// Who asks, when the client says.
    pub asker: Option<UserName>,
    pub slot: Option<SlotIndex>,
    pub force: bool,
}

/// Why the orchestrator refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser {
        user: UserName,
        users: Vec<String>,
    },
    NewUsersOff,
    UserExists(UserName),
    ShuttingDown,
    Persist(String),
    /// A slot is someone else's, or there is none to take.
    Slot(Conflict),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser { user, .. } => write!(f, "`{user}` is not a user of this pod"),
            Self::NewUsersOff => f.write_str("adding users is off on this pod"),
            Self::UserExists(user) => write!(f, "`{user}` is already a user of this pod"),
            Self::ShuttingDown => f.write_str("the pod is shutting down"),
            Self::Persist(why) => f.write_str(why),
            Self::Slot(Conflict::Busy { slot, holder }) => {
                write!(f, "slot {slot} runs {holder}'s ComfyUI")
            }
            Self::Slot(Conflict::Full(seats)) => {
                let holders: Vec<String> = seats
                    .iter()
                    .filter_map(|seat| {
                        Some(format!("{} in slot {}", seat.holder.as_ref()?, seat.slot))
                    })
                    .collect();
                write!(f, "every ComfyUI slot is taken: {}", holders.join(", "))
            }
            Self::Slot(Conflict::NoSuchSlot { slot, slots }) => {
                write!(f, "there is no slot {slot}: this pod has {slots}")
            }
            Self::Slot(Conflict::Ambiguous) => {
                f.write_str("this pod runs several ComfyUIs: say which to stop")
            }
        }
    }
}

impl Refusal {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::UnknownUser { users, .. } => format!(
                "users: {}; add users to runtime.users, or with POST /api/users when runtime.allow_new_users is on",
                users.join(", ")
            ),
            Self::NewUsersOff => "set runtime.allow_new_users = true in the stack manifest".to_owned(),
            Self::UserExists(_) => "start it with POST /api/start".to_owned(),
            Self::ShuttingDown => "wait for the pod to come back".to_owned(),
            Self::Persist(_) => "check that the volume is mounted and writable".to_owned(),
            Self::Slot(Conflict::Busy { holder, .. }) => format!(
                "ask {holder} first: their work stops with it; send \"force\": true to go ahead anyway"
            ),
            Self::Slot(Conflict::Full(_)) => {
                "wait for a slot to be free, or name one with \"slot\" and \"force\": true to stop its session".to_owned()
            }
            Self::Slot(Conflict::NoSuchSlot { slots, .. }) => {
                format!("slots are numbered 0 to {}", slots.saturating_sub(1))
            }
            Self::Slot(Conflict::Ambiguous) => {
                "send {\"slot\": N} or {\"user\": NAME} with the stop".to_owned()
            }
        }
    }
}

pub(super) type Reply = oneshot::Sender<Result<Arc<PublishedStatus>, Refusal>>;

pub(super) enum Request {
    Start(StartRequest, Reply),
    Stop(StopRequest, Reply),
    AddUser(UserName, Reply),
    Shutdown(oneshot::Sender<()>),
}

/// The API's handle on the orchestrator.
#[derive(Debug, Clone)]
pub struct Control {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Arc<PublishedStatus>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Start(..) => "Start",
            Self::Stop(..) => "Stop",
            Self::AddUser(..) => "AddUser",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl Control {
    pub(super) fn new(
        requests: mpsc::Sender<Request>,
        status: watch::Receiver<Arc<PublishedStatus>>,
    ) -> Self {
        Self { requests, status }
    }

    /// Runs a user's ComfyUI in a slot (stopping a forced slot's session first). Answers at once.
    pub async fn start(&self, start: StartRequest) -> Result<Arc<PublishedStatus>, Refusal> {
        self.ask(|reply| Request::Start(start, reply)).await
    }

    pub async fn stop(&self, stop: StopRequest) -> Result<Arc<PublishedStatus>, Refusal> {
        self.ask(|reply| Request::Stop(stop, reply)).await
    }

    pub async fn add_user(&self, user: UserName) -> Result<Arc<PublishedStatus>, Refusal> {
        self.ask(|reply| Request::AddUser(user, reply)).await
    }

    /// The latest status.
    pub fn status(&self) -> Arc<Status> {
        Arc::clone(&self.status.borrow().status)
    }

    /// The latest status as published, with its JSON.
    pub fn published(&self) -> Arc<PublishedStatus> {
        Arc::clone(&self.status.borrow())
    }

    /// Every status from now on, starting with the current one (the panel's live stream).
    pub fn watch(&self) -> watch::Receiver<Arc<PublishedStatus>> {
        self.status.clone()
    }

    /// Stops every service (SIGTERM, the grace period, SIGKILL) and returns when they are down.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn ask(
        &self,
        request: impl FnOnce(Reply) -> Request,
    ) -> Result<Arc<PublishedStatus>, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| Refusal::ShuttingDown)?;
        answer.await.map_err(|_| Refusal::ShuttingDown)?
    }
}
