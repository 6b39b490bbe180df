//! The base image's size, and where it came from: the registry's manifest when the registry
//! answers (the compressed config and layers a pod pulls: exact), else the local Docker
//! engine's size of the image (uncompressed, exact for the engine's copy), else unknown with
//! the reasons. The registry is asked for the digest the manifest or its lock pins, else the
//! tag, and never for longer than [`REGISTRY_DEADLINE`]: a plan made offline says so at once.

use std::time::Duration;

use serde::Serialize;

use super::size::LayerSize;
use crate::duration::HumanDuration;
use crate::http::Http;
use crate::manifest::Base;
use crate::registry::{self, ImageAddress, ImagePlatform, PulledImage};
use crate::value::{ImageDigest, ImageReference};

/// How long connecting to a registry may take.
pub const REGISTRY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the registry may take in all (token, index, manifest, retries).
pub const REGISTRY_DEADLINE: Duration = Duration::from_secs(15);

/// Which source gave the base image's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSizeSource {
    RegistryManifest,
    LocalEngine,
    Unknown,
}

/// The base image's size for the plan.
#[derive(Debug, Clone, Serialize)]
pub struct BaseImage {
    /// The image as the Dockerfile's `FROM` names it.
    pub image: String,
    pub source: BaseSizeSource,
    /// What the registry's manifest lists, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<PulledImage>,
    /// Why the registry did not give the size, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_why: Option<String>,
    /// The size of the plan's base layer.
    pub size: LayerSize,
}

/// The client a plan asks registries with.
pub fn registry_client() -> reqwest::Result<Http> {
    Http::bounded(1, REGISTRY_CONNECT_TIMEOUT, REGISTRY_DEADLINE)
}

/// Sizes `base`: its registry's manifest, else the local engine's copy, else unknown.
pub async fn measure(http: &Http, base: &Base) -> BaseImage {
    let digest = base
        .digest
        .as_deref()
        .filter(|_| !base.local)
        .and_then(|digest| ImageDigest::parse(digest).ok());
    let image = match &digest {
        Some(digest) => format!("{}@{digest}", base.image),
        None => base.image.clone(),
    };
    let asked = if base.local {
        Err(format!(
            "{} is a local image (`base.local = true`), in no registry",
            base.image
        ))
    } else {
        from_registry(http, &base.image, digest.as_ref(), REGISTRY_DEADLINE).await
    };
    let registry_why = match asked {
        Ok(pulled) => {
            return BaseImage {
                size: LayerSize::Exact {
                    bytes: pulled.bytes(),
                    source: Some(registry_note(&pulled)),
                },
                image,
                source: BaseSizeSource::RegistryManifest,
                registry: Some(pulled),
                registry_why: None,
            }
        }
        Err(why) => why,
    };
    let (source, size) = match local_image(&image) {
        Ok(bytes) => (
            BaseSizeSource::LocalEngine,
            LayerSize::Exact {
                bytes,
                source: Some(format!(
                    "the local Docker engine's copy (`docker image inspect`), uncompressed (a pod pulls the compressed layers, fewer bytes); not from its registry: {registry_why}"
                )),
            },
        ),
        Err(local_why) => (
            BaseSizeSource::Unknown,
            LayerSize::unknown(format!("{registry_why}; {local_why}")),
        ),
    };
    BaseImage {
        image,
        source,
        registry: None,
        registry_why: Some(registry_why),
        size,
    }
}

/// The blobs the registry lists for the image, or why not, within `deadline`.
async fn from_registry(
    http: &Http,
    image: &str,
    digest: Option<&ImageDigest>,
    deadline: Duration,
) -> Result<PulledImage, String> {
    let reference = ImageReference::parse(image).map_err(|invalid| invalid.message)?;
    let address = ImageAddress::new(&reference, digest);
    match tokio::time::timeout(
        deadline,
        registry::pulled_image(http, &address, ImagePlatform::STACK),
    )
    .await
    {
        Ok(Ok(pulled)) => Ok(pulled),
        // A note under the plan is one line.
        Ok(Err(err)) => Err(err.to_string().replace("\n  hint: ", "; ")),
        Err(_) => Err(format!(
            "{} did not answer within {}",
            address.registry(),
            HumanDuration(deadline)
        )),
    }
}

/// Where the registry's figure comes from, for the notes under the plan.
fn registry_note(pulled: &PulledImage) -> String {
    let from = match (&pulled.platform, &pulled.index) {
        (Some(platform), Some(index)) => format!(
            "the registry's {platform} manifest {} (of the index {})",
            short(&pulled.manifest),
            short(index)
        ),
        _ => format!("the registry's manifest {}", short(&pulled.manifest)),
    };
    format!(
        "{from}: the config and {} layer(s), compressed, as a pod pulls them",
        pulled.layer_bytes.len()
    )
}

/// `sha256:` and the first 12 hex digits, as Docker shortens image ids.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// The local Docker engine's size of `image` (uncompressed), or why there is none.
fn local_image(image: &str) -> Result<u64, String> {
    let output = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let not_here = || format!("{image} is not in this machine's Docker engine");
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| not_here()),
        Ok(_) => Err(not_here()),
        Err(_) => Err(format!(
            "{image} cannot be looked up in a local Docker engine: there is no `docker` here"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that takes connections and never answers does not hold the plan up.
    #[tokio::test]
    async fn a_silent_registry_is_given_up_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let http = registry_client().unwrap();
        let image = format!("127.0.0.1:{port}/base:bookworm");
        let why = from_registry(&http, &image, None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(why, format!("127.0.0.1:{port} did not answer within 300ms"));
    }

    #[tokio::test]
    async fn a_local_base_is_not_looked_for_in_a_registry() {
        let base: Base = toml::from_str(
            "image = \"podstack-no-such-base:bookworm\"\nlocal = true\npython = \"3.11\"",
        )
        .unwrap();
        let measured = measure(&registry_client().unwrap(), &base).await;
        assert_eq!(measured.source, BaseSizeSource::Unknown);
        assert_eq!(
            measured.registry_why.as_deref(),
            Some("podstack-no-such-base:bookworm is a local image (`base.local = true`), in no registry")
        );
        assert!(measured.registry.is_none());
    }
}
