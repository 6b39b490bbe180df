//! The pod's users: the manifest's, plus those added from the panel when the manifest allows it
//! (`runtime.allow_new_users`). Added users are kept in `<volume>/.podstack/users/<pod>.json`, a
//! file only this pod writes, so pods sharing a volume never rewrite each other's lists.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::user::UserName;

/// Who may start ComfyUI on this pod.
#[derive(Debug)]
pub struct Roster {
    manifest: Vec<UserName>,
    added: Vec<UserName>,
    file: PathBuf,
    allow_new: bool,
}

/// Why a user cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("adding users is off on this pod")]
    Off,
    #[error("`{0}` is already a user of this pod")]
    Exists(UserName),
    #[error("could not save the user list {}: {source}", path.display())]
    Save { path: PathBuf, source: io::Error },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AddedUsers {
    users: Vec<String>,
}

impl Roster {
    /// The manifest's users and those this pod added before. Names that break the rule (a file
    /// edited by hand) are skipped and reported.
    pub fn load(manifest: &[String], allow_new: bool, file: PathBuf) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let manifest = valid(manifest, "runtime.users", &mut warnings);
        let saved: AddedUsers = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|err| {
                warnings.push(format!(
                    "{} is not a user list ({err}); its users are ignored",
                    file.display()
                ));
                AddedUsers::default()
            }),
            Err(_) => AddedUsers::default(),
        };
        let mut added = valid(&saved.users, &file.display().to_string(), &mut warnings);
        added.retain(|user| !manifest.contains(user));
        (
            Self {
                manifest,
                added,
                file,
                allow_new,
            },
            warnings,
        )
    }

    pub fn contains(&self, user: &UserName) -> bool {
        self.manifest.contains(user) || self.added.contains(user)
    }

    /// Every user, the manifest's first.
    pub fn names(&self) -> Vec<String> {
        self.manifest
            .iter()
            .chain(&self.added)
            .map(ToString::to_string)
            .collect()
    }

    pub fn allows_new(&self) -> bool {
        self.allow_new
    }

    /// Adds a user and saves this pod's list.
    pub fn add(&mut self, user: UserName) -> Result<(), AddError> {
        if !self.allow_new {
            return Err(AddError::Off);
        }
        if self.contains(&user) {
            return Err(AddError::Exists(user));
        }
        let mut added = self.added.clone();
        added.push(user);
        save(&self.file, &added).map_err(|source| AddError::Save {
            path: self.file.clone(),
            source,
        })?;
        self.added = added;
        Ok(())
    }
}

fn valid(names: &[String], from: &str, warnings: &mut Vec<String>) -> Vec<UserName> {
    names
        .iter()
        .filter_map(|name| {
            UserName::parse(name)
                .map_err(|bad| warnings.push(format!("{from}: {bad}; skipped")))
                .ok()
        })
        .collect()
}

/// Writes the list beside its place, then renames it there, so a crash never leaves half a file.
fn save(file: &Path, users: &[UserName]) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let list = AddedUsers {
        users: users.iter().map(ToString::to_string).collect(),
    };
    let mut text = serde_json::to_string_pretty(&list).map_err(io::Error::other)?;
    text.push('\n');
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn added_users_survive_a_restart_in_this_pods_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users/pod-1.json");
        let (mut roster, warnings) = Roster::load(&["alice".to_owned()], true, file.clone());
        assert!(warnings.is_empty());
        roster.add(user("carol")).unwrap();
        assert!(matches!(
            roster.add(user("alice")),
            Err(AddError::Exists(_))
        ));
        let (again, _) = Roster::load(&["alice".to_owned()], true, file);
        assert_eq!(again.names(), ["alice", "carol"]);
    }

    #[test]
    fn adding_needs_the_manifests_permission() {
        let dir = tempfile::tempdir().unwrap();
        let (mut roster, _) = Roster::load(&[], false, dir.path().join("pod.json"));
        assert!(matches!(roster.add(user("carol")), Err(AddError::Off)));
        assert!(!dir.path().join("pod.json").exists());
    }

    #[test]
    fn bad_names_in_the_file_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pod.json");
        std::fs::write(&file, r#"{"users": ["dave", "../x"]}"#).unwrap();
        let (roster, warnings) = Roster::load(&[], true, file);
        assert_eq!(roster.names(), ["dave"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
