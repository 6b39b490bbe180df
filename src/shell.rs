//! The one way a value reaches a shell command (a Dockerfile `RUN` line): as a single word,
//! quoted for POSIX `sh`. Templates never format a value into a command themselves; the render
//! context holds [`ShellWord`]s, which only [`ShellWord::of`] makes, from a validated value.

use std::fmt;

use crate::value::Word;

/// Characters that never mean anything to `sh` inside a word (nor at its start).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c)
}

/// `text` as exactly one `sh` word: unchanged when it is plain, else in single quotes with
/// each `'` written as `'\''`.
pub fn quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(is_plain) {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A validated value, quoted as one shell word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellWord(String);

impl ShellWord {
    pub fn of(value: &impl Word) -> Self {
        Self(quote(value.word()))
    }
}

impl fmt::Display for ShellWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for ShellWord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("ffmpeg"), "ffmpeg");
        assert_eq!(quote("https://x/a.whl"), "https://x/a.whl");
        assert_eq!(quote("a#b"), "'a#b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's $(id)"), r"'it'\''s $(id)'");
        for text in [
            "a b", "$(id)", "`id`", "a\nb", "x'y\"z", "#c", "~", "a;b&&c|d",
        ] {
            assert_eq!(
                shell_words::split(&quote(text)).unwrap(),
                [text],
                "{text:?}"
            );
        }
    }
}
