//! Output sync with rclone (L21-L25), a service of the supervisor: each user folder this pod
//! has served goes to `<remote>:<root>/<folder>/<user>` (`layout`), synced by exactly one pod
//! at a time (`lease`), through `rclone rcd` on loopback (`rcd`, `rc`) under the same service
//! state machine as ComfyUI (`crate::service`, driven from `service`), one pass per folder
//! (`pass`, its bookkeeping in `folder`) triggered by file events (`trigger`)
//! on a schedule that respects `min_age` (`schedule`), with a dated trash, an empty-source
//! guard (`guard`), a deletion budget kept on the volume (`budget`), dedupe on duplicates
//! (`dedupe`), and a quick probe of a remote that stopped answering (`probe`). The remote
//! comes from the manifest plus secrets from the environment (`remote`, `redact`), with Google
//! Drive's Shared Drive rules (`drive`, `shared_drive`). `GET /api/sync` and `/metrics` show
//! it (`report`).

pub mod budget;
pub mod dedupe;
pub mod drive;
pub mod error;
pub mod folder;
pub mod guard;
pub mod layout;
pub mod lease;
pub mod ledger;
pub mod log_line;
pub mod once;
pub mod pass;
pub mod probe;
pub mod rc;
pub mod rcd;
pub mod redact;
pub mod remote;
pub mod report;
pub mod schedule;
pub mod service;
pub mod shared_drive;
pub mod trigger;
pub mod trouble;

pub use remote::is_secret_option;
pub use report::SyncReport;
pub use service::{start, SyncHandle, SyncSetup};
