//! Reading a manifest file: strict TOML into `Manifest`, every error at `file:line:col`.
//!
//! A serde error carries the byte span toml reports; a problem found later by validation
//! carries a dotted key path (`wheel[0].url`), which `Source::locate` finds in the file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Value};

use super::Manifest;
use crate::problem::{Problem, Severity};

/// The text of a manifest and the name it is shown under (`stacks/smoke.toml`).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub shown_as: String,
    pub text: String,
}

/// A parsed manifest with the source it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: Source,
    pub manifest: Manifest,
}

/// A problem with its place in the file, printed as `file:line:col: error: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub problem: Problem,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.problem.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file, self.line, self.column, self.problem
        )
    }
}

/// Reads and parses a manifest. A file that cannot be read or parsed gives one located error.
pub fn load(path: &Path, shown_as: &str) -> Result<Loaded, Box<Located>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Box::new(Located {
            file: shown_as.to_owned(),
            line: 1,
            column: 1,
            problem: Problem::error("", format!("cannot read the manifest: {err}")).with_hint(
                "check the path; a STACK argument is a name from stacks/ or a path to a .toml file",
            ),
        })
    })?;
    let source = Source {
        path: path.to_owned(),
        shown_as: shown_as.to_owned(),
        text,
    };
    match toml::from_str::<Manifest>(&source.text) {
        Ok(manifest) => Ok(Loaded { source, manifest }),
        Err(err) => {
            let problem = serde_problem(err.message());
            let offset = err.span().map_or(0, |span| span.start);
            Err(Box::new(source.at_offset(offset, problem)))
        }
    }
}

/// Turns a serde/toml message into a problem, adding "did you mean" for unknown keys.
fn serde_problem(message: &str) -> Problem {
    if let Some(field) = missing_field(message) {
        return Problem::error("", format!("missing key `{field}`")).with_hint(
            "add it; `podstack schema` lists every key, stacks/comfyui-cu129.toml explains each",
        );
    }
    let Some((field, expected)) = unknown_field(message) else {
        return Problem::error("", message.trim_end().to_owned());
    };
    let problem = Problem::error("", format!("unknown key `{field}`"));
    let closest = expected
        .iter()
        .map(|candidate| (strsim::jaro_winkler(&field, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let valid = expected
        .iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest {
        Some((_, best)) => {
            problem.with_hint(format!("did you mean `{best}`? valid keys here: {valid}"))
        }
        None => problem.with_hint(format!("valid keys here: {valid}")),
    }
}

/// Reads serde's `unknown field `x`, expected one of `a`, `b`` (its fixed wording for
/// `deny_unknown_fields`) into the field and the expected keys.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

/// Reads serde's `missing field `x`` into the field.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

impl Source {
    /// Places a problem: at its key when the key is in the file, else at the nearest parent
    /// that is, else at the top.
    pub fn locate(&self, problem: Problem) -> Located {
        let offset = span_of_key(&self.text, &problem.key).map_or(0, |span| span.start);
        self.at_offset(offset, problem)
    }

    fn at_offset(&self, offset: usize, problem: Problem) -> Located {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Located {
            file: self.shown_as.clone(),
            line,
            column,
            problem,
        }
    }
}

/// One step of a key path: a table key, then an optional array index.
fn steps(key: &str) -> Vec<(&str, Option<usize>)> {
    key.split('.')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('[') {
            Some((name, index)) => (name, index.trim_end_matches(']').parse().ok()),
            None => (part, None),
        })
        .collect()
}

/// A place in the TOML tree while following a key path.
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn span(&self) -> Option<Range<usize>> {
        match self {
            Node::Table(table) => table.span(),
            Node::Item(item) => item.span(),
            Node::Value(value) => value.span(),
        }
    }

    fn child(&self, name: &str) -> Option<(Option<Range<usize>>, Node<'a>)> {
        let (key, item) = match *self {
            Node::Table(table) | Node::Item(Item::Table(table)) => table.get_key_value(name)?,
            Node::Item(Item::Value(Value::InlineTable(table)))
            | Node::Value(Value::InlineTable(table)) => table.get_key_value(name)?,
            _ => return None,
        };
        Some((key.span(), Node::Item(item)))
    }

    fn index(&self, index: usize) -> Option<Node<'a>> {
        match *self {
            Node::Item(Item::ArrayOfTables(tables)) => tables.get(index).map(Node::Table),
            Node::Item(Item::Value(Value::Array(array))) | Node::Value(Value::Array(array)) => {
                array.get(index).map(Node::Value)
            }
            _ => None,
        }
    }
}

/// The byte span of the value at `key` (or of the deepest part of it found in the file).
fn span_of_key(text: &str, key: &str) -> Option<Range<usize>> {
    let document = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(document.as_table());
    let mut best = None;
    for (name, index) in steps(key) {
        let Some((key_span, child)) = node.child(name) else {
            break;
        };
        best = child.span().or(key_span).or(best);
        node = child;
        if let Some(index) = index {
            let Some(element) = node.index(index) else {
                break;
            };
            best = element.span().or(best);
            node = element;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_serdes_unknown_field_message() {
        let (field, expected) =
            unknown_field("unknown field `nmae`, expected one of `name`, `version`, `description`")
                .unwrap();
        assert_eq!(field, "nmae");
        assert_eq!(expected, ["name", "version", "description"]);
        let (_, single) = unknown_field("unknown field `x`, expected `apt`").unwrap();
        assert_eq!(single, ["apt"]);
        assert!(unknown_field("missing field `name`").is_none());
    }

    #[test]
    fn suggests_the_closest_key_only_when_close() {
        let close = serde_problem(
            "unknown field `comfy_port`, expected one of `comfyui_port`, `panel_port`",
        );
        assert_eq!(
            close.hint.as_deref(),
            Some("did you mean `comfyui_port`? valid keys here: `comfyui_port`, `panel_port`")
        );
        let far =
            serde_problem("unknown field `zzz`, expected one of `comfyui_port`, `panel_port`");
        assert_eq!(
            far.hint.as_deref(),
            Some("valid keys here: `comfyui_port`, `panel_port`")
        );
    }

    #[test]
    fn locates_keys_values_and_array_elements() {
        let text = "[stack]\nname = \"x\"\n\n[runtime]\nusers = [\"alice\", \"Bob\"]\n\n[[wheel]]\nurl = \"a\"\n\n[[wheel]]\nurl = \"b\"\n\n[comfyui]\ncustom_nodes = [{ repo = \"r\", commit = \"c\" }]\n";
        let at = |key: &str| {
            let span = span_of_key(text, key).unwrap();
            let before = &text[..span.start];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, col)
        };
        assert_eq!(at("stack.name"), (2, 8));
        assert_eq!(at("runtime.users[1]"), (5, 19));
        assert_eq!(at("wheel[1].url"), (11, 7));
        assert_eq!(at("comfyui.custom_nodes[0].commit"), (14, 40));
        assert_eq!(
            at("runtime.nope"),
            (4, 1),
            "a missing key points at its table"
        );
    }
}
