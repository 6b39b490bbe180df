//! Where a registry keeps an image: the registry host, the repository in it, and the manifest
//! to ask for (the pinned digest when there is one, else the tag), split from a validated
//! [`ImageReference`] the way Docker splits names: no host means Docker Hub
//! (`registry-1.docker.io`), and a one-component name there is under `library/`.

use std::fmt;

use crate::value::{ImageDigest, ImageReference};

/// Docker Hub's registry host, for names without one (`nvidia/cuda`, `rust`).
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// Names Docker accepts for Docker Hub in an image name; its API lives at [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["docker.io", "index.docker.io"];

/// Hosts spoken to over plain HTTP, as Docker does without configuration: registries on this
/// machine.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAddress {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<ImageDigest>,
}

impl ImageAddress {
    /// `image` in its registry, pinned to `digest` when one is given.
    pub fn new(image: &ImageReference, digest: Option<&ImageDigest>) -> Self {
        let (host, path) = image.registry_and_path();
        let registry = match host {
            Some(host) if !DOCKER_HUB_ALIASES.contains(&host) => host.to_owned(),
            _ => DOCKER_HUB.to_owned(),
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        Self {
            registry,
            repository,
            tag: image.tag().map(str::to_owned),
            digest: digest.cloned(),
        }
    }

    /// The registry host, with its port when it has one.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&ImageDigest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest, which names exactly one manifest, before the
    /// tag, which may have moved; `latest` without either, as Docker pulls.
    pub fn reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.as_str(),
            (None, Some(tag)) => tag,
            (None, None) => "latest",
        }
    }

    /// The same image, pinned to `digest` (a platform's manifest out of an index).
    pub fn at(&self, digest: ImageDigest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `GET`/`HEAD` here for the manifest `reference` names.
    pub fn manifest_url(&self, reference: &str) -> String {
        let scheme = if self.is_loopback() { "http" } else { "https" };
        format!(
            "{scheme}://{}/v2/{}/manifests/{reference}",
            self.registry, self.repository
        )
    }

    fn is_loopback(&self) -> bool {
        LOOPBACK_HOSTS.iter().any(|host| {
            self.registry == *host
                || self
                    .registry
                    .strip_prefix(host)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
    }
}

/// `registry/repository[:tag][@digest]`.
impl fmt::Display for ImageAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(image: &str) -> ImageAddress {
        ImageAddress::new(&ImageReference::parse(image).unwrap(), None)
    }

    #[test]
    fn splits_image_names_as_docker_does() {
        let cuda = address("nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04");
        assert_eq!(
            (cuda.registry(), cuda.repository(), cuda.reference()),
            (
                DOCKER_HUB,
                "nvidia/cuda",
                "12.9.1-cudnn-runtime-ubuntu22.04"
            )
        );
        assert_eq!(address("rust:1.95-alpine").repository(), "library/rust");
        assert_eq!(
            address("docker.io/debian:bookworm").to_string(),
            "registry-1.docker.io/library/debian:bookworm"
        );
        let ghcr = address("ghcr.io/studio/comfy:1.0");
        assert_eq!(
            (ghcr.registry(), ghcr.repository()),
            ("ghcr.io", "studio/comfy")
        );
        // A one-component name on another registry keeps its name: `library/` is Docker Hub's.
        assert_eq!(address("127.0.0.1:5000/base").repository(), "base");
        assert_eq!(address("debian").reference(), "latest");
    }

    #[test]
    fn a_pinned_digest_wins_over_the_tag() {
        let digest = ImageDigest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let image = ImageReference::parse("localhost:5000/base:bookworm").unwrap();
        let pinned = ImageAddress::new(&image, Some(&digest));
        assert_eq!(pinned.reference(), digest.as_str());
        assert_eq!(
            pinned.manifest_url(pinned.reference()),
            format!("http://localhost:5000/v2/base/manifests/{digest}")
        );
        assert_eq!(
            pinned.to_string(),
            format!("localhost:5000/base:bookworm@{digest}")
        );
    }

    #[test]
    fn only_registries_on_this_machine_are_spoken_to_over_http() {
        for (image, scheme) in [
            ("127.0.0.1:5000/base:1", "http://"),
            ("localhost/base:1", "http://"),
            ("localhost.example.com/base:1", "https://"),
            ("127.0.0.1.example.com/base:1", "https://"),
            ("debian:bookworm", "https://"),
        ] {
            let address = address(image);
            assert!(
                address.manifest_url("1").starts_with(scheme),
                "{image}: {}",
                address.manifest_url("1")
            );
        }
    }
}
