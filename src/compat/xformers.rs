//! xformers releases and the one torch release each is built for.

use pep440_rs::Version;
use serde::Deserialize;

use super::{public, version_list, Compat};
use crate::problem::Problem;

/// One xformers release and the torch it pins exactly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XformersRelease {
    pub version: Version,
    pub torch: Version,
    /// The Linux x86_64 wheel's `{python}-{abi}-{platform}` tags, where known.
    pub wheel_tags: Option<String>,
    pub source: String,
}

/// A version people write that was never published, and the release to use instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeverPublished {
    pub version: Version,
    pub instead: Version,
    pub source: String,
}

impl XformersRelease {
    /// The Linux x86_64 wheel's file name, where its tags are known, for checking it against
    /// the image with [`crate::wheel::check_wheel`].
    pub fn wheel_filename(&self) -> Option<String> {
        self.wheel_tags
            .as_ref()
            .map(|tags| format!("xformers-{}-{tags}.whl", self.version))
    }
}

impl Compat {
    /// The newest xformers release built for `torch` (a local part such as `+cu129` is ignored).
    pub fn xformers_for(&self, torch: &Version) -> Option<&XformersRelease> {
        let torch = public(torch);
        self.xformers
            .iter()
            .filter(|x| x.torch == torch)
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// Checks an xformers pin against the stack's torch; on success, the release row.
    pub fn check_xformers(
        &self,
        key: &str,
        xformers: &Version,
        torch: &Version,
    ) -> Result<&XformersRelease, Problem> {
        let pinned = public(xformers);
        let torch = public(torch);
        let suggestion = match self.xformers_for(&torch) {
            Some(release) => format!("with torch {torch} use xformers {}", release.version),
            None => format!(
                "no xformers release podstack knows is built for torch {torch}; \
                 drop xformers or use a torch it is built for ({})",
                version_list(
                    self.torch
                        .iter()
                        .map(|r| &r.version)
                        .filter(|version| { self.xformers.iter().any(|x| &x.torch == *version) })
                )
            ),
        };
        if let Some(gap) = self
            .never_published_xformers
            .iter()
            .find(|gap| gap.version == pinned)
        {
            return Err(Problem::error(
                key,
                format!(
                    "xformers {pinned} does not exist: it was never published (the next release is {})",
                    gap.instead
                ),
            )
            .with_hint(suggestion));
        }
        let Some(release) = self.xformers.iter().find(|x| x.version == pinned) else {
            return Err(Problem::error(
                key,
                format!(
                    "xformers {pinned} is not in podstack's compatibility data (known: {})",
                    version_list(self.xformers.iter().map(|x| &x.version))
                ),
            )
            .with_hint(format!(
                "{suggestion}; a newer release can be added to src/compat/data/xformers.toml"
            )));
        };
        if release.torch == torch {
            Ok(release)
        } else {
            Err(Problem::error(
                key,
                format!(
                    "xformers {pinned} requires torch {}, not {torch}",
                    release.torch
                ),
            )
            .with_hint(suggestion))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn xformers_must_pin_the_stacks_torch() {
        let compat = Compat::embedded();
        let cases = [
            ("0.0.32.post2", "2.8.0", true),
            ("0.0.32.post2", "2.8.0+cu129", true),
            ("0.0.32.post1", "2.8.0", true),
            ("0.0.31.post1", "2.7.1", true),
            ("0.0.33.post2", "2.9.1", true),
            ("0.0.33.post1", "2.9.0", true),
            ("0.0.27.post2", "2.4.0", true),
            ("0.0.33", "2.8.0", false),
            ("0.0.31", "2.8.0", false),
            ("0.0.33.post2", "2.9.0", false),
            ("0.0.32", "2.8.0", false),
        ];
        for (xformers, torch, ok) in cases {
            let outcome = compat.check_xformers("python.packages[0]", &v(xformers), &v(torch));
            assert_eq!(
                outcome.is_ok(),
                ok,
                "xformers {xformers} torch {torch}: {outcome:?}"
            );
        }
    }

    #[test]
    fn a_wrong_pin_names_the_torch_it_needs_and_the_newest_that_fits() {
        let problem = Compat::embedded()
            .check_xformers("python.packages[0]", &v("0.0.33"), &v("2.8.0"))
            .unwrap_err();
        assert_eq!(problem.key, "python.packages[0]");
        assert_eq!(
            problem.message,
            "xformers 0.0.33 requires torch 2.9.0, not 2.8.0"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some("with torch 2.8.0 use xformers 0.0.32.post2")
        );
    }

    #[test]
    fn a_version_never_published_is_called_so() {
        let problem = Compat::embedded()
            .check_xformers("python.packages[0]", &v("0.0.32"), &v("2.8.0"))
            .unwrap_err();
        assert_eq!(
            problem.message,
            "xformers 0.0.32 does not exist: it was never published (the next release is 0.0.32.post1)"
        );
        assert_eq!(
            problem.hint.as_deref(),
            Some("with torch 2.8.0 use xformers 0.0.32.post2")
        );
    }

    #[test]
    fn unknown_versions_and_torches_say_what_is_known() {
        let compat = Compat::embedded();
        let problem = compat
            .check_xformers("python.packages[0]", &v("0.0.26"), &v("2.9.1"))
            .unwrap_err();
        assert!(problem.message.starts_with(
            "xformers 0.0.26 is not in podstack's compatibility data (known: 0.0.27.post2, "
        ));
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "with torch 2.9.1 use xformers 0.0.33.post2; a newer release can be added to \
                 src/compat/data/xformers.toml"
            )
        );
        let problem = compat
            .check_xformers("python.packages[0]", &v("0.0.33"), &v("2.3.0"))
            .unwrap_err();
        assert_eq!(
            problem.hint.as_deref(),
            Some(
                "no xformers release podstack knows is built for torch 2.3.0; drop xformers or \
                 use a torch it is built for (2.4.0, 2.5.0, 2.5.1, 2.6.0, 2.7.0, 2.7.1, 2.8.0, \
                 2.9.0, 2.9.1)"
            )
        );
    }

    #[test]
    fn knows_the_field_wheel() {
        let release = Compat::embedded()
            .check_xformers("python.packages[0]", &v("0.0.32.post2"), &v("2.8.0"))
            .unwrap();
        assert_eq!(
            release.wheel_filename().as_deref(),
            Some("xformers-0.0.32.post2-cp39-abi3-manylinux_2_28_x86_64.whl")
        );
    }
}
