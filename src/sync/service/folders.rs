//! Which folders the pod syncs and when they change: a served user's folders are claimed
//! (leases renewed every heartbeat, taken over when stale, let go stale when this pod's sync
//! failed), watched once they exist, and passed when files change or the full pass is due.

use tokio::time::Instant;

use super::{Syncer, LOG};
use crate::service::clock::now_ms;
use crate::service::state::ServiceState;
use crate::sync::folder::FolderSync;
use crate::sync::layout::{excluded, UserFolder};
use crate::sync::lease::Claim;
use crate::sync::ledger::changed_since;
use crate::sync::schedule::DEBOUNCE;
use crate::sync::trigger::Change;
use crate::user::UserName;

impl Syncer {
    /// This pod serves `user`: claim their folders and sync them.
    pub(super) fn serve(&mut self, user: UserName) {
        if self.finishing.is_some() || !self.served.insert(user.clone()) {
            return;
        }
        for entry in self.sync.folders.clone() {
            let folder = UserFolder {
                user: user.clone(),
                kind: entry.path,
            };
            if !self.folders.contains_key(&folder) {
                self.add_folder(folder, entry.mode);
            }
        }
    }

    /// Claims `folder`, enters it in the ledger and syncs it from now on.
    fn add_folder(&mut self, folder: UserFolder, mode: crate::manifest::SyncMode) {
        let local = folder.local(&self.volume);
        let claim = self.claim(&folder);
        match &claim {
            Claim::Mine => self.log(&format!("{folder}: this pod syncs it")),
            Claim::HeldBy { pod, .. } => {
                self.log(&format!(
                    "{folder}: synced by the pod {pod}, which holds its lease"
                ));
            }
        }
        if let Err(err) = self.ledger.enter(&folder) {
            tracing::warn!("sync: cannot enter {folder} in the sync ledger: {err}");
        }
        if let Some(watch) = &mut self.watch {
            watch.watch(&local);
        }
        let remote = format!("{}:{}", self.sync.remote, folder.remote(&self.sync.root));
        let mut state = FolderSync::new(mode, local, remote, claim, Instant::now());
        // The deletion budget's window goes on from where an earlier run left it.
        match self.ledger.deletions(&folder) {
            Ok(deletions) => state.deletions = deletions,
            Err(err) => tracing::warn!(
                "sync: cannot read the deletions of {folder} from the sync ledger: {err}"
            ),
        }
        self.folders.insert(folder, state);
    }

    /// At start: every folder in the ledger changed since its last pass is synced again,
    /// served or not, once its lease is free or stale (a supervisor killed before its pass).
    pub(super) fn catch_up(&mut self) {
        for (folder, synced_ms) in self.ledger.entries() {
            let Some(entry) = self.sync.folders.iter().find(|f| f.path == folder.kind) else {
                continue;
            };
            let mode = entry.mode;
            if self.folders.contains_key(&folder)
                || !changed_since(&folder.local(&self.volume), synced_ms)
            {
                continue;
            }
            self.log(&format!(
                "{folder}: changed since its last pass before this start: catching up"
            ));
            self.add_folder(folder, mode);
        }
    }

    pub(super) fn claim(&self, folder: &UserFolder) -> Claim {
        self.leases.claim(folder, now_ms()).unwrap_or_else(|err| {
            tracing::warn!("sync: cannot claim the lease of {folder}: {err}");
            Claim::HeldBy {
                pod: format!("nobody (the lease cannot be written: {err})"),
                renewed_ms: None,
            }
        })
    }

    /// Renews the leases this pod holds, claims those that became free or stale, and watches
    /// folders that appeared.
    pub(super) fn heartbeat(&mut self) {
        // A pod whose sync failed lets its leases go stale, so a pod that can sync takes over.
        if matches!(self.machine.state(), ServiceState::Failed { .. }) {
            return;
        }
        let now = now_ms();
        let keys: Vec<UserFolder> = self.folders.keys().cloned().collect();
        for folder in keys {
            let held = self.folders.get(&folder).is_some_and(FolderSync::held);
            let claim = if held {
                self.leases.renew(&folder, now)
            } else {
                self.leases.claim(&folder, now)
            };
            let claim = match claim {
                Ok(claim) => claim,
                Err(err) => {
                    tracing::warn!("sync: cannot renew the lease of {folder}: {err}");
                    continue;
                }
            };
            let Some(state) = self.folders.get_mut(&folder) else {
                continue;
            };
            match (held, &claim) {
                (true, Claim::HeldBy { pod, .. }) => {
                    tracing::warn!(
                        "sync: the pod {pod} took over the lease of {folder}; this pod stops syncing it"
                    );
                    if let Some(running) = &state.running {
                        let _ = running.stop.send(true);
                        self.logs.push(
                            LOG,
                            &format!(
                                "{folder}: the lease went to {pod}: stopping the running pass"
                            ),
                        );
                    }
                }
                (false, Claim::Mine) => tracing::info!(
                    "sync: took over the lease of {folder} (its holder stopped renewing it)"
                ),
                _ => {}
            }
            state.set_claim(claim, Instant::now());
        }
    }

    /// Watches the served folders that appeared since the last look (ComfyUI creates a
    /// user's folders when it first starts for them, a workflow folder appears with the first
    /// saved workflow). Files written before the watch began raised no event, so a folder
    /// watched anew counts as changed.
    pub(super) fn watch_new_folders(&mut self) {
        let Some(watch) = &mut self.watch else {
            return;
        };
        let now = Instant::now();
        for state in self.folders.values_mut() {
            if !watch.watching(&state.local) && watch.watch(&state.local) {
                let local = state.local.clone();
                state.notice(&local, now, self.timing);
            }
        }
    }

    pub(super) fn full_pass(&mut self) {
        let now = Instant::now();
        for state in self.folders.values_mut() {
            state.expedite(now);
        }
    }

    pub(super) fn on_change(&mut self, change: Change) {
        let now = Instant::now();
        let path = match change {
            Change::At(path) => path,
            Change::Unknown => {
                for state in self.folders.values_mut() {
                    let local = state.local.clone();
                    state.notice(&local, now, self.timing);
                    state.expedite(now + DEBOUNCE);
                }
                return;
            }
        };
        let Some(state) = self
            .folders
            .values_mut()
            .find(|state| path.starts_with(&state.local))
        else {
            return;
        };
        if path == state.local && !path.exists() {
            if let Some(watch) = &mut self.watch {
                watch.forget(&path);
            }
        }
        let relative = path.strip_prefix(&state.local).unwrap_or(&path);
        if !excluded(relative) {
            state.notice(&path, now, self.timing);
        }
    }
}
