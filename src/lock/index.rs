//! The package indexes the lock reads, behind one shape ([`Release`], [`Project`]):
//!
//! - PyPI's JSON API: `/pypi/<name>/<version>/json` for a pinned release (its files with their
//!   sha256 and its `Requires-Dist`), `/pypi/<name>/json` for the versions an open
//!   requirement may take (also the fallback when a mirror lacks the per-version document);
//! - a PEP 503 simple index (PyTorch's `download.pytorch.org/whl/cuXYZ`): one HTML page per
//!   project, a link per file with `#sha256=` and `data-requires-python`.
//!
//! Dependencies come from the file's PEP 658 metadata (`<file URL>.metadata`) when the index
//! document does not carry them.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use pep440_rs::Version;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::cache::{Cache, Kind};
use super::wheel_metadata::{self, WheelMetadataError};
use crate::compat::normalize_name;
use crate::http::{Http, HttpError};
use crate::wheel::WheelFilename;

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub requires_python: Option<String>,
    pub yanked: bool,
    /// The index serves its core metadata at `<url>.metadata` (PEP 658).
    pub metadata: bool,
}

/// A release: its files, and its requirements when the index document lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub files: Vec<IndexFile>,
    pub requires_dist: Option<Vec<String>>,
}

/// Every release of a project, by version.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub releases: BTreeMap<Version, Vec<IndexFile>>,
}

/// Why an index could not say.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{index} has no project `{name}` ({url} answered 404)")]
    NoProject {
        name: String,
        index: String,
        url: String,
    },
    #[error("{index} has no {name} {version}{}", latest.as_ref().map(|latest| format!(" (its versions end at {latest})")).unwrap_or_default())]
    NoVersion {
        name: String,
        version: String,
        index: String,
        latest: Option<String>,
    },
    #[error("cannot read {url}: {reason}")]
    Unreadable { url: String, reason: String },
}

/// Where packages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index {
    /// PyPI (or a mirror of its JSON API) at this base, e.g. `https://pypi.org`.
    PyPi(String),
    /// A PEP 503 simple index at this URL, e.g. `https://download.pytorch.org/whl/cu129`.
    Simple(String),
}

/// The JSON API's documents, the parts the lock reads.
#[derive(Debug, Deserialize)]
struct JsonRelease {
    info: JsonInfo,
    urls: Vec<JsonFile>,
}

#[derive(Debug, Deserialize)]
struct JsonProject {
    releases: BTreeMap<String, Vec<JsonFile>>,
}

#[derive(Debug, Deserialize)]
struct JsonInfo {
    requires_dist: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    digests: BTreeMap<String, String>,
    size: Option<u64>,
    requires_python: Option<String>,
    #[serde(default)]
    yanked: bool,
    #[serde(rename = "core-metadata", default)]
    core_metadata: serde_json::Value,
    #[serde(rename = "data-dist-info-metadata", default)]
    dist_info_metadata: serde_json::Value,
}

impl JsonFile {
    fn into_file(self, base: &Url) -> IndexFile {
        let has = |value: &serde_json::Value| {
            !matches!(
                value,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            )
        };
        IndexFile {
            url: base
                .join(&self.url)
                .map_or_else(|_| self.url.clone(), String::from),
            sha256: self.digests.get("sha256").cloned(),
            size: self.size,
            requires_python: self.requires_python.filter(|text| !text.is_empty()),
            yanked: self.yanked,
            metadata: has(&self.core_metadata) || has(&self.dist_info_metadata),
            filename: self.filename,
        }
    }
}

const JSON: &str = "application/json";
const HTML: &str = "text/html";

impl Index {
    /// What messages call it.
    pub fn label(&self) -> String {
        match self {
            Self::PyPi(base) if base == "https://pypi.org" => "PyPI".to_owned(),
            Self::PyPi(base) | Self::Simple(base) => base.clone(),
        }
    }

    /// The page or document that lists a project's releases.
    pub fn project_url(&self, name: &str) -> String {
        let name = normalize_name(name);
        match self {
            Self::PyPi(base) => format!("{}/pypi/{name}/json", base.trim_end_matches('/')),
            Self::Simple(base) => format!("{}/{name}/", base.trim_end_matches('/')),
        }
    }

    fn release_url(&self, name: &str, version: &Version) -> Option<String> {
        match self {
            Self::PyPi(base) => Some(format!(
                "{}/pypi/{}/{version}/json",
                base.trim_end_matches('/'),
                normalize_name(name)
            )),
            Self::Simple(_) => None,
        }
    }

    /// Every release of `name`.
    pub async fn project(&self, http: &Http, name: &str) -> Result<Project, IndexError> {
        let url = self.project_url(name);
        let accept = match self {
            Self::PyPi(_) => JSON,
            Self::Simple(_) => HTML,
        };
        let document = http.get_document(&url, accept).await.map_err(|err| {
            if err.status() == Some(StatusCode::NOT_FOUND) {
                IndexError::NoProject {
                    name: name.to_owned(),
                    index: self.label(),
                    url: url.clone(),
                }
            } else {
                err.into()
            }
        })?;
        let unreadable = |reason: String| IndexError::Unreadable {
            url: url.clone(),
            reason,
        };
        let mut project = Project::default();
        match self {
            Self::PyPi(_) => {
                let parsed: JsonProject = serde_json::from_str(&document.body)
                    .map_err(|err| unreadable(err.to_string()))?;
                for (version, files) in parsed.releases {
                    // Versions that are not PEP 440 cannot be asked for; pip skips them too.
                    let Ok(version) = Version::from_str(&version) else {
                        continue;
                    };
                    let files = files
                        .into_iter()
                        .map(|file| file.into_file(&document.url))
                        .collect();
                    project.releases.insert(version, files);
                }
            }
            Self::Simple(_) => {
                for file in simple_links(&document.body, &document.url) {
                    if let Some(version) = file_version(&file.filename) {
                        project.releases.entry(version).or_default().push(file);
                    }
                }
            }
        }
        Ok(project)
    }

    /// One release of `name`: from PyPI's per-version document, or from the project's list.
    pub async fn release(
        &self,
        http: &Http,
        cache: &Cache,
        name: &str,
        version: &Version,
    ) -> Result<Release, IndexError> {
        let key = format!(
            "{}|{}|{version}",
            self.project_url(name),
            normalize_name(name)
        );
        if let Some(release) = cache
            .get(Kind::Release, &key)
            .and_then(|text| serde_json::from_str::<Release>(&text).ok())
        {
            return Ok(release);
        }
        let release = match self.release_url(name, version) {
            Some(url) => match http.get_document(&url, JSON).await {
                Ok(document) => {
                    let parsed: JsonRelease =
                        serde_json::from_str(&document.body).map_err(|err| {
                            IndexError::Unreadable {
                                url: url.clone(),
                                reason: err.to_string(),
                            }
                        })?;
                    Release {
                        files: parsed
                            .urls
                            .into_iter()
                            .map(|file| file.into_file(&document.url))
                            .collect(),
                        requires_dist: parsed.info.requires_dist,
                    }
                }
                // A mirror may serve only the project document; the project says whether the
                // version exists.
                Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
                    self.release_from_project(http, name, version).await?
                }
                Err(err) => return Err(err.into()),
            },
            None => self.release_from_project(http, name, version).await?,
        };
        if let Ok(text) = serde_json::to_string(&release) {
            cache.put(Kind::Release, &key, &text);
        }
        Ok(release)
    }

    async fn release_from_project(
        &self,
        http: &Http,
        name: &str,
        version: &Version,
    ) -> Result<Release, IndexError> {
        let mut project = self.project(http, name).await?;
        let latest = project
            .releases
            .keys()
            .rfind(|version| !version.any_prerelease())
            .map(ToString::to_string);
        match project.releases.remove(version) {
            Some(files) if !files.is_empty() => Ok(Release {
                files,
                requires_dist: None,
            }),
            _ => Err(IndexError::NoVersion {
                name: name.to_owned(),
                version: version.to_string(),
                index: self.label(),
                latest,
            }),
        }
    }

    /// The `Requires-Dist` lines of a wheel: from its PEP 658 metadata file, else read out of
    /// the wheel itself over range requests.
    pub async fn requires_dist(
        &self,
        http: &Http,
        cache: &Cache,
        file: &IndexFile,
    ) -> Result<Vec<String>, IndexError> {
        let url = format!(
            "{}.metadata",
            file.url.split('#').next().unwrap_or(&file.url)
        );
        let key = file.sha256.clone().unwrap_or_else(|| url.clone());
        if let Some(text) = cache.get(Kind::Metadata, &key) {
            return Ok(metadata_requires_dist(&text));
        }
        let text = match http.get_document(&url, "*/*").await {
            Ok(document) => document.body,
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
                wheel_metadata::read(http, &file.url)
                    .await
                    .map_err(|err| match err {
                        WheelMetadataError::Http(err) => IndexError::Http(err),
                        WheelMetadataError::Archive { url, reason } => {
                            IndexError::Unreadable { url, reason }
                        }
                    })?
            }
            Err(err) => return Err(err.into()),
        };
        cache.put(Kind::Metadata, &key, &text);
        Ok(metadata_requires_dist(&text))
    }
}

/// The `Requires-Dist` header lines of core metadata (RFC 822 style; the body after the first
/// empty line is the description).
pub fn metadata_requires_dist(metadata: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in metadata.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Requires-Dist:") {
            lines.push(value.trim().to_owned());
        } else if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        }
    }
    lines
}

/// The version in a wheel's or a source distribution's file name.
pub fn file_version(filename: &str) -> Option<Version> {
    if filename.ends_with(".whl") {
        return filename
            .parse::<WheelFilename>()
            .ok()
            .map(|wheel| wheel.version);
    }
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    let (_, version) = stem.rsplit_once('-')?;
    Version::from_str(version).ok()
}

/// The file links of a PEP 503 page, with the PEP 592 / 658 data attributes.
fn simple_links(html: &str, page: &Url) -> Vec<IndexFile> {
    let mut files = Vec::new();
    let mut rest = html;
    while let Some(start) = find_ignore_case(rest, "<a ") {
        rest = &rest[start + 3..];
        let Some(tag_end) = rest.find('>') else { break };
        let attributes = &rest[..tag_end];
        rest = &rest[tag_end + 1..];
        let text_end = find_ignore_case(rest, "</a>").unwrap_or(rest.len());
        let text = unescape(rest[..text_end].trim());
        let Some(href) = attribute(attributes, "href") else {
            continue;
        };
        let Ok(url) = page.join(&href) else { continue };
        let sha256 = url.fragment().and_then(|fragment| {
            fragment
                .split('&')
                .find_map(|part| part.strip_prefix("sha256="))
                .map(str::to_owned)
        });
        let mut url = url;
        url.set_fragment(None);
        let filename = if text.is_empty() {
            url.path_segments()
                .and_then(|mut segments| segments.next_back().map(percent_decode))
                .unwrap_or_default()
        } else {
            text
        };
        let metadata = ["data-core-metadata", "data-dist-info-metadata"]
            .iter()
            .any(|name| attribute(attributes, name).is_some_and(|value| value != "false"));
        files.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
            size: None,
            requires_python: attribute(attributes, "data-requires-python"),
            yanked: attribute(attributes, "data-yanked").is_some(),
            metadata,
        });
    }
    files
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

/// An attribute's value in a tag's attribute text (quoted or bare); `Some("")` when present
/// without a value.
fn attribute(attributes: &str, name: &str) -> Option<String> {
    let lower = attributes.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = &attributes[from..];
        let after_trimmed = after.trim_start();
        if !before_ok {
            continue;
        }
        let Some(value) = after_trimmed.strip_prefix('=') else {
            if after.is_empty() || after.starts_with(|c: char| c.is_ascii_whitespace() || c == '/')
            {
                return Some(String::new());
            }
            continue;
        };
        let value = value.trim_start();
        let raw = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or_default(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or_default(),
        };
        return Some(unescape(raw));
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_simple_index_page() {
        let page = Url::parse("https://download.pytorch.org/whl/cu129/torch/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
<a href="/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=abc123" data-requires-python="&gt;=3.9.0" data-dist-info-metadata="sha256=def">torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl</a><br/>
<a href="torch-2.7.0%2Bcu129-cp311-cp311-win_amd64.whl" data-yanked>torch-2.7.0+cu129-cp311-cp311-win_amd64.whl</a>
</body></html>"#;
        let files = simple_links(html, &page);
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0],
            IndexFile {
                filename: "torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl".to_owned(),
                url: "https://download.pytorch.org/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl".to_owned(),
                sha256: Some("abc123".to_owned()),
                size: None,
                requires_python: Some(">=3.9.0".to_owned()),
                yanked: false,
                metadata: true,
            }
        );
        assert!(files[1].yanked);
        assert_eq!(
            files[1].url,
            "https://download.pytorch.org/whl/cu129/torch/torch-2.7.0%2Bcu129-cp311-cp311-win_amd64.whl"
        );
        assert_eq!(
            file_version(&files[0].filename).unwrap().to_string(),
            "2.8.0+cu129"
        );
    }

    #[test]
    fn versions_come_from_file_names() {
        assert_eq!(
            file_version("python-dateutil-2.9.0.post0.tar.gz")
                .unwrap()
                .to_string(),
            "2.9.0.post0"
        );
        assert_eq!(file_version("readme.txt"), None);
    }

    #[test]
    fn reads_requires_dist_from_core_metadata() {
        let metadata = "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.5\nRequires-Dist: charset_normalizer<4,>=2\nRequires-Dist: idna<4,>=2.5\nRequires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\n\nRequires-Dist: not a header\n";
        assert_eq!(
            metadata_requires_dist(metadata),
            [
                "charset_normalizer<4,>=2",
                "idna<4,>=2.5",
                "PySocks!=1.5.7,>=1.5.6; extra == \"socks\""
            ]
        );
    }
}
