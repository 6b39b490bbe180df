//! The API's handle on the orchestrator: requests go in on a channel and are answered with the
//! new status at once, or refused with a reason and a hint; the latest status is always at hand
//! without asking.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::status::{PublishedStatus, Status};
use crate::user::UserName;

/// Why the orchestrator refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser { user: UserName, users: Vec<String> },
    NewUsersOff,
    UserExists(UserName),
    ShuttingDown,
    Persist(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser { user, .. } => write!(f, "`{user}` is not a user of this pod"),
            Self::NewUsersOff => f.write_str("adding users is off on this pod"),
            Self::UserExists(user) => write!(f, "`{user}` is already a user of this pod"),
            Self::ShuttingDown => f.write_str("the pod is shutting down"),
            Self::Persist(why) => f.write_str(why),
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
        }
    }
}

pub(super) type Reply = oneshot::Sender<Result<Arc<PublishedStatus>, Refusal>>;

pub(super) enum Request {
    Start(UserName, Reply),
    Stop(Reply),
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
            Self::Stop(_) => "Stop",
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

    /// Runs `user`'s ComfyUI, stopping another user's first. Answers at once.
    pub async fn start(&self, user: UserName) -> Result<Arc<PublishedStatus>, Refusal> {
        self.ask(|reply| Request::Start(user, reply)).await
    }

    pub async fn stop(&self) -> Result<Arc<PublishedStatus>, Refusal> {
        self.ask(Request::Stop).await
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
