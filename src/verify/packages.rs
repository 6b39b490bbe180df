//! The Python distributions installed in the image's venv against the pinned ones: torch
//! replaced by a custom node's requirements, a pin missing or at another version is drift.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;

use serde::Serialize;

use crate::compat::normalize_name;
use crate::resolved::PinnedPackage;

/// How one pinned package differs from what is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "drift", rename_all = "kebab-case")]
pub enum PackageDrift {
    Missing {
        name: String,
        expected: String,
    },
    Version {
        name: String,
        expected: String,
        found: String,
    },
}

/// Installed distributions by normalised name: the `Name` and `Version` headers of every
/// `*.dist-info/METADATA` in the venv's site-packages folders.
pub fn installed(venv: &Path) -> std::io::Result<HashMap<String, String>> {
    let mut found = HashMap::new();
    let lib = venv.join("lib");
    let Ok(pythons) = std::fs::read_dir(&lib) else {
        return Ok(found);
    };
    for python in pythons {
        let site = python?.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "dist-info") {
                if let Some((name, version)) = metadata_headers(&path.join("METADATA"))? {
                    found.insert(normalize_name(&name), version);
                }
            }
        }
    }
    Ok(found)
}

/// Reads the `Name` and `Version` headers, stopping at the end of the header block.
fn metadata_headers(path: &Path) -> std::io::Result<Option<(String, String)>> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let (mut name, mut version) = (None, None);
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Name: ") {
            name = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("Version: ") {
            version = Some(value.trim().to_owned());
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    Ok(name.zip(version))
}

/// Each pinned package that is missing or installed at another version.
pub fn check(pinned: &[PinnedPackage], installed: &HashMap<String, String>) -> Vec<PackageDrift> {
    pinned
        .iter()
        .filter_map(|pin| {
            let name = normalize_name(&pin.name);
            match installed.get(&name) {
                None => Some(PackageDrift::Missing {
                    name,
                    expected: pin.version.clone(),
                }),
                Some(found) if !same_version(found, &pin.version) => Some(PackageDrift::Version {
                    name,
                    expected: pin.version.clone(),
                    found: found.clone(),
                }),
                Some(_) => None,
            }
        })
        .collect()
}

/// PEP 440 equality (`1.0` == `1.0.0`), falling back to text for versions that do not parse.
fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(site: &Path, dir: &str, name: &str, version: &str) {
        let info = site.join(dir);
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            info.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nName: not-a-header\n"),
        )
        .unwrap();
    }

    fn pin(name: &str, version: &str) -> PinnedPackage {
        PinnedPackage {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn finds_replaced_torch_and_missing_pins() {
        let venv = tempfile::tempdir().unwrap();
        let site = venv.path().join("lib/python3.11/site-packages");
        dist(&site, "torch-2.9.0.dist-info", "torch", "2.9.0");
        dist(
            &site,
            "xformers-0.0.32.post2.dist-info",
            "xformers",
            "0.0.32.post2",
        );
        dist(&site, "PyYAML-6.0.3.dist-info", "PyYAML", "6.0.3");
        let found = installed(venv.path()).unwrap();
        assert_eq!(found.get("pyyaml").map(String::as_str), Some("6.0.3"));

        let drift = check(
            &[
                pin("torch", "2.8.0+cu129"),
                pin("xformers", "0.0.32.post2"),
                pin("pyyaml", "6.0.3"),
                pin("einops", "0.8.1"),
            ],
            &found,
        );
        assert_eq!(
            drift,
            [
                PackageDrift::Version {
                    name: "torch".into(),
                    expected: "2.8.0+cu129".into(),
                    found: "2.9.0".into()
                },
                PackageDrift::Missing {
                    name: "einops".into(),
                    expected: "0.8.1".into()
                },
            ]
        );
    }

    #[test]
    fn versions_compare_as_pep440() {
        assert!(same_version("1.0", "1.0.0"));
        assert!(!same_version("2.8.0+cu128", "2.8.0+cu129"));
    }
}
