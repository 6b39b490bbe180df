//! The rclone remote: the manifest's `[sync]` section (backend, team_drive, options that are
//! not secret) plus secrets from the pod's environment (`RUNPOD_SECRET_RCLONE_<OPTION>`, as
//! RunPod hands its secrets over, or `PODSTACK_SYNC_<OPTION>`), handed to rclone as
//! `RCLONE_CONFIG_<NAME>_<OPTION>` variables. Nothing is written to a file, and a value from
//! the environment is never shown: the status lists where each option came from, not what it is.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::error::SetupError;
use crate::manifest::Sync;
use crate::service::secrets::SYNC_SECRET_PREFIXES;

/// Whether an rclone option holds a secret (passwords, tokens, keys, credentials), which the
/// manifest must not carry.
pub fn is_secret_option(name: &str) -> bool {
    ["pass", "secret", "token", "credential"]
        .iter()
        .any(|word| name.contains(word))
        || name.split('_').any(|part| part == "key" || part == "sas")
}

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "name")]
pub enum OptionSource {
    Manifest,
    /// Found with `rclone backend drives`.
    Discovered,
    /// An environment variable (its name, never its value).
    Env(String),
}

impl fmt::Display for OptionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest => f.write_str("the manifest"),
            Self::Discovered => f.write_str("`rclone backend drives`"),
            Self::Env(var) => f.write_str(var),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct OptionValue {
    value: String,
    source: OptionSource,
}

/// An option as the status shows it: the value only when the manifest gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionSummary {
    pub option: String,
    #[serde(flatten)]
    pub source: OptionSource,
    pub value: Option<String>,
}

/// The remote rclone syncs to.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The remote's name, e.g. `gdrive`.
    pub name: String,
    /// The backend type, e.g. `drive`.
    pub backend: String,
    options: BTreeMap<String, OptionValue>,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("options", &self.summary())
            .finish()
    }
}

impl RemoteConfig {
    /// The remote from the manifest and the environment `env` (every variable of the pod).
    pub fn new(
        sync: &Sync,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SetupError> {
        let mut options = BTreeMap::new();
        for (option, value) in &sync.options {
            options.insert(
                option.clone(),
                OptionValue {
                    value: value.clone(),
                    source: OptionSource::Manifest,
                },
            );
        }
        if !sync.team_drive.is_empty() {
            options.insert(
                "team_drive".to_owned(),
                OptionValue {
                    value: sync.team_drive.clone(),
                    source: OptionSource::Manifest,
                },
            );
        }
        let mut from_env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(var, value)| {
                !value.is_empty() && SYNC_SECRET_PREFIXES.iter().any(|p| var.starts_with(p))
            })
            .collect();
        // Variables in a fixed order, so "given twice" always names the same pair.
        from_env.sort_by_key(|(var, _)| {
            (
                SYNC_SECRET_PREFIXES.iter().position(|p| var.starts_with(p)),
                var.clone(),
            )
        });
        for (var, value) in from_env {
            let Some(option) = SYNC_SECRET_PREFIXES
                .iter()
                .find_map(|prefix| var.strip_prefix(prefix))
                .map(str::to_ascii_lowercase)
            else {
                continue;
            };
            if option == "type" {
                return Err(SetupError::TypeFromEnv { var });
            }
            if let Some(first) = options.get(&option) {
                return Err(SetupError::OptionTwice {
                    option,
                    first: first.source.to_string(),
                    second: var,
                });
            }
            options.insert(
                option,
                OptionValue {
                    value,
                    source: OptionSource::Env(var),
                },
            );
        }
        Ok(Self {
            name: sync.remote.clone(),
            backend: sync.backend.clone(),
            options,
        })
    }

    /// An option's value, if it is set.
    pub fn get(&self, option: &str) -> Option<&str> {
        self.options.get(option).map(|value| value.value.as_str())
    }

    /// Where an option came from, if it is set.
    pub fn source(&self, option: &str) -> Option<&OptionSource> {
        self.options.get(option).map(|value| &value.source)
    }

    /// Sets the Shared Drive found by `rclone backend drives`.
    pub fn set_discovered_team_drive(&mut self, id: &str) {
        self.options.insert(
            "team_drive".to_owned(),
            OptionValue {
                value: id.to_owned(),
                source: OptionSource::Discovered,
            },
        );
    }

    /// `<name>:<path>`, how rclone names a path on the remote.
    pub fn path(&self, path: &str) -> String {
        format!("{}:{path}", self.name)
    }

    /// The variables that configure the remote for an rclone process.
    pub fn env(&self) -> Vec<(String, String)> {
        let prefix = format!("RCLONE_CONFIG_{}_", self.name.to_ascii_uppercase());
        std::iter::once((format!("{prefix}TYPE"), self.backend.clone()))
            .chain(self.options.iter().map(|(option, value)| {
                (
                    format!("{prefix}{}", option.to_ascii_uppercase()),
                    value.value.clone(),
                )
            }))
            .collect()
    }

    /// Values that must never be shown: every value that came from the environment.
    pub fn secrets(&self) -> Vec<String> {
        self.options
            .values()
            .filter(|value| matches!(value.source, OptionSource::Env(_)))
            .map(|value| value.value.clone())
            .collect()
    }

    /// Every option, with values only where the manifest or discovery gave them.
    pub fn summary(&self) -> Vec<OptionSummary> {
        self.options
            .iter()
            .map(|(option, value)| OptionSummary {
                option: option.clone(),
                source: value.source.clone(),
                value: match value.source {
                    OptionSource::Env(_) => None,
                    OptionSource::Manifest | OptionSource::Discovered => Some(value.value.clone()),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sync(backend: &str, team_drive: &str) -> Sync {
        let text = format!(
            r#"remote = "gdrive"
backend = "{backend}"
root = "ComfyUI-Output"
team_drive = "{team_drive}"
folders = [{{ path = "output", mode = "mirror" }}]
options = {{ scope = "drive" }}
"#
        );
        toml::from_str(&text).expect("a [sync] section")
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn secrets_come_from_runpod_secrets_and_podstack_variables() {
        let remote = RemoteConfig::new(
            &sync("drive", "0AbCdEf"),
            env(&[
                (
                    "RUNPOD_SECRET_RCLONE_SERVICE_ACCOUNT_CREDENTIALS",
                    "{\"type\": \"service_account\"}",
                ),
                ("PODSTACK_SYNC_CHUNK_SIZE", "64M"),
                ("RUNPOD_SECRET_OTHER", "not for rclone"),
                ("RUNPOD_SECRET_RCLONE_EMPTY", ""),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        let mut vars = remote.env();
        vars.sort();
        assert_eq!(
            vars,
            env(&[
                ("RCLONE_CONFIG_GDRIVE_CHUNK_SIZE", "64M"),
                ("RCLONE_CONFIG_GDRIVE_SCOPE", "drive"),
                (
                    "RCLONE_CONFIG_GDRIVE_SERVICE_ACCOUNT_CREDENTIALS",
                    "{\"type\": \"service_account\"}"
                ),
                ("RCLONE_CONFIG_GDRIVE_TEAM_DRIVE", "0AbCdEf"),
                ("RCLONE_CONFIG_GDRIVE_TYPE", "drive"),
            ])
        );
        assert_eq!(remote.secrets(), ["64M", "{\"type\": \"service_account\"}"]);
    }

    #[test]
    fn the_summary_and_debug_never_show_a_value_from_the_environment() {
        let remote = RemoteConfig::new(
            &sync("webdav", ""),
            env(&[("RUNPOD_SECRET_RCLONE_PASS", "obscured-secret-value")]),
        )
        .unwrap();
        let shown = format!(
            "{remote:?} {}",
            serde_json::to_string(&remote.summary()).unwrap()
        );
        assert!(!shown.contains("obscured-secret-value"), "{shown}");
        assert!(shown.contains("RUNPOD_SECRET_RCLONE_PASS"), "{shown}");
        assert!(shown.contains("\"value\":\"drive\""), "{shown}");
    }

    #[test]
    fn an_option_given_twice_or_a_type_from_the_environment_is_refused() {
        let twice = RemoteConfig::new(
            &sync("drive", ""),
            env(&[
                ("RUNPOD_SECRET_RCLONE_TOKEN", "a"),
                ("PODSTACK_SYNC_TOKEN", "b"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            twice.to_string(),
            "the rclone option `token` is given twice: by RUNPOD_SECRET_RCLONE_TOKEN and by PODSTACK_SYNC_TOKEN"
        );
        let manifest_and_env = RemoteConfig::new(
            &sync("drive", ""),
            env(&[("PODSTACK_SYNC_SCOPE", "drive.file")]),
        )
        .unwrap_err();
        assert!(manifest_and_env.to_string().contains("by the manifest"));
        let typed = RemoteConfig::new(&sync("drive", ""), env(&[("PODSTACK_SYNC_TYPE", "s3")]))
            .unwrap_err();
        assert_eq!(
            typed,
            SetupError::TypeFromEnv {
                var: "PODSTACK_SYNC_TYPE".to_owned()
            }
        );
    }

    #[test]
    fn secret_options_are_recognised_by_name() {
        for secret in [
            "pass",
            "password",
            "client_secret",
            "token",
            "service_account_credentials",
            "key",
            "access_key_id",
            "secret_access_key",
            "sas_url",
            "bearer_token",
        ] {
            assert!(is_secret_option(secret), "{secret}");
        }
        for plain in [
            "url",
            "vendor",
            "user",
            "scope",
            "service_account_file",
            "region",
            "endpoint",
            "remote",
        ] {
            assert!(!is_secret_option(plain), "{plain}");
        }
    }
}
