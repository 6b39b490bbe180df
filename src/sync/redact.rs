//! Secrets out of every line: rclone's output goes through a [`Redactor`] before it reaches the
//! sync log, so even a value that rclone echoes (an error quoting its configuration) shows up
//! as `[secret]`. Short values are left alone: they would blank ordinary words and numbers,
//! and a secret is never that short.

use std::borrow::Cow;
use std::fmt;

/// Values shorter than this are not searched for.
const SHORTEST: usize = 6;

/// Replaces known secret values in text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|secret| secret.len() >= SHORTEST)
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), "[secret]"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_become_a_marker_and_short_values_stay() {
        let redactor = Redactor::new(["hunter2-long".to_owned(), "abc".to_owned()]);
        assert_eq!(
            redactor.redact("auth hunter2-long failed for abc"),
            "auth [secret] failed for abc"
        );
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
        assert!(!format!("{redactor:?}").contains("hunter2"));
    }
}
