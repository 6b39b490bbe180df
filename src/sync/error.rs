//! Why the sync service cannot start, in plain words, each with what to do. None of these
//! messages carries a secret: they name options and variables, never their values.

use super::shared_drive::SharedDrive;

/// A problem with the remote's configuration or with rclone itself, found before any pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("the rclone option `{option}` is given twice: by {first} and by {second}")]
    OptionTwice {
        option: String,
        first: String,
        second: String,
    },
    #[error("{var} sets the backend type, which comes from the manifest")]
    TypeFromEnv { var: String },
    #[error("the service account key {path} cannot be read: {reason}")]
    ServiceAccountFile { path: String, reason: String },
    #[error("the Google Drive remote has no credentials")]
    DriveWithoutCredentials,
    #[error(
        "root_folder_id (from {source_name}) does not make a Shared Drive the target, and a service account has no storage quota of its own: uploads would fail with storageQuotaExceeded (L21)"
    )]
    RootFolderId { source_name: String },
    #[error("the service account sees {} Shared Drives and sync.team_drive does not say which one to use: {}", drives.len(), list(drives))]
    SeveralSharedDrives { drives: Vec<SharedDrive> },
    #[error(
        "the service account sees no Shared Drive, and service accounts have no storage quota of their own: every upload would fail with storageQuotaExceeded (L21)"
    )]
    NoSharedDrive,
    #[error("`rclone backend drives` could not list the Shared Drives: {detail}")]
    DrivesListing { detail: String },
    #[error("cannot run rclone ({program}): {reason}")]
    Rclone { program: String, reason: String },
}

impl SetupError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::OptionTwice { .. } => "give each option once: remove one of the two".to_owned(),
            Self::TypeFromEnv { .. } => {
                "remove the variable; the backend is sync.backend in the stack manifest".to_owned()
            }
            Self::ServiceAccountFile { .. } => "mount the service account's JSON key at that path, or give its content as RUNPOD_SECRET_RCLONE_SERVICE_ACCOUNT_CREDENTIALS".to_owned(),
            Self::DriveWithoutCredentials => "give the pod a service account key: its JSON as the RunPod secret RCLONE_SERVICE_ACCOUNT_CREDENTIALS (RUNPOD_SECRET_RCLONE_SERVICE_ACCOUNT_CREDENTIALS) or a path as PODSTACK_SYNC_SERVICE_ACCOUNT_FILE; or an OAuth token as RUNPOD_SECRET_RCLONE_TOKEN".to_owned(),
            Self::RootFolderId { .. } => "remove root_folder_id and set sync.team_drive to the Shared Drive's ID, or leave team_drive empty and podstack finds it with `rclone backend drives`".to_owned(),
            Self::SeveralSharedDrives { .. } => {
                "set sync.team_drive in the stack manifest to the ID of the Shared Drive to sync into".to_owned()
            }
            Self::NoSharedDrive => "create a Shared Drive in Google Drive, add the service account's e-mail address to it as a Content manager, then restart the pod (or set sync.team_drive to its ID)".to_owned(),
            Self::DrivesListing { .. } => "check the service account key and that the Google Drive API is enabled for its project; the sync log (GET /api/logs?service=sync) has rclone's lines; podstack tries again in a minute".to_owned(),
            Self::Rclone { .. } => "install rclone in the image ([system] apt = [\"rclone\"]) or point PODSTACK_RCLONE at it".to_owned(),
        }
    }

    /// Whether trying again later can help (the network, Google's API), as opposed to a
    /// configuration that fails the same way every time.
    pub fn transient(&self) -> bool {
        matches!(self, Self::DrivesListing { .. })
    }
}

fn list(drives: &[SharedDrive]) -> String {
    drives
        .iter()
        .map(|drive| format!("`{}` ({})", drive.name, drive.id))
        .collect::<Vec<_>>()
        .join(", ")
}
