//! Who may use the control panel: the panel token (bearer header or a login cookie), compared
//! in constant time, and a same-origin check on every mutating request against CSRF (L16).
//!
//! Without a token every route is open, and the status says so. With one, mutating routes
//! always need it and read-only routes need it unless the manifest allows anonymous status;
//! the page and its files (`/`, `/ui/...`), `/api/health` and `/api/login` stay open.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::api_error::ApiError;
use crate::service::secrets::PANEL_TOKEN_ENV;

/// The login cookie's name.
pub const SESSION_COOKIE: &str = "podstack_session";
/// A file holding the panel token (a mounted secret).
pub const TOKEN_FILE_ENV: &str = "PODSTACK_PANEL_TOKEN_FILE";

/// The panel's credentials and who may read without them.
#[derive(Debug)]
pub struct PanelAuth {
    /// SHA-256 of the token; hashing both sides hides the token's length from timing.
    token: Option<[u8; 32]>,
    /// The login cookie's value: random per supervisor run, never the token itself.
    session: String,
    anonymous_status: bool,
}

/// A token source that is set but unusable.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the panel token file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the panel token file {0} is empty")]
    Empty(PathBuf),
}

impl PanelAuth {
    pub fn new(token: Option<&str>, anonymous_status: bool) -> Self {
        let mut session = [0_u8; 32];
        rand::thread_rng().fill_bytes(&mut session);
        Self {
            token: token.map(|token| Sha256::digest(token.as_bytes()).into()),
            session: hex::encode(session),
            anonymous_status,
        }
    }

    /// Reads the token from `PODSTACK_PANEL_TOKEN`, else from the file `PODSTACK_PANEL_TOKEN_FILE`
    /// names. An empty variable counts as unset; an unreadable or empty file is an error.
    pub fn token_from_env() -> Result<Option<String>, TokenError> {
        if let Some(token) = std::env::var(PANEL_TOKEN_ENV)
            .ok()
            .filter(|token| !token.is_empty())
        {
            return Ok(Some(token));
        }
        let Some(path) = std::env::var_os(TOKEN_FILE_ENV).filter(|path| !path.is_empty()) else {
            return Ok(None);
        };
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|source| TokenError::Unreadable {
            path: path.clone(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty(path));
        }
        Ok(Some(token.to_owned()))
    }

    /// Whether a token protects the panel.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `candidate` is the panel token.
    pub fn is_token(&self, candidate: &str) -> bool {
        let candidate: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.token
            .is_some_and(|token| bool::from(token.ct_eq(&candidate)))
    }

    /// The `Set-Cookie` value that logs a browser in. `secure` when the page came over HTTPS.
    pub fn login_cookie(&self, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.session
        )
    }

    /// The `Set-Cookie` value that logs a browser out: the cookie expires at once. Other
    /// browsers stay logged in (the session value is shared until the supervisor restarts).
    pub fn logout_cookie() -> String {
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        if !self.enabled() {
            return true;
        }
        // The scheme is case-insensitive (RFC 9110): `bearer` is as good as `Bearer`.
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token);
        if bearer.is_some_and(|token| self.is_token(token.trim())) {
            return true;
        }
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == SESSION_COOKIE
                    && bool::from(value.as_bytes().ct_eq(self.session.as_bytes()))
            })
    }

    fn needs_token(&self, method: &Method, path: &str) -> bool {
        match path {
            "/" | "/api/health" | "/api/login" | "/api/logout" => false,
            _ if path.starts_with("/ui/") => false,
            "/api/status" | "/api/status/stream" if is_read(method) => !self.anonymous_status,
            _ => true,
        }
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request came from a page of this panel, or from a tool that sends no Origin.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, authority)| authority.trim_end_matches('/'))
    else {
        return false;
    };
    // A cross-site page cannot set X-Forwarded-Host without a CORS preflight we never allow.
    ["x-forwarded-host", HOST.as_str()].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|host| host.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(origin))
    })
}

/// Middleware: refuses cross-origin writes (403) and requests without the token (401).
pub async fn guard(
    State(auth): State<Arc<PanelAuth>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    if !is_read(request.method()) && !same_origin(headers) {
        return Err(ApiError::forbidden(
            "the request came from another site",
            "use the control panel's own page; its Origin must match the Host it was served from",
        ));
    }
    if auth.needs_token(request.method(), request.uri().path()) && !auth.authorized(headers) {
        return Err(ApiError::unauthorized(
            "this panel needs its token",
            "log in on the panel's page, or send `Authorization: Bearer <PODSTACK_PANEL_TOKEN>`",
        ));
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn accepts_the_bearer_token_or_the_session_cookie() {
        let auth = PanelAuth::new(Some("s3cret"), false);
        assert!(auth.authorized(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(!auth.authorized(&headers(&[("authorization", "Bearer s3cre")])));
        assert!(auth.authorized(&headers(&[("authorization", "bearer s3cret")])));
        assert!(auth.authorized(&headers(&[("authorization", "BEARER s3cret")])));
        assert!(!auth.authorized(&headers(&[("authorization", "Basic s3cret")])));
        assert!(!auth.authorized(&headers(&[])));
        let cookie = auth.login_cookie(false);
        let pair = cookie.split(';').next().unwrap();
        assert!(auth.authorized(&headers(&[("cookie", &format!("theme=dark; {pair}"))])));
        assert!(!auth.authorized(&headers(&[("cookie", "podstack_session=s3cret")])));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    }

    #[test]
    fn without_a_token_everything_is_open() {
        let auth = PanelAuth::new(None, false);
        assert!(auth.authorized(&headers(&[])));
        assert!(!auth.is_token(""));
    }

    #[test]
    fn anonymous_status_opens_only_the_status() {
        let open = PanelAuth::new(Some("t"), true);
        assert!(!open.needs_token(&Method::GET, "/api/status"));
        assert!(!open.needs_token(&Method::GET, "/api/status/stream"));
        assert!(open.needs_token(&Method::GET, "/api/logs"));
        assert!(open.needs_token(&Method::GET, "/api/outputs"));
        assert!(open.needs_token(&Method::POST, "/api/start"));
        let closed = PanelAuth::new(Some("t"), false);
        assert!(closed.needs_token(&Method::GET, "/api/status"));
        assert!(!closed.needs_token(&Method::GET, "/api/health"));
        assert!(!closed.needs_token(&Method::POST, "/api/login"));
        assert!(!closed.needs_token(&Method::GET, "/ui/app.js"));
        assert!(closed.needs_token(&Method::GET, "/api/status/stream"));
        assert!(closed.needs_token(&Method::GET, "/api/outputs/alice/a.png"));
    }

    #[test]
    fn origin_must_match_the_host() {
        assert!(same_origin(&headers(&[(
            "host",
            "pod-7777.proxy.runpod.net"
        )])));
        assert!(same_origin(&headers(&[
            ("host", "pod-7777.proxy.runpod.net"),
            ("origin", "https://pod-7777.proxy.runpod.net"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7777"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7777"),
            ("origin", "null")
        ])));
    }
}
