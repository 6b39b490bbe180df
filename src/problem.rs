//! A problem found in a stack: what is wrong, where, and what to do about it.
//!
//! Parsing and validation collect every problem instead of stopping at the first, so one run
//! of `podstack check` shows the user everything to fix.

use std::fmt;

/// How bad a problem is: errors stop a build, warnings are listed and the build goes on
/// (unless `--strict` turns unpinned inputs into errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about a manifest. `key` is the dotted TOML path it is about (`torch.cuda`,
/// `wheel[0].url`); the manifest module turns it into `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(key, message)
        }
    }

    /// An input that is not pinned: a warning, or an error under `--strict`.
    pub fn unpinned(key: impl Into<String>, message: impl Into<String>, strict: bool) -> Self {
        if strict {
            Self::error(key, message)
        } else {
            Self::warning(key, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Control characters as escapes (`\n`), so a value quoted in a message cannot break the
/// `file:line:col: error:` line or forge another.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", one_line(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", one_line(hint))?;
        }
        Ok(())
    }
}
