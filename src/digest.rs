//! The manifest digest: one sha256 over everything that defines an image.
//!
//! Canonical encoding (version 1): the bytes `podstack-digest-v1\n`, then for each entry in
//! byte order of its name: the name, `\n`, the content length in decimal, `\n`, the content,
//! `\n`. Names are `/`-separated paths; entries come from the resolved manifest, every
//! rendered file (with the digest itself replaced by a placeholder), the control panel
//! assets, any local source tree the image copies, and podstack's version. The length
//! prefix makes the encoding unambiguous: no two different entry sets encode alike.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

/// What the digest is computed over, by entry name.
#[derive(Debug, Default, Clone)]
pub struct DigestInputs {
    entries: BTreeMap<String, Vec<u8>>,
}

/// A manifest digest, `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDigest {
    hex: String,
}

impl DigestInputs {
    /// Adds an entry; a second entry of the same name replaces the first.
    pub fn add(&mut self, name: impl Into<String>, content: impl Into<Vec<u8>>) {
        self.entries.insert(name.into(), content.into());
    }

    pub fn digest(&self) -> StackDigest {
        let mut hasher = Sha256::new();
        hasher.update(b"podstack-digest-v1\n");
        for (name, content) in &self.entries {
            hasher.update(name.as_bytes());
            hasher.update(format!("\n{}\n", content.len()).as_bytes());
            hasher.update(content);
            hasher.update(b"\n");
        }
        StackDigest {
            hex: hex::encode(hasher.finalize()),
        }
    }
}

impl StackDigest {
    /// The first 12 hex digits, as used in image tags.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for StackDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(entries: &[(&str, &str)]) -> StackDigest {
        let mut inputs = DigestInputs::default();
        for (name, content) in entries {
            inputs.add(*name, content.as_bytes());
        }
        inputs.digest()
    }

    #[test]
    fn does_not_depend_on_insertion_order() {
        assert_eq!(
            digest_of(&[("a", "1"), ("b", "2")]),
            digest_of(&[("b", "2"), ("a", "1")])
        );
    }

    #[test]
    fn changes_with_any_byte_and_with_entry_boundaries() {
        let base = digest_of(&[("a", "12"), ("b", "3")]);
        assert_ne!(base, digest_of(&[("a", "13"), ("b", "3")]));
        assert_ne!(
            base,
            digest_of(&[("a", "1"), ("b", "23")]),
            "moving a byte across entries"
        );
        assert_ne!(
            base,
            digest_of(&[("a", "12"), ("c", "3")]),
            "renaming an entry"
        );
        assert_ne!(base, digest_of(&[("a", "12")]), "dropping an entry");
    }

    #[test]
    fn prints_as_sha256_with_a_short_form() {
        let digest = digest_of(&[]);
        let text = digest.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
        assert_eq!(digest.short(), &text[7..19]);
    }
}
