//! What every handler of the control panel's API reaches (the API's routes in `api`, the panel
//! page in `assets`, the outputs in `outputs`): the orchestrator's [`Control`], the logs, the
//! panel's auth, the folders it serves from, the models and the fleet on the volume.

use std::path::PathBuf;
use std::sync::Arc;

use super::auth::PanelAuth;
use super::control::Control;
use super::host::HostHistory;
use super::login_limit::LoginLimit;
use super::models::Models;
use super::stream_slots::StreamSlots;
use crate::service::logs::LogBook;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub control: Control,
    pub logs: Arc<LogBook>,
    pub auth: Arc<PanelAuth>,
    /// Where `index.html` and the panel's other files are read from.
    pub ui_dir: Arc<PathBuf>,
    /// `<volume>/output`, every user's ComfyUI outputs.
    pub outputs_dir: Arc<PathBuf>,
    /// `<volume>/.podstack/sessions`, every pod's usage file.
    pub sessions_dir: Arc<PathBuf>,
    /// The stack's models in the shared folder.
    pub models: Models,
    /// The sync service, when the stack syncs.
    pub sync: Option<crate::sync::SyncHandle>,
    /// Every pod's heartbeat on this volume.
    pub fleet: Arc<super::fleet::FleetSource>,
    /// The live streams' slots.
    pub streams: StreamSlots,
    /// Attempts left at the panel token.
    pub login_limit: Arc<LoginLimit>,
    /// The machine's samples of the last hour.
    pub host: Arc<HostHistory>,
}
