//! Google Drive rules (L21): a service account has no storage quota of its own, so it can only
//! upload into a Shared Drive, named by `team_drive` (never by `root_folder_id`). An empty
//! `team_drive` is filled from `rclone backend drives <remote>:` when exactly one Shared Drive
//! is visible; none or several is an error that says what to do. Other backends pass through.

use super::error::SetupError;
use super::remote::RemoteConfig;
use super::shared_drive::SharedDrive;

/// What the remote needs before rclone can sync into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrivePlan {
    /// Not Google Drive: the options go to rclone as they are.
    PassThrough,
    /// A Shared Drive is configured (`team_drive`).
    Configured(String),
    /// A service account without `team_drive`: ask `rclone backend drives`.
    Discover,
    /// An OAuth token without `team_drive`: the user's own My Drive, which has a quota.
    MyDrive,
}

/// The plan for `remote`, or why it cannot work.
pub fn plan(remote: &RemoteConfig) -> Result<DrivePlan, SetupError> {
    if remote.backend != "drive" {
        return Ok(DrivePlan::PassThrough);
    }
    if let Some(source) = remote.source("root_folder_id") {
        return Err(SetupError::RootFolderId {
            source_name: source.to_string(),
        });
    }
    let service_account = remote.get("service_account_file").is_some()
        || remote.get("service_account_credentials").is_some();
    if !service_account && remote.get("token").is_none() {
        return Err(SetupError::DriveWithoutCredentials);
    }
    if let Some(path) = remote.get("service_account_file") {
        if let Err(err) = std::fs::File::open(path) {
            return Err(SetupError::ServiceAccountFile {
                path: path.to_owned(),
                reason: err.to_string(),
            });
        }
    }
    Ok(match remote.get("team_drive") {
        Some(id) => DrivePlan::Configured(id.to_owned()),
        None if service_account => DrivePlan::Discover,
        None => DrivePlan::MyDrive,
    })
}

/// The `rclone backend drives` arguments for `remote`.
pub fn listing_args(remote: &RemoteConfig) -> Vec<String> {
    vec!["backend".to_owned(), "drives".to_owned(), remote.path("")]
}

/// The Shared Drives in the JSON that `rclone backend drives` prints: a list, or `null` when
/// there is none (rclone marshals an empty Go slice that was never appended to).
pub fn parse_listing(stdout: &str) -> Result<Vec<SharedDrive>, SetupError> {
    serde_json::from_str::<Option<Vec<SharedDrive>>>(stdout)
        .map(Option::unwrap_or_default)
        .map_err(|err| SetupError::DrivesListing {
            detail: format!("its output is not the expected JSON list ({err})"),
        })
}

/// The one Shared Drive to use, or why there is none.
pub fn choose(mut drives: Vec<SharedDrive>) -> Result<SharedDrive, SetupError> {
    match drives.len() {
        0 => Err(SetupError::NoSharedDrive),
        1 => Ok(drives.remove(0)),
        _ => Err(SetupError::SeveralSharedDrives { drives }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Sync;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/rclone/drives-{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn remote(backend: &str, team_drive: &str, env: &[(&str, &str)]) -> RemoteConfig {
        let sync: Sync = toml::from_str(&format!(
            "remote = \"gdrive\"\nbackend = \"{backend}\"\nroot = \"out\"\nteam_drive = \"{team_drive}\"\nfolders = [{{ path = \"output\", mode = \"mirror\" }}]\n"
        ))
        .unwrap();
        RemoteConfig::new(
            &sync,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    }

    const SERVICE_ACCOUNT: (&str, &str) = (
        "RUNPOD_SECRET_RCLONE_SERVICE_ACCOUNT_CREDENTIALS",
        "{\"type\": \"service_account\"}",
    );

    #[test]
    fn a_configured_team_drive_is_used_without_asking() {
        assert_eq!(
            plan(&remote("drive", "0AFixed", &[SERVICE_ACCOUNT])),
            Ok(DrivePlan::Configured("0AFixed".to_owned()))
        );
    }

    #[test]
    fn a_service_account_without_team_drive_discovers_it() {
        let remote = remote("drive", "", &[SERVICE_ACCOUNT]);
        assert_eq!(plan(&remote), Ok(DrivePlan::Discover));
        assert_eq!(listing_args(&remote), ["backend", "drives", "gdrive:"]);
    }

    #[test]
    fn one_recorded_shared_drive_is_chosen() {
        let drives = parse_listing(&fixture("one")).unwrap();
        assert_eq!(
            choose(drives),
            Ok(SharedDrive {
                id: "0AHx3Ak9pZtRkUk9PVA".to_owned(),
                name: "Studio Outputs".to_owned()
            })
        );
    }

    #[test]
    fn several_recorded_shared_drives_are_listed_by_name_and_id() {
        let err = choose(parse_listing(&fixture("several")).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the service account sees 2 Shared Drives and sync.team_drive does not say which one to use: `Studio Outputs` (0AHx3Ak9pZtRkUk9PVA), `Archive 2025` (0AJq7Lm2Vb1sWUk9PVA)"
        );
        assert!(err.hint().contains("sync.team_drive"));
    }

    #[test]
    fn no_recorded_shared_drive_explains_the_missing_quota() {
        let err = choose(parse_listing(&fixture("none")).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("service accounts have no storage quota of their own"),
            "{err}"
        );
        assert!(
            err.hint().contains("create a Shared Drive"),
            "{}",
            err.hint()
        );
    }

    #[test]
    fn root_folder_id_is_refused_and_names_team_drive() {
        let err = plan(&remote(
            "drive",
            "",
            &[SERVICE_ACCOUNT, ("PODSTACK_SYNC_ROOT_FOLDER_ID", "0AWrong")],
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("PODSTACK_SYNC_ROOT_FOLDER_ID"),
            "{err}"
        );
        assert!(err.hint().contains("sync.team_drive"), "{}", err.hint());
    }

    #[test]
    fn drive_needs_credentials_and_a_token_means_my_drive() {
        assert_eq!(
            plan(&remote("drive", "", &[])),
            Err(SetupError::DriveWithoutCredentials)
        );
        assert_eq!(
            plan(&remote(
                "drive",
                "",
                &[("RUNPOD_SECRET_RCLONE_TOKEN", "{}")]
            )),
            Ok(DrivePlan::MyDrive)
        );
        let missing_file = plan(&remote(
            "drive",
            "",
            &[("PODSTACK_SYNC_SERVICE_ACCOUNT_FILE", "/nonexistent/sa.json")],
        ))
        .unwrap_err();
        assert!(
            missing_file.to_string().contains("/nonexistent/sa.json"),
            "{missing_file}"
        );
    }

    #[test]
    fn other_backends_pass_through() {
        assert_eq!(
            plan(&remote("s3", "", &[("PODSTACK_SYNC_ROOT_FOLDER_ID", "x")])),
            Ok(DrivePlan::PassThrough)
        );
    }

    #[test]
    fn an_empty_list_is_no_shared_drive_too() {
        assert_eq!(parse_listing("[]\n"), Ok(Vec::new()));
    }

    #[test]
    fn output_that_is_not_json_is_a_listing_problem() {
        assert!(matches!(
            parse_listing("Failed to create file system"),
            Err(SetupError::DrivesListing { .. })
        ));
    }
}
