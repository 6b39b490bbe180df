//! Is this pod the build it should be? The digest it runs against the one the deploy
//! template pins (`PODSTACK_EXPECTED_DIGEST`) and the latest one a URL publishes (L1).

use std::time::Duration;

use serde::Serialize;

/// The result: current, stale (with both digests), or unknown (with why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Freshness {
    Current {
        running: String,
    },
    Stale {
        running: String,
        expected: String,
        source: String,
    },
    Unknown {
        running: String,
        why: String,
    },
}

impl Freshness {
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Stale { .. })
    }
}

/// Compares the running digest with the expected one and, when there is a URL, the latest
/// published one. The URL is asked at most `timeout`; not reaching it is "unknown".
pub async fn check(
    running: &str,
    expected: Option<&str>,
    latest_url: Option<&str>,
    timeout: Duration,
) -> Freshness {
    let running = running.to_owned();
    if let Some(expected) = expected {
        if expected != running {
            return Freshness::Stale {
                running,
                expected: expected.to_owned(),
                source: "PODSTACK_EXPECTED_DIGEST".to_owned(),
            };
        }
    }
    let latest = match latest_url {
        Some(url) => Some((url, fetch_latest(url, timeout).await)),
        None => None,
    };
    match (expected, latest) {
        (_, Some((url, Ok(latest)))) if latest != running => Freshness::Stale {
            running,
            expected: latest,
            source: url.to_owned(),
        },
        (Some(_), _) | (_, Some((_, Ok(_)))) => Freshness::Current { running },
        (None, Some((url, Err(why)))) => Freshness::Unknown {
            running,
            why: format!("the latest digest could not be read from {url}: {why}"),
        },
        (None, None) => Freshness::Unknown {
            running,
            why: "no expected digest: set PODSTACK_EXPECTED_DIGEST in the pod template, or runtime.verify.latest_digest_url".to_owned(),
        },
    }
}

/// The first `sha256:<64 hex>` in the body at `url`.
pub async fn fetch_latest(url: &str, timeout: Duration) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|err| err.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = response.text().await.map_err(|err| err.to_string())?;
    find_digest(&body).ok_or_else(|| "no `sha256:<64 hex>` in the answer".to_owned())
}

/// The first well-formed digest in a text.
pub fn find_digest(text: &str) -> Option<String> {
    text.match_indices("sha256:").find_map(|(at, _)| {
        let hex = text.get(at + 7..at + 71)?;
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            .then(|| format!("sha256:{hex}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[tokio::test]
    async fn expected_digest_decides_without_a_url() {
        let second = Duration::from_secs(1);
        assert_eq!(
            check(A, Some(A), None, second).await,
            Freshness::Current { running: A.into() }
        );
        assert_eq!(
            check(A, Some(B), None, second).await,
            Freshness::Stale {
                running: A.into(),
                expected: B.into(),
                source: "PODSTACK_EXPECTED_DIGEST".into()
            }
        );
        assert!(matches!(
            check(A, None, None, second).await,
            Freshness::Unknown { .. }
        ));
    }

    #[tokio::test]
    async fn an_unreachable_url_is_unknown_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/latest", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        let result = check(A, None, Some(&url), Duration::from_millis(300)).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        match result {
            Freshness::Unknown { why, .. } => assert!(why.contains(&url), "{why}"),
            other => panic!("{other:?}"),
        }
        drop(listener);
    }

    #[test]
    fn finds_a_digest_in_text() {
        assert_eq!(find_digest(&format!("# header\n{B}\n")).as_deref(), Some(B));
        assert_eq!(find_digest("sha256:xyz"), None);
    }
}
