//! Container registries, spoken to through the OCI distribution API: where a registry keeps an
//! image ([`address`]), the anonymous pull token a registry may ask for ([`challenge`]), what a
//! manifest says ([`manifest`]), and the two questions podstack asks: the digest a tag points
//! at (`podstack lock`) and the bytes a pod pulls for an image (`podstack plan`).

pub mod address;
pub mod challenge;
mod client;
pub mod manifest;

pub use address::ImageAddress;
pub use client::{digest, pulled_image};
pub use manifest::{ImagePlatform, PulledImage};

use crate::http::HttpError;

/// Why a registry did not give what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The registry never answered; what it would have given stays unknown.
    #[error("{registry} cannot be reached ({reason})")]
    Unreachable { registry: String, reason: String },
    #[error(transparent)]
    Http(HttpError),
    #[error("`{0}` has no tag to resolve")]
    NoTag(String),
    #[error("{registry} has no {repository}{reference}")]
    NoSuchManifest {
        registry: String,
        repository: String,
        /// `:tag` or `@sha256:...`.
        reference: String,
    },
    #[error("{registry} refused an anonymous pull of {repository}: {reason}")]
    Denied {
        registry: String,
        repository: String,
        reason: String,
    },
    #[error("{image}: the registry sent a manifest whose sha256 is {got}, not the digest asked for\n  hint: the registry or something between it and this machine altered the manifest; do not build from it")]
    DigestMismatch { image: String, got: String },
    #[error("{image} has no {platform} image; its index lists {found}")]
    NoPlatform {
        image: String,
        platform: ImagePlatform,
        found: String,
    },
    #[error("{image}: {reason}")]
    BadManifest { image: String, reason: String },
}

impl RegistryError {
    /// The registry never answered: an input it serves stays unresolved rather than wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Sorts a transport failure of a request to `registry`.
    fn from_http(registry: &str, err: HttpError) -> Self {
        match err {
            HttpError::Unreachable { reason, .. } => Self::Unreachable {
                registry: registry.to_owned(),
                reason,
            },
            other => Self::Http(other),
        }
    }
}
