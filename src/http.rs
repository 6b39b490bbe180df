//! HTTP for everything podstack fetches (`lock`, `wheelhouse`, the pod's models): one client, a
//! bound on transfers in flight, retries with backoff for what a retry can fix (a refused or
//! dropped connection, a timeout, 429, 5xx), and errors that tell "the host cannot be reached"
//! (an input that stays unresolved) from "the host answered no" (a mistake to report).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sent with every request, so servers can tell podstack's traffic apart.
pub const USER_AGENT: &str = concat!("podstack/", env!("CARGO_PKG_VERSION"));

/// How often, and how patiently, a request is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles for each one after.
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_millis(300),
        }
    }
}

impl Retry {
    /// The wait before try `attempt` (2 for the first retry): doubling, plus up to a quarter
    /// of random jitter so parallel retries do not arrive together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(2).min(16));
        let base = self.first_delay.saturating_mul(doubling);
        let jitter = rand::random::<f64>() * 0.25;
        base.mul_f64(1.0 + jitter)
    }
}

/// Why a request failed, after its retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("{host} cannot be reached ({reason})")]
    Unreachable {
        url: String,
        host: String,
        reason: String,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("the connection to {url} broke: {reason}")]
    Body { url: String, reason: String },
    #[error("`{url}` is not a URL: {reason}")]
    BadUrl { url: String, reason: String },
}

impl HttpError {
    /// The host never answered: the input stays unresolved rather than wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// The status the server answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Classifies a transport error of a request to `url`.
    pub fn from_reqwest(url: &str, err: &reqwest::Error) -> Self {
        if err.is_connect() || err.is_timeout() {
            Self::Unreachable {
                url: url.to_owned(),
                host: host_of(url),
                reason: innermost(err),
            }
        } else {
            Self::Body {
                url: url.to_owned(),
                reason: innermost(err),
            }
        }
    }
}

/// The host of a URL, for messages; the URL itself when it has none.
pub fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned())
}

/// The most specific cause of an error chain ("Could not resolve host", "connection refused").
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A document fetched into memory, with the URL it finally came from (relative links in it
/// are relative to that URL).
#[derive(Debug, Clone)]
pub struct Document {
    pub url: Url,
    pub body: String,
}

/// The client every fetch goes through.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
    permits: Arc<Semaphore>,
    retry: Retry,
}

impl Http {
    /// A client that runs at most `parallel` transfers at once.
    pub fn new(parallel: usize) -> reqwest::Result<Self> {
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self::with_client(client, parallel))
    }

    /// A client for small questions that must not hold a command up: `connect` to connect,
    /// `total` for each request from its start to its last byte.
    pub fn bounded(parallel: usize, connect: Duration, total: Duration) -> reqwest::Result<Self> {
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(connect)
            .timeout(total)
            .build()?;
        Ok(Self::with_client(client, parallel))
    }

    fn with_client(client: Client, parallel: usize) -> Self {
        Self {
            client,
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            retry: Retry::default(),
        }
    }

    #[cfg(test)]
    fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// A slot for one transfer; hold it until the body is read.
    pub async fn permit(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Sends a request built by `build`, trying again after transport failures, 429 and 5xx.
    /// Any other answer is returned, whatever its status. Takes no transfer slot.
    pub async fn send(
        &self,
        url: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        let mut attempt = 1;
        loop {
            let failure = match build(&self.client).send().await {
                Ok(response)
                    if response.status().is_server_error()
                        || response.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    HttpError::Status {
                        url: url.to_owned(),
                        status: response.status(),
                    }
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_builder() => {
                    return Err(HttpError::BadUrl {
                        url: url.to_owned(),
                        reason: innermost(&err),
                    })
                }
                Err(err) => HttpError::from_reqwest(url, &err),
            };
            // A host that does not answer at all is tried twice, not patiently: an input it
            // serves stays unresolved, and the run should say so quickly.
            let attempts = if failure.is_unreachable() {
                self.retry.attempts.min(2)
            } else {
                self.retry.attempts
            };
            if attempt >= attempts {
                return Err(failure);
            }
            attempt += 1;
            tokio::time::sleep(self.retry.delay(attempt)).await;
        }
    }

    /// GETs a small document (JSON, an index page, package metadata) into memory, in a
    /// transfer slot, retrying as [`Http::send`] does and also when the body breaks off.
    /// A status other than 2xx is an error.
    pub async fn get_document(&self, url: &str, accept: &str) -> Result<Document, HttpError> {
        let _permit = self.permit().await;
        let mut attempt = 1;
        loop {
            let response = self
                .send(url, |client| client.get(url).header("Accept", accept))
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(HttpError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
            let final_url = response.url().clone();
            match response.text().await {
                Ok(body) => {
                    return Ok(Document {
                        url: final_url,
                        body,
                    })
                }
                Err(err) if attempt < self.retry.attempts => {
                    tracing::debug!("retrying {url}: {err}");
                    attempt += 1;
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Err(err) => return Err(HttpError::from_reqwest(url, &err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let retry = Retry {
            attempts: 5,
            first_delay: Duration::from_millis(100),
        };
        for (attempt, base) in [(2, 100), (3, 200), (4, 400)] {
            let delay = retry.delay(attempt);
            assert!(
                delay >= Duration::from_millis(base)
                    && delay <= Duration::from_millis(base * 5 / 4),
                "{attempt}: {delay:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_host_is_unreachable_not_wrong() {
        let http = Http::new(1).unwrap().with_retry(Retry {
            attempts: 1,
            first_delay: Duration::ZERO,
        });
        let err = http
            .get_document("http://podstack-no-such-host.invalid/x", "*/*")
            .await
            .unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("podstack-no-such-host.invalid cannot be reached ("),
            "{err}"
        );
    }
}
