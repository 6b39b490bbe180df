//! The control panel API's one error shape: `{"error", "hint"}` with a status code, which
//! every handler returns (the routes in `api`, the panel page in `assets`, the token check in
//! `auth`, the outputs in `outputs`); what went wrong inside is logged, not sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::control::Refusal;
use super::placement::Conflict;

/// An error as the API reports it: `{"error", "hint"}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: String,
    /// More fields of the answer, beside `error` and `hint` (a busy slot's holder and queue).
    /// Boxed: most errors have none, and every handler's `Result` carries the error's size.
    details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            hint: hint.into(),
            details: None,
        }
    }

    /// Adds `key` to the answer.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.details
            .get_or_insert_default()
            .insert(key.to_owned(), value);
        self
    }

    pub fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, hint)
    }

    pub fn unauthorized(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, error, hint)
    }

    pub fn forbidden(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, error, hint)
    }

    /// Logs what went wrong inside and tells the client only that it did.
    pub(super) fn internal(what: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what} failed: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} failed inside the supervisor"),
            "the supervisor log (GET /api/logs?service=supervisor) has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details.map(|details| *details).unwrap_or_default();
        body.insert("error".to_owned(), json!(self.error));
        body.insert("hint".to_owned(), json!(self.hint));
        (self.status, Json(body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match refusal {
            Refusal::UnknownUser { .. } => StatusCode::NOT_FOUND,
            Refusal::NewUsersOff => StatusCode::FORBIDDEN,
            Refusal::UserExists(_) => StatusCode::CONFLICT,
            Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::Slot(Conflict::Busy { .. } | Conflict::Full(_)) => StatusCode::CONFLICT,
            Refusal::Slot(Conflict::NoSuchSlot { .. }) => StatusCode::NOT_FOUND,
            Refusal::Slot(Conflict::Ambiguous) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, refusal.to_string(), refusal.hint())
    }
}
