//! User names: the one rule every folder name, API call and manifest entry goes through.
//!
//! A user name becomes a path segment (`output/<user>`), so it must never carry `/`, `..`,
//! spaces or shell syntax (L16).

use std::fmt;

/// A validated user name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UserName(String);

/// Why a user name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid user name: {why}")]
pub struct BadUserName {
    pub name: String,
    pub why: &'static str,
}

impl UserName {
    /// The rule, as shown to people.
    pub const RULE: &'static str =
        "user names are 1-32 characters: lower-case letters, digits, `_` and `-`, starting with a letter or digit";

    pub fn parse(name: &str) -> Result<Self, BadUserName> {
        let refuse = |why| BadUserName {
            name: echo(name),
            why,
        };
        if name.is_empty() {
            return Err(refuse("it is empty"));
        }
        if name.len() > 32 {
            return Err(refuse("it is longer than 32 characters"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err(refuse("it must start with a lower-case letter or a digit"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(refuse(
                "only lower-case letters, digits, `_` and `-` are allowed",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest part of a refused name echoed back: enough to recognise it, never a wall of text.
const ECHOED_CHARS: usize = 40;

/// `name` as an error message repeats it: its first characters and how many more there were.
fn echo(name: &str) -> String {
    let total = name.chars().count();
    if total <= ECHOED_CHARS {
        return name.to_owned();
    }
    let start: String = name.chars().take(ECHOED_CHARS).collect();
    format!("{start}... ({total} characters)")
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_refused_name_is_echoed_in_short() {
        let err = UserName::parse(&"a".repeat(10_000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`{}... (10000 characters)` is not a valid user name: it is longer than 32 characters",
                "a".repeat(40)
            )
        );
    }

    #[test]
    fn accepts_the_rule() {
        for good in ["alice", "bob-2", "a", "0day", "x_y", &"a".repeat(32)] {
            assert_eq!(UserName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn refuses_paths_spaces_shell_and_size() {
        let cases = [
            ("../x", "it must start with a lower-case letter or a digit"),
            (
                "a b",
                "only lower-case letters, digits, `_` and `-` are allowed",
            ),
            ("$(id)", "it must start with a lower-case letter or a digit"),
            (
                "a$(id)",
                "only lower-case letters, digits, `_` and `-` are allowed",
            ),
            ("", "it is empty"),
            ("Alice", "it must start with a lower-case letter or a digit"),
            (
                "a/b",
                "only lower-case letters, digits, `_` and `-` are allowed",
            ),
        ];
        for (name, why) in cases {
            assert_eq!(UserName::parse(name).unwrap_err().why, why, "{name}");
        }
        let long = "a".repeat(33);
        assert_eq!(
            UserName::parse(&long).unwrap_err().why,
            "it is longer than 32 characters"
        );
    }
}
