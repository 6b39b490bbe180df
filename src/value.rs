//! The values a manifest or a lock file names that end up in a Dockerfile, a shell command or
//! a pip file, each parsed into its own type in one place: Debian package names, git URLs,
//! refs and commits, OCI image references, download URLs, PEP 503 names, PEP 440 versions,
//! sha256 hashes and folder names. Validation (`manifest::validate`, `Lockfile::read`) and
//! rendering both go through these parsers, so what `check` accepts is exactly what renders,
//! and a value that reaches a `RUN` line is data, quoted by [`crate::shell::quote`].

use std::fmt;

use pep440_rs::Version;
use url::{Host, Url};

/// Why a value is not of its kind: the message names the value, the hint says what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub hint: String,
}

impl Invalid {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The problem at a manifest or lock key.
    pub fn at(self, key: impl Into<String>) -> crate::problem::Problem {
        crate::problem::Problem::error(key, self.message).with_hint(self.hint)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  hint: {}", self.message, self.hint)
    }
}

/// A value whose text may be passed to a command as one shell word (after quoting).
pub trait Word {
    fn word(&self) -> &str;
}

macro_rules! text_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Word for $name {
            fn word(&self) -> &str {
                &self.0
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// A Debian/Ubuntu binary package name (Debian policy 5.6.7): lower-case letters, digits,
/// `+`, `-` and `.`, at least two characters, starting with a letter or digit. No version,
/// release or option: `-o...` or `ffmpeg; id` are not names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AptPackage(String);
text_value!(AptPackage);

impl AptPackage {
    pub const RULE: &'static str = "a Debian package name is 2 or more of lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit (Debian policy 5.6.7); no versions, options or spaces";

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let valid = text.len() >= 2
            && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a Debian package name"),
                Self::RULE,
            ))
        }
    }
}

/// A 40-hex git commit, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitHash(String);
text_value!(CommitHash);

impl CommitHash {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_lower_hex(text, 40) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a full commit hash"),
                "write all 40 hex digits, or name the branch or tag as `ref` and let `podstack lock` pin it (L5)",
            ))
        }
    }
}

/// A branch or tag name as `git check-ref-format` allows it, and never an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef(String);
text_value!(GitRef);

impl GitRef {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        // git allows more (check-ref-format); branch and tag names people pin are these.
        let bad_char = |c: char| !(c.is_ascii_alphanumeric() || "._/+-".contains(c));
        let valid = !text.is_empty()
            && !text.starts_with('-')
            && !text.starts_with('/')
            && !text.ends_with('/')
            && !text.ends_with('.')
            && !text.ends_with(".lock")
            && !text.contains("..")
            && !text.contains("//")
            && !text.contains("@{")
            && text != "@"
            && !text.split('/').any(|part| part.starts_with('.'))
            && !text.chars().any(bad_char);
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a git branch or tag name"),
                "name a branch or tag of letters, digits, `.`, `_`, `/`, `+` and `-` that `git check-ref-format` allows, not starting with `-`, e.g. `master` or `v0.3.64`",
            ))
        }
    }
}

/// An https git repository URL: a DNS host, no credentials, no query or fragment, written as
/// the URL standard writes it (so it is one word and means what it shows). Plain http only to
/// this machine (`localhost` or a loopback address, as for download URLs), where nothing sits in
/// between: a repository served from the building machine, as the real-image test does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl(Url);

impl GitUrl {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let fail = |why: &str| {
            Invalid::new(
                format!("`{text}` is not an https git URL{why}"),
                "write e.g. `https://github.com/Comfy-Org/ComfyUI`",
            )
        };
        let url = Url::parse(text).map_err(|err| fail(&format!(": {err}")))?;
        match (url.scheme(), url.host()) {
            ("https", Some(Host::Domain(domain))) if is_dns_name(domain) => {}
            ("https", _) => return Err(fail(": its host is not a DNS name")),
            ("http", Some(Host::Domain("localhost"))) => {}
            ("http", Some(Host::Ipv4(ip))) if ip.is_loopback() => {}
            ("http", Some(Host::Ipv6(ip))) if ip.is_loopback() => {}
            ("http", _) => return Err(fail(": plain http is only for localhost")),
            _ => return Err(fail("")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(fail(": it carries a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(fail(": it has a `?query` or `#fragment`"));
        }
        let plain_path = url
            .path()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~-/".contains(c));
        if !plain_path {
            return Err(fail(
                ": its path has characters other than letters, digits, `.`, `_`, `~`, `-` and `/`",
            ));
        }
        if url.as_str() != text {
            return Err(fail(&format!(": the URL standard writes it `{url}`")));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Word for GitUrl {
    fn word(&self) -> &str {
        self.0.as_str()
    }
}

/// What a clone checks out: a pinned commit, or (unlocked) a branch or tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRevision {
    Commit(CommitHash),
    Ref(GitRef),
}

impl Word for GitRevision {
    fn word(&self) -> &str {
        match self {
            Self::Commit(commit) => commit.word(),
            Self::Ref(git_ref) => git_ref.word(),
        }
    }
}

/// A URL a file is downloaded from: https, or plain http to this machine only (a test
/// server, a local mirror); no credentials (a token comes from the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadUrl(Url);

impl DownloadUrl {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let not_https = || {
            Invalid::new(
                format!("`{text}` is not an https URL"),
                "download over https (plain http only from this machine: 127.0.0.1, localhost)",
            )
        };
        let url = Url::parse(text).map_err(|_| not_https())?;
        let host_ok = match url.host() {
            Some(Host::Domain(domain)) => is_dns_name(domain),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => true,
            None => false,
        };
        let loopback = match url.host() {
            Some(Host::Domain(domain)) => domain == "localhost",
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok || !host_ok {
            return Err(not_https());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                format!("`{text}` carries a user name or password"),
                "put no credentials in a URL; a model's token comes from `auth_env`",
            ));
        }
        if url.as_str() != text {
            return Err(Invalid::new(
                format!("`{text}` is not written as the URL standard writes it"),
                format!("write `{url}`"),
            ));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl Word for DownloadUrl {
    fn word(&self) -> &str {
        self.0.as_str()
    }
}

/// A wheel by URL with the sha256 pip checks it against, as pip reads it: `URL#sha256=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelLink(String);
text_value!(WheelLink);

impl WheelLink {
    pub fn new(url: &DownloadUrl, sha256: Option<&Sha256>) -> Self {
        match sha256 {
            Some(hash) => Self(format!("{}#sha256={hash}", url.as_str())),
            None => Self(url.as_str().to_owned()),
        }
    }
}

/// The file name of a URL or path as pip reads it: the last path segment, without a query
/// or fragment, percent-decoded.
pub fn link_file_name(link: &str) -> String {
    let path = link.split(['?', '#']).next().unwrap_or(link);
    percent_decode(path.rsplit('/').next().unwrap_or(path))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);
text_value!(Sha256);

impl Sha256 {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_lower_hex(text, 64) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a sha256"),
                "write the 64 lower-case hex digits of `sha256sum <file>`",
            ))
        }
    }
}

/// A registry digest: `sha256:` and 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigest(String);
text_value!(ImageDigest);

impl ImageDigest {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text.strip_prefix("sha256:") {
            Some(hex) if is_lower_hex(hex, 64) => Ok(Self(text.to_owned())),
            _ => Err(Invalid::new(
                format!("`{text}` is not an image digest"),
                "write `sha256:` and 64 lower-case hex digits",
            )),
        }
    }
}

/// An image reference without digest, per the OCI distribution reference grammar:
/// `[domain[:port]/]path-component(/path-component)*[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    text: String,
    tag_at: Option<usize>,
}

impl ImageReference {
    pub const HINT: &'static str = "write `[registry[:port]/]name[:tag]` as Docker does: lower-case path components of letters and digits joined by `.`, `_`, `__` or dashes, a tag of letters, digits, `_`, `.` and `-` (at most 128), e.g. `nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04`";

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let fail = |why: String| {
            Invalid::new(
                format!("`{text}` is not an image reference: {why}"),
                Self::HINT,
            )
        };
        let last_slash = text.rfind('/').map_or(0, |i| i + 1);
        let tag_at = text[last_slash..].find(':').map(|i| last_slash + i);
        let name = tag_at.map_or(text, |at| &text[..at]);
        check_image_name(name).map_err(fail)?;
        if let Some(at) = tag_at {
            check_tag(&text[at + 1..]).map_err(fail)?;
        }
        Ok(Self {
            text: text.to_owned(),
            tag_at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag_at.map(|at| &self.text[at + 1..])
    }

    /// The registry host the name gives (`ghcr.io`, `127.0.0.1:5000`), if any, and the
    /// repository path after it (`nvidia/cuda`, `debian`).
    pub fn registry_and_path(&self) -> (Option<&str>, &str) {
        split_domain(&self.text[..self.tag_at.unwrap_or(self.text.len())])
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An image pinned (or not yet) by digest: what a `FROM` line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    pub image: ImageReference,
    pub digest: Option<ImageDigest>,
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(digest) => write!(f, "{}@{digest}", self.image),
            None => write!(f, "{}", self.image),
        }
    }
}

impl serde::Serialize for PinnedImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `domain/path` or `path`: the name part of a reference (Docker's split: the first
/// component is a registry when it has a `.` or `:` or is `localhost`).
fn check_image_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters".to_owned());
    }
    let (domain, path) = split_domain(name);
    if let Some(domain) = domain {
        check_registry_host(domain)?;
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "`{component}` is not a path component (lower-case letters and digits, joined by `.`, `_`, `__` or dashes)"
            ));
        }
    }
    Ok(())
}

/// Docker's split of a name into its registry (when the first component has a `.` or `:`, is
/// `localhost`, or has an upper-case letter) and the repository path.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.contains(char::is_uppercase) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, the host a DNS name or an IPv4 address.
fn check_registry_host(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    let port_ok =
        port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("`{domain}` is not a registry host"))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
pub fn is_path_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &text[sep..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let valid = tag.len() <= 128
        && tag.starts_with(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!("`{tag}` is not a tag"))
    }
}

/// Whether `tag` is an image tag Docker accepts.
pub fn is_tag(tag: &str) -> bool {
    check_tag(tag).is_ok()
}

/// A registry and namespace images are pushed to (`ghcr.io/studio`): the front of a
/// reference, so that `<registry>/<stack>` is one.
pub fn check_registry(registry: &str, stack: &str) -> Result<(), Invalid> {
    let full = format!("{}/{stack}", registry.trim_end_matches('/'));
    check_image_name(&full).map_err(|why| {
        Invalid::new(
            format!("`{registry}` is not a registry and namespace: {why}"),
            "write a registry host and optional lower-case namespace, e.g. `ghcr.io/studio`",
        )
    })
}

/// A distribution name (PEP 508): ASCII letters and digits, with `.`, `-`, `_` only between
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName(String);
text_value!(PackageName);

impl PackageName {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a Python package name"),
                "a name is ASCII letters and digits, with `.`, `-` or `_` only between them (PEP 508), e.g. `scipy`",
            ))
        }
    }

    /// The name normalised as PEP 503 does.
    pub fn normalized(&self) -> String {
        crate::compat::normalize_name(&self.0)
    }

    /// The name when it is already in its PEP 503 form, as a lock file writes names.
    pub fn normalized_only(self) -> Result<(), Invalid> {
        let normalized = self.normalized();
        if normalized == self.0 {
            Ok(())
        } else {
            Err(Invalid::new(
                format!("`{}` is not a normalised (PEP 503) name", self.0),
                format!("a lock file names packages as `{normalized}`"),
            ))
        }
    }
}

/// The name a PEP 508 line starts with and its extras, checked before a parser sees the line
/// (pep508_rs 0.9 panics on a name or extra that ends in `.`, `-` or `_`).
pub fn requirement_name(line: &str) -> Result<PackageName, Invalid> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(line.len());
    let name = PackageName::parse(&line[..name_end])?;
    if let Some(extras) = line[name_end..].trim_start().strip_prefix('[') {
        let extras = extras.split(']').next().unwrap_or(extras);
        for extra in extras
            .split(',')
            .map(str::trim)
            .filter(|extra| !extra.is_empty())
        {
            let end = extra
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
                .unwrap_or(extra.len());
            if PackageName::parse(&extra[..end]).is_err() {
                return Err(Invalid::new(
                    format!("`{extra}` is not an extra name"),
                    "an extra is ASCII letters and digits, with `.`, `-` or `_` only between them (PEP 508), e.g. `socks`",
                ));
            }
        }
    }
    Ok(name)
}

/// A requirement line as pip reads it from a requirements file carries nothing but the
/// requirement: no option (`--index-url`, `--hash`), comment, continuation or second line.
pub fn requirement_line(line: &str) -> Result<(), Invalid> {
    if line.contains(['#', '\\', '\n', '\r'])
        || line.split_whitespace().any(|word| word.starts_with('-'))
    {
        return Err(Invalid::new(
            format!("`{line}` carries pip options or a comment"),
            "write only the requirement, e.g. `einops==0.8.1`; `podstack lock` adds the hashes",
        ));
    }
    Ok(())
}

/// One entry of a pip requirements file, made only from checked values: a `[python]
/// packages` line that is nothing but a requirement, or `name==version` with the sha256 of
/// each file (pip's hash-checking mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipRequirement(String);

impl PipRequirement {
    pub fn line(line: &str) -> Result<Self, Invalid> {
        requirement_name(line)?;
        requirement_line(line)?;
        Ok(Self(line.to_owned()))
    }

    pub fn pinned(name: &PackageName, version: &Version, hashes: &[Sha256]) -> Self {
        let mut line = format!("{name}=={version}");
        for hash in hashes {
            line.push_str(&format!(" \\\n    --hash=sha256:{hash}"));
        }
        Self(line)
    }
}

impl fmt::Display for PipRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for PipRequirement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A PEP 440 version as written: its normal form, with no local part (`+cu129`) where a
/// bare version is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareVersion(Version);

impl BareVersion {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let version: Version = text.parse().map_err(|err| {
            Invalid::new(
                format!("`{text}` is not a PEP 440 version: {err}"),
                "write e.g. `2.8.0`",
            )
        })?;
        if !version.local().is_empty() {
            return Err(Invalid::new(
                format!("`{text}` has a local version part (`+...`)"),
                format!(
                    "write the public version `{}`; podstack adds the CUDA variant itself",
                    version.clone().without_local()
                ),
            ));
        }
        if version.to_string() != text {
            return Err(Invalid::new(
                format!("`{text}` is not a version in its normal form"),
                format!("write `{version}`"),
            ));
        }
        Ok(Self(version))
    }

    pub fn version(&self) -> &Version {
        &self.0
    }
}

impl fmt::Display for BareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A version a lock file pins: PEP 440 in its normal form; a local part is allowed (torch's
/// `2.8.0+cu129` is the file's own version).
pub fn locked_version(text: &str) -> Result<Version, Invalid> {
    let version: Version = text.parse().map_err(|err| {
        Invalid::new(
            format!("`{text}` is not a PEP 440 version: {err}"),
            "write e.g. `2.8.0`",
        )
    })?;
    if version.to_string() == text {
        Ok(version)
    } else {
        Err(Invalid::new(
            format!("`{text}` is not a version in its normal form"),
            format!("write `{version}`"),
        ))
    }
}

/// One folder name: letters, digits, `.`, `_` and `-`, not starting with `.` or `-` (so
/// never `.`, `..` or an option), at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderName(String);
text_value!(FolderName);

impl FolderName {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_folder_name(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a folder name"),
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100), e.g. `ComfyUI-Manager`",
            ))
        }
    }
}

fn is_folder_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 100
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A relative path inside the project: folder names joined by `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPath(String);
text_value!(ProjectPath);

impl ProjectPath {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if text.split('/').all(is_folder_name) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                format!("`{text}` is not a folder inside the project"),
                "give a relative path inside the project, e.g. `tests/fixtures/comfyui` (folder names of letters, digits, `.`, `_` and `-`)",
            ))
        }
    }
}

/// A release file's name (`torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl`): one
/// path component of letters, digits, `.`, `_`, `+` and `-`, never `.`/`..` or an option.
pub fn release_file_name(text: &str) -> Result<(), Invalid> {
    let valid = !text.is_empty()
        && text.len() <= 255
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Invalid::new(
            format!("`{text}` is not a release file name"),
            "a wheel or sdist file name: letters, digits, `.`, `_`, `+` and `-`",
        ))
    }
}

/// Whether `text` is `len` lower-case hex digits.
pub fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A DNS name as the URL standard leaves it: lower-case labels of letters, digits and `-`.
fn is_dns_name(domain: &str) -> bool {
    domain.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_names_follow_debian_policy() {
        for good in ["ffmpeg", "libgl1", "g++", "libstdc++6", "python3.11-venv"] {
            assert!(AptPackage::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ffmpeg; id",
            "$(id)",
            "-oAPT::Get=x",
            "a",
            "Ffmpeg",
            "x=1.0",
            "a b",
            "a\nb",
        ] {
            assert!(AptPackage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for good in [
            "nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04",
            "rust:1.95-alpine",
            "localhost:5000/debian:bookworm",
            "ghcr.io/a/b__c/d--e:v1",
            "debian",
        ] {
            assert!(ImageReference::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "a--b-",
            "Debian:12",
            "x\nRUN id",
            "x:",
            "x:-a",
            "a//b",
            "x y",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ImageReference::parse("localhost:5000/debian")
                .unwrap()
                .tag(),
            None
        );
    }

    #[test]
    fn download_urls_judge_the_host_not_the_prefix() {
        assert!(DownloadUrl::parse("http://127.0.0.1:8080/a.whl").is_ok());
        assert!(DownloadUrl::parse("http://localhost/a.whl").is_ok());
        for bad in [
            "http://localhost:80@evil.example/x",
            "http://localhost.example.com/a.whl",
            "file:///etc/passwd",
            "https://user:pw@example.com/x",
        ] {
            assert!(DownloadUrl::parse(bad).is_err(), "{bad}");
        }
        let url = "https://download.pytorch.org/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl?x=1";
        assert!(DownloadUrl::parse(url).is_ok());
        assert_eq!(
            link_file_name(url),
            "torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl"
        );
    }

    #[test]
    fn git_urls_and_refs_are_never_options_or_commands() {
        assert!(GitUrl::parse("https://github.com/Comfy-Org/ComfyUI").is_ok());
        assert!(GitUrl::parse("http://127.0.0.1:9418/comfyui.git").is_ok());
        for bad in [
            "http://github.com/Comfy-Org/ComfyUI",
            "http://10.0.0.1/comfyui.git",
            "--upload-pack=touch /tmp/x",
            "https://x; id",
            "https://x/$(id)",
            "ssh://github.com/a/b",
            "https://github.com/a/b?x",
        ] {
            assert!(GitUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(GitRef::parse("v0.3.64").is_ok());
        for bad in ["-x", "a b", "a;b", "", "a..b", "x.lock"] {
            assert!(GitRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn package_names_and_versions() {
        assert!(PackageName::parse("scipy-").is_err());
        assert!(requirement_name("scipy-==1.16.2").is_err());
        assert!(requirement_name("scipy==1.16.2").is_ok());
        for line in ["x[a-]==1", "x[a.]", "x[a_, b]", "x [ a- ]", "x[b,a-"] {
            assert!(requirement_name(line).is_err(), "{line}");
        }
        assert!(requirement_name("requests[socks, security]>=2").is_ok());
        assert!(BareVersion::parse("2.8.0").is_ok());
        assert!(BareVersion::parse("2.8.0+cu129").is_err());
        assert!(BareVersion::parse("v2.8.0").is_err());
        assert!(locked_version("2.8.0+cu129").is_ok());
        assert!(locked_version("1.0\n--extra-index-url https://x").is_err());
    }

    #[test]
    fn folder_names_are_one_safe_component() {
        for bad in ["../../..", "", ".", "..", "-x", "a/b", "a b"] {
            assert!(FolderName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FolderName::parse("ComfyUI-Manager").is_ok());
    }
}
