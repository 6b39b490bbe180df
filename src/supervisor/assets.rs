//! The control panel's own files, read from the UI folder (`templates/ui` in the project,
//! `/opt/podstack/ui` in an image, covered by the digest and the seal): the page at `/` and its
//! assets at `/ui/<name>`, each with its content type. Only plain file names of that folder are
//! served, never a path, so nothing outside it can be reached.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::api_error::ApiError;
use super::app_state::AppState;

/// The page served at `/`.
pub const PAGE: &str = "index.html";

/// The content type of each kind of file the panel ships; anything else is not served.
const CONTENT_TYPES: [(&str, &str); 7] = [
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
    ("json", "application/json"),
];

/// The content type of a file name the panel may serve: one path segment of letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit, with a known extension.
pub fn content_type(name: &str) -> Option<&'static str> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !plain || !starts_well {
        return None;
    }
    let extension = Path::new(name).extension()?.to_str()?;
    CONTENT_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map(|(_, content_type)| *content_type)
}

/// `GET /`: the panel's page.
pub async fn page(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    serve(&state.ui_dir, PAGE).await
}

/// `GET /ui/<name>`: a script, style sheet or image of the panel.
pub async fn asset(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    serve(&state.ui_dir, &name).await
}

async fn serve(dir: &Path, name: &str) -> Result<impl IntoResponse, ApiError> {
    let content_type = content_type(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("there is no control panel file `{name}`"),
            "the panel's files are plain names under /ui/ (app.js, style.css)",
        )
    })?;
    let path = dir.join(name);
    let bytes = tokio::fs::read(&path).await.map_err(|err| {
        // The pod's folders are the supervisor log's business, not a visitor's.
        tracing::warn!("the control panel file {} cannot be read: {err}", path.display());
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("there is no control panel file `{name}`"),
            "the pod's UI folder lacks it: the supervisor log says where it looked (PODSTACK_UI_DIR)",
        )
    })?;
    Ok((
        [
            (CONTENT_TYPE, content_type),
            // The files change with the image; a browser revalidates instead of guessing.
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_plain_names_of_known_kinds_only() {
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("style.css"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("icon.SVG"), Some("image/svg+xml"));
        for refused in [
            "../stack.json",
            "..",
            ".hidden.js",
            "a/b.js",
            "a\\b.js",
            "files.sha256",
            "app",
            "",
            "%2e%2e.js",
            "app.js\0",
        ] {
            assert_eq!(content_type(refused), None, "{refused:?}");
        }
    }
}
