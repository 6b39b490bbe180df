//! Requests to a registry: manifests by tag or digest with the `Accept` of every manifest type
//! podstack reads, and the anonymous token flow (a 401 names a token service; its token is
//! sent with every later request of the session).

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;

use super::challenge::BearerChallenge;
use super::manifest::{self, ImagePlatform, Manifest, PulledImage};
use super::{ImageAddress, RegistryError};
use crate::http::{host_of, Http, HttpError};

/// The digest of the manifest `address` names (by its tag): what `podstack lock` pins.
pub async fn digest(http: &Http, address: &ImageAddress) -> Result<String, RegistryError> {
    if address.tag().is_none() && address.digest().is_none() {
        return Err(RegistryError::NoTag(address.to_string()));
    }
    let _permit = http.permit().await;
    let mut session = Session::new(http, address);
    let reference = address.reference();
    let response = session.manifest(Method::HEAD, reference).await?;
    if let Some(digest) = response
        .headers()
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .filter(|digest| digest.starts_with("sha256:"))
    {
        return Ok(digest.to_owned());
    }
    // Without the header, the digest is the sha256 of the manifest's bytes.
    let (body, _) = session.get_manifest(reference).await?;
    Ok(manifest::digest_of(&body))
}

/// The blobs a pod pulls for the image at `address` on `platform`: its manifest, through the
/// index when the reference names one, each manifest fetched by digest checked against it.
pub async fn pulled_image(
    http: &Http,
    address: &ImageAddress,
    platform: ImagePlatform,
) -> Result<PulledImage, RegistryError> {
    let _permit = http.permit().await;
    let mut session = Session::new(http, address);
    let (body, content_type) = session.get_manifest(address.reference()).await?;
    let digest = verified(address, &body)?;
    let bad = |reason: String| RegistryError::BadManifest {
        image: address.to_string(),
        reason,
    };
    match Manifest::parse(&body, content_type.as_deref()).map_err(bad)? {
        Manifest::Image { config, layers } => Ok(PulledImage {
            manifest: digest,
            index: None,
            platform: None,
            config_bytes: config.size,
            layer_bytes: layers.iter().map(|layer| layer.size).collect(),
        }),
        Manifest::Index(entries) => {
            let entry = manifest::choose(&entries, platform).map_err(|found| {
                RegistryError::NoPlatform {
                    image: address.to_string(),
                    platform,
                    found,
                }
            })?;
            let chosen = address.at(manifest::entry_digest(entry).map_err(bad)?);
            let (body, content_type) = session.get_manifest(chosen.reference()).await?;
            let manifest = verified(&chosen, &body)?;
            let bad = |reason: String| RegistryError::BadManifest {
                image: chosen.to_string(),
                reason,
            };
            match Manifest::parse(&body, content_type.as_deref()).map_err(bad)? {
                Manifest::Image { config, layers } => Ok(PulledImage {
                    manifest,
                    index: Some(digest),
                    platform: Some(platform),
                    config_bytes: config.size,
                    layer_bytes: layers.iter().map(|layer| layer.size).collect(),
                }),
                Manifest::Index(_) => Err(bad(format!(
                    "its {platform} entry is another index, not an image"
                ))),
            }
        }
    }
}

/// The digest of `body`, which must be the one `address` pins when it pins one.
fn verified(address: &ImageAddress, body: &[u8]) -> Result<String, RegistryError> {
    let got = manifest::digest_of(body);
    match address.digest() {
        Some(wanted) if wanted.as_str() != got => Err(RegistryError::DigestMismatch {
            image: address.to_string(),
            got,
        }),
        _ => Ok(got),
    }
}

/// Requests about one repository, with the pull token once the registry asked for one.
struct Session<'a> {
    http: &'a Http,
    address: &'a ImageAddress,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

impl<'a> Session<'a> {
    fn new(http: &'a Http, address: &'a ImageAddress) -> Self {
        Self {
            http,
            address,
            token: None,
        }
    }

    /// The manifest's bytes and content type.
    async fn get_manifest(
        &mut self,
        reference: &str,
    ) -> Result<(Bytes, Option<String>), RegistryError> {
        let response = self.manifest(Method::GET, reference).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let url = self.address.manifest_url(reference);
        let body = response
            .bytes()
            .await
            .map_err(|err| self.failed(HttpError::from_reqwest(&url, &err)))?;
        Ok((body, content_type))
    }

    /// A successful answer for the manifest `reference` names, after the token flow if the
    /// registry asks for it.
    async fn manifest(
        &mut self,
        method: Method,
        reference: &str,
    ) -> Result<Response, RegistryError> {
        let url = self.address.manifest_url(reference);
        let mut response = self.send(&url, &method).await?;
        if response.status() == StatusCode::UNAUTHORIZED && self.token.is_none() {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let challenge =
                BearerChallenge::parse(&challenge).map_err(|reason| self.denied(reason))?;
            self.token = Some(self.pull_token(&challenge).await?);
            response = self.send(&url, &method).await?;
        }
        match response.status() {
            status if status.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(RegistryError::NoSuchManifest {
                registry: self.address.registry().to_owned(),
                repository: self.address.repository().to_owned(),
                reference: if reference.starts_with("sha256:") {
                    format!("@{reference}")
                } else {
                    format!(":{reference}")
                },
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(self.denied(format!("the manifest answered {}", response.status())))
            }
            status => Err(RegistryError::Http(HttpError::Status { url, status })),
        }
    }

    async fn send(&self, url: &str, method: &Method) -> Result<Response, RegistryError> {
        self.http
            .send(url, |client| {
                let request = client
                    .request(method.clone(), url)
                    .header(ACCEPT, manifest::ACCEPTED);
                match &self.token {
                    Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
                    None => request,
                }
            })
            .await
            .map_err(|err| self.failed(err))
    }

    /// An anonymous pull token from the service the challenge names.
    async fn pull_token(&self, challenge: &BearerChallenge) -> Result<String, RegistryError> {
        let url = challenge.token_url(self.address.repository());
        let response = self
            .http
            .send(url.as_str(), |client| client.get(url.clone()))
            .await
            .map_err(|err| RegistryError::from_http(&host_of(url.as_str()), err))?;
        if !response.status().is_success() {
            return Err(self.denied(format!("its token service answered {}", response.status())));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|err| self.denied(format!("its token service sent no token: {err}")))?;
        answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| self.denied("its token service sent no token".to_owned()))
    }

    fn denied(&self, reason: String) -> RegistryError {
        RegistryError::Denied {
            registry: self.address.registry().to_owned(),
            repository: self.address.repository().to_owned(),
            reason,
        }
    }

    fn failed(&self, err: HttpError) -> RegistryError {
        RegistryError::from_http(self.address.registry(), err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::extract::{Path, RawQuery};
    use axum::http::HeaderMap;
    use axum::response::Response;
    use axum::routing::get;

    use super::*;
    use crate::value::{ImageDigest, ImageReference};

    /// A registry on this machine that wants a token, as Docker Hub does, serving `manifests`
    /// (reference -> body) of repository `base` as OCI documents.
    async fn token_registry(manifests: BTreeMap<String, String>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:base:pull\""
        );
        let manifests = Arc::new(manifests);
        let app = axum::Router::new()
            .route(
                "/v2/base/manifests/{reference}",
                get(move |Path(reference): Path<String>, headers: HeaderMap| {
                    let manifests = Arc::clone(&manifests);
                    async move {
                        let authorised = headers
                            .get("authorization")
                            .is_some_and(|value| value == "Bearer pull-token");
                        let builder = Response::builder();
                        let response = match manifests.get(&reference) {
                            _ if !authorised => builder
                                .status(401)
                                .header("www-authenticate", challenge)
                                .body(axum::body::Body::empty()),
                            Some(body) => {
                                let kind = if body.contains("\"manifests\"") {
                                    "application/vnd.oci.image.index.v1+json"
                                } else {
                                    "application/vnd.oci.image.manifest.v1+json"
                                };
                                builder
                                    .header("content-type", kind)
                                    .body(axum::body::Body::from(body.clone()))
                            }
                            None => builder.status(404).body(axum::body::Body::empty()),
                        };
                        response.unwrap()
                    }
                }),
            )
            .route(
                "/token",
                get(|RawQuery(query): RawQuery| async move {
                    let query = query.unwrap_or_default();
                    assert!(query.contains("scope=repository%3Abase%3Apull"), "{query}");
                    assert!(query.contains("service=test"), "{query}");
                    axum::Json(serde_json::json!({"token": "pull-token"}))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    fn image(port: u16, digest: Option<&str>) -> ImageAddress {
        let reference = ImageReference::parse(&format!("localhost:{port}/base:bookworm")).unwrap();
        let digest = digest.map(|digest| ImageDigest::parse(digest).unwrap());
        ImageAddress::new(&reference, digest.as_ref())
    }

    const AMD64: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":700},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l1","size":1000},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l2","size":20}]}"#;
    const ARM64: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:d","size":9},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l3","size":99999}]}"#;

    fn index() -> String {
        let entry = |body: &str, arch: &str| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                manifest::digest_of(body.as_bytes()),
                body.len()
            )
        };
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
            entry(ARM64, "arm64"),
            entry(AMD64, "amd64")
        )
    }

    #[tokio::test]
    async fn follows_the_anonymous_token_flow_to_a_platforms_blobs() {
        let index = index();
        let index_digest = manifest::digest_of(index.as_bytes());
        let amd64_digest = manifest::digest_of(AMD64.as_bytes());
        let port = token_registry(BTreeMap::from([
            ("bookworm".to_owned(), index.clone()),
            (index_digest.clone(), index),
            (amd64_digest.clone(), AMD64.to_owned()),
            (manifest::digest_of(ARM64.as_bytes()), ARM64.to_owned()),
        ]))
        .await;
        let http = Http::new(2).unwrap();
        for address in [image(port, None), image(port, Some(&index_digest))] {
            let pulled = pulled_image(&http, &address, ImagePlatform::STACK)
                .await
                .unwrap();
            assert_eq!(
                pulled,
                PulledImage {
                    manifest: amd64_digest.clone(),
                    index: Some(index_digest.clone()),
                    platform: Some(ImagePlatform::STACK),
                    config_bytes: 700,
                    layer_bytes: vec![1000, 20],
                }
            );
            assert_eq!(pulled.bytes(), 1720);
        }
        assert_eq!(
            digest(&http, &image(port, None)).await.unwrap(),
            index_digest
        );
        let riscv = ImagePlatform {
            os: "linux",
            architecture: "riscv64",
        };
        let err = pulled_image(&http, &image(port, None), riscv)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("localhost:{port}/base:bookworm has no linux/riscv64 image; its index lists linux/arm64, linux/amd64")
        );
    }

    /// A registry that answers a digest with other bytes is not believed.
    #[tokio::test]
    async fn a_manifest_that_is_not_the_pinned_digest_is_refused() {
        let pinned = manifest::digest_of(AMD64.as_bytes());
        let altered = AMD64.replace("\"size\":1000", "\"size\":1");
        let port = token_registry(BTreeMap::from([(pinned.clone(), altered.clone())])).await;
        let http = Http::new(1).unwrap();
        let err = pulled_image(&http, &image(port, Some(&pinned)), ImagePlatform::STACK)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "localhost:{port}/base:bookworm@{pinned}: the registry sent a manifest whose sha256 is {}, not the digest asked for\n  hint: the registry or something between it and this machine altered the manifest; do not build from it",
                manifest::digest_of(altered.as_bytes())
            )
        );
        let missing = format!("sha256:{}", "0".repeat(64));
        let err = pulled_image(&http, &image(port, Some(&missing)), ImagePlatform::STACK)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("localhost:{port} has no base@{missing}")
        );
        assert!(matches!(
            digest(&http, &image(port, None)).await,
            Err(RegistryError::NoSuchManifest { .. })
        ));
    }
}
