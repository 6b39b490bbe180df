//! The stack's `[[model]]` files in the volume's shared models folder (`<volume>/models/<dest>`),
//! fetched by the pod: each model's state for `GET /api/models`, and the fetches that
//! `POST /api/models/fetch` (or the pod's start, under `runtime.models.fetch_at_start`) begins.
//!
//! A download goes to a partial file beside its destination, resumes after a broken
//! connection, is checked against the manifest's sha256, and only then renamed into place: no
//! file under a model's name is ever partial or unchecked. At most `runtime.models.parallel`
//! downloads run per pod, and one per file across the pods of a volume (a lease). A file
//! already there is taken as it is when its verification record (size and mtime) matches, so a
//! start does not read every model again.

pub mod extra_paths;
mod fetch;
pub mod lease;
pub mod verified;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use super::settings::Settings;
use crate::http::Http;
use crate::manifest::Model;
use verified::Verified;

/// Where a model is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ModelState {
    /// Not checked yet (the pod just started).
    Unknown,
    /// Not in the folder; `POST /api/models/fetch` downloads it.
    Missing,
    /// Reading the file in the folder to check its sha256 (it has no record yet, or changed).
    Checking {
        bytes: u64,
        total: u64,
    },
    /// Waiting for one of this pod's download slots.
    Queued,
    /// Another pod on the volume downloads it; this pod waits for the file.
    Waiting {
        pod: String,
    },
    /// Being downloaded by this pod; a resumed download counts what was there already.
    Downloading {
        bytes: u64,
        total: Option<u64>,
        bytes_per_s: u64,
    },
    /// In the folder: checked against the manifest's sha256 when `verified`.
    Present {
        verified: bool,
    },
    Failed {
        reason: String,
        hint: String,
    },
}

/// One model as `GET /api/models` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub dest: String,
    pub url: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    #[serde(flatten)]
    pub state: ModelState,
}

/// Every model of the stack.
#[derive(Debug, Clone, Serialize)]
pub struct ModelsStatus {
    /// The shared models folder.
    pub folder: String,
    pub models: Vec<ModelStatus>,
}

/// The pod's models; cheap to clone.
#[derive(Debug, Clone)]
pub struct Models {
    shared: Arc<Shared>,
}

/// What every fetch of this pod reads.
#[derive(Debug)]
struct Shared {
    folder: PathBuf,
    leases: PathBuf,
    verified: Verified,
    pod: String,
    /// Its transfer slots are the pod's download slots.
    http: Http,
    entries: Vec<Entry>,
}

/// One model and what is happening to it.
#[derive(Debug)]
struct Entry {
    model: Model,
    state: Mutex<ModelState>,
    /// A fetch (or check) of it is under way in this pod.
    busy: AtomicBool,
    transfer: Mutex<Option<Transfer>>,
}

/// A download in progress, for its bytes and speed.
#[derive(Debug)]
struct Transfer {
    started: Instant,
    /// What the partial file held when it began.
    from: u64,
    bytes: Arc<AtomicU64>,
    total: Option<u64>,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, ModelState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, state: ModelState) {
        *self.state() = state;
    }

    fn transfer(&self) -> MutexGuard<'_, Option<Transfer>> {
        self.transfer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn status(&self) -> ModelStatus {
        let mut state = self.state().clone();
        if let (ModelState::Downloading { .. }, Some(transfer)) = (&state, &*self.transfer()) {
            let bytes = transfer.bytes.load(Ordering::Relaxed);
            let seconds = transfer.started.elapsed().as_secs_f64();
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let bytes_per_s = if seconds > 0.0 {
                (bytes.saturating_sub(transfer.from) as f64 / seconds) as u64
            } else {
                0
            };
            state = ModelState::Downloading {
                bytes,
                total: transfer.total,
                bytes_per_s,
            };
        }
        ModelStatus {
            dest: self.model.dest.clone(),
            url: self.model.url.clone(),
            size: self.model.size,
            sha256: self.model.sha256.clone(),
            state,
        }
    }
}

impl Models {
    /// The models of the pod's stack; nothing is read or fetched yet.
    pub fn new(settings: &Settings) -> reqwest::Result<Self> {
        let parallel = usize::try_from(settings.stack.runtime.models.parallel)
            .unwrap_or(1)
            .max(1);
        let podstack_dir = settings.podstack_dir();
        Ok(Self {
            shared: Arc::new(Shared {
                folder: settings.models_dir(),
                leases: podstack_dir.join("leases").join("models"),
                verified: Verified::new(&podstack_dir),
                pod: settings.pod.as_str().to_owned(),
                http: Http::new(parallel)?,
                entries: settings
                    .stack
                    .models
                    .iter()
                    .map(|model| Entry {
                        model: model.clone(),
                        state: Mutex::new(ModelState::Unknown),
                        busy: AtomicBool::new(false),
                        transfer: Mutex::new(None),
                    })
                    .collect(),
            }),
        })
    }

    pub fn status(&self) -> ModelsStatus {
        ModelsStatus {
            folder: self.shared.folder.display().to_string(),
            models: self.shared.entries.iter().map(Entry::status).collect(),
        }
    }

    /// Checks every model that is not being worked on and downloads those missing (or failed)
    /// when `download`; returns at once. Needs a tokio runtime.
    pub fn refresh(&self, download: bool) -> usize {
        let mut started = 0;
        for index in 0..self.shared.entries.len() {
            let entry = &self.shared.entries[index];
            let settled = matches!(*entry.state(), ModelState::Present { .. });
            if settled || entry.busy.swap(true, Ordering::SeqCst) {
                continue;
            }
            started += 1;
            if download {
                // Answered at once by POST /api/models/fetch: the model is on its way.
                entry.set(ModelState::Queued);
            }
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                fetch::ensure(&shared, index, download).await;
                shared.entries[index].busy.store(false, Ordering::SeqCst);
            });
        }
        started
    }
}
