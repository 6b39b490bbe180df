//! What a registry's manifest says: an index (OCI image index, Docker manifest list) lists an
//! image per platform; an image manifest (OCI, Docker schema 2) lists its config and layers
//! with their sizes, which are the compressed bytes a pod pulls.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::ImageDigest;

/// The manifest types podstack reads, as the `Accept` of a manifest request: indexes first, so
/// that a multi-platform tag answers with its index rather than some registry's pick.
pub const ACCEPTED: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// An operating system and CPU architecture, as an index's `platform` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImagePlatform {
    pub os: &'static str,
    pub architecture: &'static str,
}

impl ImagePlatform {
    /// What the stacks' images are built for: their wheels are `manylinux_*_x86_64`
    /// ([`crate::wheel::Platform::linux_x86_64`]).
    pub const STACK: Self = Self {
        os: "linux",
        architecture: "amd64",
    };
}

impl fmt::Display for ImagePlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// The blobs a pod pulls for an image: its config and its layers, compressed as they travel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledImage {
    /// The image manifest's digest (a platform's, when the reference named an index).
    pub manifest: String,
    /// The index the manifest was chosen from, when the reference named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The platform chosen out of the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<ImagePlatform>,
    pub config_bytes: u64,
    /// Each layer's compressed size, bottom layer first.
    pub layer_bytes: Vec<u64>,
}

impl PulledImage {
    /// The config and every layer.
    pub fn bytes(&self) -> u64 {
        self.config_bytes + self.layer_bytes.iter().sum::<u64>()
    }
}

/// A manifest as the registry sent it: an index, or an image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Index(Vec<Descriptor>),
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// A blob or manifest a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescribedPlatform>,
}

/// An index entry's platform (other fields, such as `variant`, are not needed for amd64).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DescribedPlatform {
    pub os: String,
    pub architecture: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Reads a manifest; `content_type` is the response's, which wins over the body's
    /// `mediaType` (optional in OCI). The reason when it is neither kind.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, String> {
        let document: Document = serde_json::from_slice(body)
            .map_err(|err| format!("the manifest is not JSON the OCI spec describes: {err}"))?;
        if document.schema_version != 2 {
            return Err(format!(
                "the manifest is of schema {}, which lists no layer sizes",
                document.schema_version
            ));
        }
        let media_type = content_type
            .map(|value| value.split(';').next().unwrap_or_default().trim())
            .filter(|value| value.contains("manifest") || value.contains("index"))
            .map(str::to_owned)
            .or(document.media_type.clone())
            .unwrap_or_default();
        let is_index = media_type.ends_with("image.index.v1+json")
            || media_type.ends_with("manifest.list.v2+json")
            || (media_type.is_empty() && document.manifests.is_some());
        match (is_index, document) {
            (
                true,
                Document {
                    manifests: Some(manifests),
                    ..
                },
            ) => Ok(Self::Index(manifests)),
            (
                false,
                Document {
                    config: Some(config),
                    layers: Some(layers),
                    ..
                },
            ) => Ok(Self::Image { config, layers }),
            _ => Err(format!(
                "the manifest ({}) lists neither images nor layers",
                if media_type.is_empty() {
                    "no media type"
                } else {
                    &media_type
                }
            )),
        }
    }
}

/// The index entry for `platform`, or the platforms it lists instead.
pub fn choose(entries: &[Descriptor], platform: ImagePlatform) -> Result<&Descriptor, String> {
    entries
        .iter()
        .find(|entry| {
            entry.platform.as_ref().is_some_and(|found| {
                found.os == platform.os && found.architecture == platform.architecture
            })
        })
        .ok_or_else(|| {
            let listed: Vec<String> = entries
                .iter()
                .filter_map(|entry| entry.platform.as_ref())
                .map(|found| format!("{}/{}", found.os, found.architecture))
                .collect();
            if listed.is_empty() {
                "no platform".to_owned()
            } else {
                listed.join(", ")
            }
        })
}

/// The digest of a manifest's bytes.
pub fn digest_of(body: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// A digest an index names, checked before it is put in a URL.
pub fn entry_digest(entry: &Descriptor) -> Result<ImageDigest, String> {
    ImageDigest::parse(&entry.digest)
        .map_err(|_| format!("its index names `{}`, not a sha256 digest", entry.digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":10,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":11,"platform":{"architecture":"amd64","os":"linux"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":12,"platform":{"architecture":"unknown","os":"unknown"}}]}"#;

    #[test]
    fn an_index_gives_the_stacks_platform() {
        let Ok(Manifest::Index(entries)) = Manifest::parse(INDEX.as_bytes(), None) else {
            panic!("an index");
        };
        assert_eq!(
            choose(&entries, ImagePlatform::STACK).unwrap().digest,
            "sha256:bb"
        );
        let arm = ImagePlatform {
            os: "linux",
            architecture: "riscv64",
        };
        assert_eq!(
            choose(&entries, arm).unwrap_err(),
            "linux/arm64, linux/amd64, unknown/unknown"
        );
    }

    #[test]
    fn an_image_manifest_gives_its_blobs() {
        let body = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":1469},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:l","size":29126484}]}"#;
        let manifest = Manifest::parse(
            body.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.v2+json"),
        )
        .unwrap();
        let Manifest::Image { config, layers } = manifest else {
            panic!("an image manifest");
        };
        assert_eq!((config.size, layers[0].size), (1469, 29_126_484));
    }

    #[test]
    fn refuses_what_lists_no_sizes() {
        assert_eq!(
            Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).unwrap_err(),
            "the manifest is of schema 1, which lists no layer sizes"
        );
        assert!(Manifest::parse(b"<html>", None)
            .unwrap_err()
            .starts_with("the manifest is not JSON"));
        assert_eq!(
            Manifest::parse(
                br#"{"schemaVersion":2,"layers":[]}"#,
                Some("application/vnd.oci.image.manifest.v1+json")
            )
            .unwrap_err(),
            "the manifest (application/vnd.oci.image.manifest.v1+json) lists neither images nor layers"
        );
    }
}
