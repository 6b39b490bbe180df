//! An image tag to the digest of its manifest, through the registry's HTTP API (the OCI
//! distribution spec): `HEAD /v2/<repository>/manifests/<tag>`, answered with
//! `Docker-Content-Digest`; a 401 names a token service (`WWW-Authenticate: Bearer realm=...`),
//! which gives an anonymous pull token for public images.

use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::http::{Http, HttpError};

/// Docker Hub's registry host, for names without one (`nvidia/cuda`, `rust`).
const DOCKER_HUB: &str = "registry-1.docker.io";

/// Manifest types a multi-platform tag may point at; the digest is of whichever the tag names.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// An image reference split for the registry API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

/// Why a digest could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("`{0}` has no tag to resolve")]
    NoTag(String),
    #[error("{registry} has no {repository}:{tag}")]
    NoSuchTag {
        registry: String,
        repository: String,
        tag: String,
    },
    #[error("{registry} refused an anonymous pull of {repository}: {reason}")]
    Denied {
        registry: String,
        repository: String,
        reason: String,
    },
}

impl ImageName {
    /// `nvidia/cuda:12.9.1-...` (Docker Hub), `rust:1.95-alpine` (`library/rust`),
    /// `ghcr.io/owner/image:tag`, `localhost:5000/image:tag`.
    pub fn parse(image: &str) -> Result<Self, RegistryError> {
        let name = image.split('@').next().unwrap_or(image);
        let slash = name.rfind('/').map_or(0, |at| at + 1);
        let Some(colon) = name[slash..].find(':') else {
            return Err(RegistryError::NoTag(image.to_owned()));
        };
        let (path, tag) = (&name[..slash + colon], &name[slash + colon + 1..]);
        let (first, rest) = path.split_once('/').unwrap_or(("", path));
        let has_registry = first.contains(['.', ':']) || first == "localhost";
        let (registry, repository) = if has_registry {
            (first.to_owned(), rest.to_owned())
        } else if path.contains('/') {
            (DOCKER_HUB.to_owned(), path.to_owned())
        } else {
            (DOCKER_HUB.to_owned(), format!("library/{path}"))
        };
        Ok(Self {
            registry,
            repository,
            tag: tag.to_owned(),
        })
    }

    /// The manifest URL; a registry on this machine is spoken to over plain http.
    fn manifest_url(&self) -> String {
        let local = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|host| self.registry == *host || self.registry.starts_with(&format!("{host}:")));
        let scheme = if local { "http" } else { "https" };
        format!(
            "{scheme}://{}/v2/{}/manifests/{}",
            self.registry, self.repository, self.tag
        )
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// The `sha256:...` digest of the manifest `image` names.
pub async fn digest(http: &Http, image: &str) -> Result<String, RegistryError> {
    let name = ImageName::parse(image)?;
    let url = name.manifest_url();
    let _permit = http.permit().await;
    let ask = |token: Option<String>, method: reqwest::Method| {
        let url = url.clone();
        async move {
            http.send(&url, |client| {
                let request = client
                    .request(method.clone(), &url)
                    .header(ACCEPT, MANIFEST_TYPES);
                match &token {
                    Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
                    None => request,
                }
            })
            .await
        }
    };
    let mut response = ask(None, reqwest::Method::HEAD).await?;
    let mut token = None;
    if response.status() == StatusCode::UNAUTHORIZED {
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        token = Some(anonymous_token(http, &name, &challenge).await?);
        response = ask(token.clone(), reqwest::Method::HEAD).await?;
    }
    match response.status() {
        status if status.is_success() => {}
        StatusCode::NOT_FOUND => {
            return Err(RegistryError::NoSuchTag {
                registry: name.registry,
                repository: name.repository,
                tag: name.tag,
            })
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(RegistryError::Denied {
                registry: name.registry,
                repository: name.repository,
                reason: format!("the manifest answered {}", response.status()),
            })
        }
        status => return Err(HttpError::Status { url, status }.into()),
    }
    if let Some(digest) = response
        .headers()
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .filter(|digest| digest.starts_with("sha256:"))
    {
        return Ok(digest.to_owned());
    }
    // Without the header, the digest is the sha256 of the manifest's bytes.
    let response = ask(token, reqwest::Method::GET).await?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpError::Status { url, status }.into());
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| HttpError::from_reqwest(&url, &err))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&body))))
}

/// Follows a `Bearer realm="...",service="...",scope="..."` challenge to a pull token.
async fn anonymous_token(
    http: &Http,
    name: &ImageName,
    challenge: &str,
) -> Result<String, RegistryError> {
    let denied = |reason: String| RegistryError::Denied {
        registry: name.registry.clone(),
        repository: name.repository.clone(),
        reason,
    };
    let Some(parameters) = challenge.strip_prefix("Bearer ") else {
        return Err(denied(format!(
            "it asks for `{challenge}`, not a bearer token"
        )));
    };
    let parameter = |key: &str| {
        parameters.split(',').find_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            (name == key).then(|| value.trim_matches('"').to_owned())
        })
    };
    let realm =
        parameter("realm").ok_or_else(|| denied("its challenge names no realm".to_owned()))?;
    let scope =
        parameter("scope").unwrap_or_else(|| format!("repository:{}:pull", name.repository));
    let mut query = vec![("scope", scope)];
    if let Some(service) = parameter("service") {
        query.push(("service", service));
    }
    let response = http
        .send(&realm, |client| client.get(&realm).query(&query))
        .await?;
    if !response.status().is_success() {
        return Err(denied(format!(
            "its token service answered {}",
            response.status()
        )));
    }
    let answer: TokenAnswer = response
        .json()
        .await
        .map_err(|err| denied(format!("its token service sent no token: {err}")))?;
    answer
        .token
        .or(answer.access_token)
        .ok_or_else(|| denied("its token service sent no token".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_names_as_docker_does() {
        let parse = |image: &str| ImageName::parse(image).unwrap();
        assert_eq!(
            parse("nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04"),
            ImageName {
                registry: DOCKER_HUB.to_owned(),
                repository: "nvidia/cuda".to_owned(),
                tag: "12.9.1-cudnn-runtime-ubuntu22.04".to_owned()
            }
        );
        assert_eq!(parse("rust:1.95-alpine").repository, "library/rust");
        let ghcr = parse("ghcr.io/studio/comfy:1.0");
        assert_eq!(
            (ghcr.registry.as_str(), ghcr.repository.as_str()),
            ("ghcr.io", "studio/comfy")
        );
        let local = parse("localhost:5000/base:bookworm");
        assert_eq!(local.registry, "localhost:5000");
        assert_eq!(
            local.manifest_url(),
            "http://localhost:5000/v2/base/manifests/bookworm"
        );
        assert!(matches!(
            ImageName::parse("debian"),
            Err(RegistryError::NoTag(_))
        ));
    }

    /// A registry on this machine that wants a token, as Docker Hub does.
    #[tokio::test]
    async fn follows_the_anonymous_token_flow() {
        use axum::http::HeaderMap;
        use axum::response::Response;
        use axum::routing::get;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:base:pull\""
        );
        let app = axum::Router::new()
            .route(
                "/v2/base/manifests/bookworm",
                get(move |headers: HeaderMap| async move {
                    let authorised = headers
                        .get("authorization")
                        .is_some_and(|value| value == "Bearer pull-token");
                    let response = if authorised {
                        Response::builder().header("docker-content-digest", "sha256:feed")
                    } else {
                        Response::builder()
                            .status(401)
                            .header("www-authenticate", challenge)
                    };
                    response.body(axum::body::Body::empty()).unwrap()
                }),
            )
            .route(
                "/token",
                get(|query: axum::extract::RawQuery| async move {
                    let query = query.0.unwrap_or_default();
                    assert!(query.contains("scope=repository%3Abase%3Apull"), "{query}");
                    axum::Json(serde_json::json!({"token": "pull-token"}))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = Http::new(2).unwrap();
        let image = format!("localhost:{port}/base:bookworm");
        assert_eq!(digest(&http, &image).await.unwrap(), "sha256:feed");
        let missing = format!("localhost:{port}/base:trixie");
        assert!(matches!(
            digest(&http, &missing).await,
            Err(RegistryError::NoSuchTag { .. })
        ));
    }
}
