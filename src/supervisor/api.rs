//! The control panel's HTTP API (axum): thin handlers over the orchestrator's
//! [`Control`](super::control::Control), the logs and the usage files, one JSON error shape
//! (`api_error`), a body size limit, and the panel page; what every handler reaches is
//! `app_state`.
//!
//! Start and stop answer at once with the new state (L14); the state lives on the server and
//! clients stream `/api/status/stream` (or poll `/api/status`) and `/api/logs/stream`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HOST, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream, WatchStream};
use tokio_stream::{Stream, StreamExt as _};

use super::api_error::ApiError;
use super::app_state::AppState;
use super::assets;
use super::auth;
use super::control::{Refusal, StartRequest, StopRequest};
use super::login_limit;
use super::outputs;
use super::placement::{Conflict, Seat};
use super::probe;
use super::run::COMFYUI_LOGS;
use super::slots::SlotIndex;
use super::status::PublishedStatus;
use super::usage::{self, Month};
use crate::manifest::SyncFolderKind;
use crate::service::clock::now_ms;
use crate::service::logs::{utc_timestamp, LogLine, SUPERVISOR};
use crate::service::state::{ServiceState, UnixMillis};
use crate::sync::layout::UserFolder;
use crate::sync::SyncHandle;
use crate::user::UserName;
use tokio_util::io::ReaderStream;

/// Request bodies are small JSON objects.
const BODY_LIMIT: usize = 64 * 1024;

/// How often the status stream repeats the status when nothing changed, so a client (or a
/// proxy that buffers) can tell a quiet pod from a dead connection.
const STATUS_HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a refusal waits for the busy ComfyUI to tell its queue.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// How soon a browser reconnects a dropped stream.
const STREAM_RETRY: Duration = Duration::from_secs(1);

/// Services whose logs the API serves.
pub const SERVICES: [&str; 4] = ["comfyui", "jupyter", "sync", SUPERVISOR];

/// The API's routes; serving them is the caller's business.
pub fn router(state: AppState) -> Router {
    let guard = middleware::from_fn_with_state(Arc::clone(&state.auth), auth::guard);
    Router::new()
        .route("/", get(assets::page))
        .route("/ui/{name}", get(assets::asset))
        .route("/api/start", post(start))
        .route("/api/stop", post(stop))
        .route("/api/status", get(status))
        .route("/api/status/stream", get(status_stream))
        .route("/api/outputs", get(outputs::list))
        .route("/api/outputs/{user}/{*path}", get(outputs::image))
        .route("/api/logs", get(logs))
        .route("/api/logs/stream", get(log_stream))
        .route("/api/logs/download", get(log_download))
        .route("/api/health", get(health))
        .route("/api/usage", get(usage))
        .route("/api/sync", get(sync))
        .route("/api/sync/release", post(release_deletions))
        .route("/api/sync/restart", post(restart_sync))
        .route("/api/users", post(add_user))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/models", get(models))
        .route("/api/models/fetch", post(fetch_models))
        .route("/api/fleet", get(fleet))
        .route("/api/metrics/history", get(metrics_history))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(guard)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `Json<T>` whose rejections (bad JSON, too large, wrong type) are [`ApiError`]s.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Self(value))
            .map_err(|rejection: JsonRejection| {
                ApiError::new(
                    rejection.status(),
                    rejection.body_text(),
                    format!(
                        "send a JSON object of at most {} KiB with Content-Type: application/json",
                        BODY_LIMIT / 1024
                    ),
                )
            })
    }
}

/// `POST /api/start`.
#[derive(Debug, Deserialize)]
struct StartBody {
    user: String,
    /// A slot by number; a free one when absent.
    #[serde(default)]
    slot: Option<u8>,
    /// Take the slot from whoever holds it.
    #[serde(default)]
    force: bool,
}

/// `POST /api/stop`; an empty body stops the only slot's session.
#[derive(Debug, Default, Deserialize)]
struct StopBody {
    /// Who asks: stopping someone else's session needs `force`.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    slot: Option<u8>,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
struct NewUserBody {
    name: String,
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    token: String,
}

#[derive(Debug, Deserialize)]
struct UsageQuery {
    month: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    service: Option<String>,
    #[serde(default)]
    after: u64,
}

fn user_name(name: &str) -> Result<UserName, ApiError> {
    UserName::parse(name).map_err(|bad| ApiError::bad_request(bad.to_string(), UserName::RULE))
}

fn service_name(service: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    service
        .map(|wanted| {
            SERVICES
                .into_iter()
                .chain(COMFYUI_LOGS)
                .find(|known| *known == wanted)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        format!("there is no service `{wanted}`"),
                        format!(
                            "services: {}; each further ComfyUI slot N: comfyui-N",
                            SERVICES.join(", ")
                        ),
                    )
                })
        })
        .transpose()
}

fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(HOST).and_then(|host| host.to_str().ok())
}

/// The status with the server's clock, and the links a browser follows, which depend on the
/// host it came through.
fn view(status: &PublishedStatus, headers: &HeaderMap) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        status.json_at(now_ms(), request_host(headers)),
    )
        .into_response()
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<impl IntoResponse, ApiError> {
    let start = StartRequest {
        user: user_name(&body.user)?,
        slot: body.slot.map(SlotIndex),
        force: body.force,
    };
    match state.control.start(start).await {
        Ok(status) => Ok((StatusCode::ACCEPTED, view(&status, &headers))),
        Err(refusal) => Err(conflict(&state, refusal).await),
    }
}

async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: StopBody = if body.iter().all(u8::is_ascii_whitespace) {
        StopBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::bad_request(
                format!("the stop request is not JSON the API reads: {err}"),
                r#"send {"slot": N, "user": NAME, "force": false}, any of them, or nothing"#,
            )
        })?
    };
    let stop = StopRequest {
        asker: body.user.as_deref().map(user_name).transpose()?,
        slot: body.slot.map(SlotIndex),
        force: body.force,
    };
    match state.control.stop(stop).await {
        Ok(status) => Ok((StatusCode::ACCEPTED, view(&status, &headers))),
        Err(refusal) => Err(conflict(&state, refusal).await),
    }
}

/// A refusal as the API answers it; a slot someone holds is answered with who and what
/// their ComfyUI is doing (its queue, asked of it now), so nobody stops it unknowingly.
async fn conflict(state: &AppState, refusal: Refusal) -> ApiError {
    let holders: Vec<Seat> = match &refusal {
        Refusal::Slot(Conflict::Busy { slot, holder }) => vec![Seat {
            slot: *slot,
            holder: Some(holder.clone()),
        }],
        Refusal::Slot(Conflict::Full(seats)) => seats.clone(),
        _ => return refusal.into(),
    };
    let status = state.control.status();
    let client = crate::service::loopback::local_client().ok();
    let mut slots = Vec::new();
    for seat in holders {
        let port = status
            .slots
            .iter()
            .find(|slot| slot.slot == seat.slot)
            .map(|slot| slot.port);
        let queue = match (&client, port) {
            (Some(client), Some(port)) => {
                let base = format!("http://127.0.0.1:{port}");
                tokio::time::timeout(QUEUE_WAIT, probe::queue(client, &base))
                    .await
                    .ok()
                    .flatten()
            }
            _ => None,
        };
        slots.push(json!({"slot": seat.slot, "user": seat.holder, "queue": queue}));
    }
    let mut error = ApiError::from(refusal);
    if let [one] = &slots[..] {
        error = error
            .with("slot", one["slot"].clone())
            .with("user", one["user"].clone())
            .with("queue", one["queue"].clone());
    }
    error.with("slots", json!(slots))
}

async fn add_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = user_name(&body.name)?;
    let status = state.control.add_user(user).await?;
    Ok((StatusCode::CREATED, view(&status, &headers)))
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    view(&state.control.published(), &headers)
}

/// The status as server-sent events (`status`, the same JSON as `/api/status`): the current
/// one at once, then every change as the orchestrator publishes it, and the latest again every
/// [`STATUS_HEARTBEAT`]. Ends when the client leaves.
async fn status_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.streams.status_stream()?;
    let host = request_host(&headers).map(str::to_owned);
    let control = state.control.clone();
    let start = tokio::time::Instant::now() + STATUS_HEARTBEAT;
    let heartbeat = IntervalStream::new(tokio::time::interval_at(start, STATUS_HEARTBEAT))
        .map(move |_| control.published());
    let events = WatchStream::new(state.control.watch())
        .merge(heartbeat)
        .map(move |status| {
            // The slot is given back when the client leaves and the stream is dropped.
            let _held = &slot;
            Ok(status_event(&status, host.as_deref()))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn status_event(status: &PublishedStatus, host: Option<&str>) -> Event {
    Event::default()
        .event("status")
        .retry(STREAM_RETRY)
        .data(status.json_at(now_ms(), host))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({"ok": true, "uptime_s": state.control.status().uptime_s(now_ms())}))
}

async fn logs(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(
            rejection.body_text(),
            "use ?service=comfyui&after=<cursor> with a whole number as cursor",
        )
    })?;
    let service = service_name(query.service.as_deref())?;
    Ok(Json(state.logs.after(service, query.after)))
}

/// New log lines as server-sent events (`line`, with the cursor as id); replays what the ring
/// holds after `Last-Event-ID` when the browser reconnects. Ends when the client leaves.
async fn log_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(rejection.body_text(), "use ?service=comfyui")
    })?;
    let service = service_name(query.service.as_deref())?;
    let after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(query.after);
    let slot = state.streams.log_stream()?;
    // Subscribe before reading the ring so no line falls between the two.
    let live = BroadcastStream::new(state.logs.subscribe());
    let backlog = state.logs.after(service, after);
    // Live lines up to the backlog's last were in the ring already: replayed, not repeated.
    let mut last = backlog.next;
    let dropped = backlog.dropped.then(|| {
        Ok(Event::default().event("dropped").data(format!(
            "lines after {after} fell out of the ring before this stream opened"
        )))
    });
    let replay = tokio_stream::iter(
        dropped
            .into_iter()
            .chain(backlog.lines.into_iter().map(|line| Ok(line_event(&line)))),
    );
    let live = live.filter_map(move |item| {
        // The slot is given back when the client leaves and the stream is dropped.
        let _held = &slot;
        match item {
            Ok(line)
                if line.cursor > last && service.is_none_or(|wanted| *line.service == *wanted) =>
            {
                last = line.cursor;
                Some(Ok(line_event(&line)))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Ok(Event::default()
                .event("dropped")
                .data(format!("{missed} lines were skipped; GET /api/logs?after={last} has what the ring still holds")))),
        }
    });
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn line_event(line: &LogLine) -> Event {
    let data = serde_json::to_string(line).unwrap_or_default();
    Event::default()
        .event("line")
        .id(line.cursor.to_string())
        .data(data)
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    source: String,
}

/// A service's whole log as a file: its files on the volume, rotated ones first, streamed as
/// they are read; the ring's lines when the pod keeps no files.
async fn log_download(
    State(state): State<AppState>,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|rejection| ApiError::bad_request(rejection.body_text(), "use ?source=comfyui"))?;
    let Some(source) = service_name(Some(&query.source))? else {
        return Err(ApiError::bad_request("no source", "use ?source=comfyui"));
    };
    let pod = &state.control.status().pod;
    let disposition = format!("attachment; filename=\"{pod}-{source}.log\"");
    let files = state.logs.files(source);
    let body = if files.is_empty() {
        let text: String = state
            .logs
            .after(Some(source), 0)
            .lines
            .iter()
            .map(|line| format!("{} {}\n", utc_timestamp(line.time_ms), line.text))
            .collect();
        Body::from(text)
    } else {
        let opened = tokio_stream::iter(files)
            .then(tokio::fs::File::open)
            .filter_map(Result::ok);
        Body::from_stream(futures_util::StreamExt::flat_map(opened, ReaderStream::new))
    };
    let mut response = (
        [(CONTENT_TYPE, "text/plain; charset=utf-8".to_owned())],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// GPU hours per user in a month (`?month=2026-05`, this month by default), across every pod.
async fn usage(
    State(state): State<AppState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query
        .map_err(|rejection| ApiError::bad_request(rejection.body_text(), "use ?month=YYYY-MM"))?;
    let month = match query.month {
        Some(month) => month
            .parse::<Month>()
            .map_err(|err| ApiError::bad_request(err, "use ?month=YYYY-MM"))?,
        None => Month::containing(now_ms()),
    };
    let dir = Arc::clone(&state.sessions_dir);
    let status = state.control.status();
    let summary = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let live: Vec<usage::LiveSession<'_>> = status
            .slots
            .iter()
            .filter(|slot| {
                !matches!(
                    slot.comfyui.state,
                    ServiceState::Stopped | ServiceState::Failed { .. }
                )
            })
            .filter_map(|slot| {
                Some(usage::LiveSession {
                    pod: &status.pod,
                    user: slot.user.as_deref()?,
                    now,
                })
            })
            .collect();
        usage::summarise_live(&dir, month, &live)
    })
    .await
    .map_err(|err| ApiError::internal("reading the usage files", &err))?
    .map_err(|err| ApiError::internal("reading the usage files", &err))?;
    Ok(Json(summary))
}

/// Every pod on this volume: its build, users, GPU and last beat; which are stale or silent.
async fn fleet(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let source = Arc::clone(&state.fleet);
    let fleet = tokio::task::spawn_blocking(move || source.read())
        .await
        .map_err(|err| ApiError::internal("reading the heartbeats", &err))?;
    Ok(Json(fleet))
}

/// Each model of the stack: present, checking, waiting for another pod, downloading (bytes and
/// speed), or failed with the reason.
async fn models(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.models.status())
}

/// Starts fetching every model that is missing or failed; answers at once with the states.
async fn fetch_models(State(state): State<AppState>) -> impl IntoResponse {
    state.models.refresh(true);
    (StatusCode::ACCEPTED, Json(state.models.status()))
}

/// The sync service's report: per user and folder, who syncs it and how it is doing.
async fn sync(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    // Straight from the sync service: the status is republished only when its JSON changes,
    // and the sync's figures are not in it.
    let report = state.sync.as_ref().map(SyncHandle::report).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this pod syncs nothing: the stack has no [sync] section",
            "add [sync] to the stack manifest (see the book's Sync page, docs/src/reference/sync.md) and rebuild",
        )
    })?;
    Ok(Json(SyncView {
        now_ms: now_ms(),
        report,
    }))
}

#[derive(Debug, Deserialize)]
struct FolderBody {
    user: String,
    folder: SyncFolderKind,
}

/// A person starts rclone again after it failed (a crash loop), before its cool-down ends.
async fn restart_sync(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let Some(sync) = &state.sync else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this pod syncs nothing: the stack has no [sync] section",
            "add [sync] to the stack manifest (see the book's Sync page, docs/src/reference/sync.md) and rebuild",
        ));
    };
    sync.restart().await.map_err(|why| {
        ApiError::new(
            StatusCode::CONFLICT,
            why,
            "GET /api/sync shows the state of rclone; only a failed rclone is restarted",
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"restarted": true}))))
}

/// A person lets the deletions held in one user folder go ahead (audited in the sync log).
async fn release_deletions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<FolderBody>,
) -> Result<impl IntoResponse, ApiError> {
    let folder = UserFolder {
        user: user_name(&body.user)?,
        kind: body.folder,
    };
    let Some(sync) = &state.sync else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this pod syncs nothing: the stack has no [sync] section",
            "add [sync] to the stack manifest (see the book's Sync page, docs/src/reference/sync.md) and rebuild",
        ));
    };
    match sync.release(folder.clone()).await {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("this pod does not sync {folder}"),
            "release the deletions on the pod that serves the user (GET /api/sync lists its folders)",
        )),
        Some(0) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("no deletion is held in {folder}"),
            "deletions are held only after sync.max_delete files of a folder were deleted within sync.delete_window",
        )),
        Some(released) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"folder": folder.to_string(), "released": released})),
        )),
    }
}

/// The sync report with the server's clock.
#[derive(Debug, Serialize)]
struct SyncView {
    #[serde(flatten)]
    report: Arc<crate::sync::SyncReport>,
    now_ms: UnixMillis,
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    since: UnixMillis,
}

/// The machine's samples of the last hour, oldest first (`?since=<ms>`: only newer ones).
async fn metrics_history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(
            rejection.body_text(),
            "use ?since=<milliseconds since the epoch>",
        )
    })?;
    Ok(Json(json!({
        "interval_s": state.host.every().as_secs(),
        "now_ms": now_ms(),
        "samples": state.host.since(query.since),
    })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.control.status().metrics(
            now_ms(),
            state.sync.as_ref().map(SyncHandle::report).as_deref(),
        ),
    )
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    if !state.auth.enabled() {
        return Ok(Json(json!({"ok": true, "token_required": false})).into_response());
    }
    if let Err(wait) = state.login_limit.attempt(std::time::Instant::now()) {
        let seconds = wait.as_secs_f64().ceil().max(1.0);
        let mut refusal = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many login attempts",
            format!("wait {seconds} s and try again; the pod allows {} attempts at once, then one a second", login_limit::BURST),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            refusal.headers_mut().insert(RETRY_AFTER, value);
        }
        return Ok(refusal);
    }
    if !state.auth.is_token(&body.token) {
        return Err(ApiError::unauthorized(
            "that is not the panel token",
            "the token is the pod's PODSTACK_PANEL_TOKEN (or the file PODSTACK_PANEL_TOKEN_FILE names)",
        ));
    }
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    Ok((
        [(SET_COOKIE, state.auth.login_cookie(https))],
        Json(json!({"ok": true, "token_required": true})),
    )
        .into_response())
}

/// Ends this browser's login: its cookie expires (open to all, so a stale cookie clears too).
async fn logout() -> impl IntoResponse {
    (
        [(SET_COOKIE, auth::PanelAuth::logout_cookie())],
        Json(json!({"ok": true})),
    )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("there is no {}", request.uri().path()),
        "the API is under /api: start, stop, status, status/stream, logs, logs/stream, logs/download, metrics/history, outputs, health, usage, fleet, sync, users, login, logout, models, models/fetch; metrics at /metrics",
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
        "reads are GET, changes are POST",
    )
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture as _;

    use axum::body::Body;
    use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN};
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::manifest::Runtime;
    use crate::service::logs::{LogBook, LogLimits};
    use crate::service::process::Reaper;
    use crate::supervisor::auth::PanelAuth;
    use crate::supervisor::gpu::GpuProbe;
    use crate::supervisor::models::Models;
    use crate::supervisor::run::{Orchestrator, Setup};
    use crate::supervisor::settings;
    use crate::supervisor::status::AuthStatus;
    use crate::supervisor::stream_slots::StreamSlots;

    struct Panel {
        router: Router,
        _dir: tempfile::TempDir,
    }

    /// The API over a running orchestrator that is never asked to spawn.
    fn panel(token: Option<&str>, edit: impl FnOnce(&mut Runtime)) -> Panel {
        let dir = tempfile::tempdir().unwrap();
        let settings = Arc::new(settings::for_tests(dir.path(), edit));
        let logs = Arc::new(LogBook::new(None, LogLimits::default(), false));
        let auth = Arc::new(PanelAuth::new(
            token,
            settings.stack.runtime.anonymous_status,
        ));
        let (orchestrator, control) = Orchestrator::new(Setup {
            settings: Arc::clone(&settings),
            reaper: Reaper::idle(),
            logs: Arc::clone(&logs),
            gpus: GpuProbe {
                gpus: Vec::new(),
                notes: Vec::new(),
            },
            verification: crate::verify::Report {
                stack: "smoke".to_owned(),
                version: "0.1.0".to_owned(),
                freshness: crate::verify::Freshness::Unknown {
                    running: "sha256:test".to_owned(),
                    why: "a unit test".to_owned(),
                },
                files: Vec::new(),
                packages: Vec::new(),
                rclone: None,
                not_checked: Vec::new(),
            },
            auth: AuthStatus {
                token_required: auth.enabled(),
                anonymous_status: settings.stack.runtime.anonymous_status,
            },
            jupyter_token: None,
            sync: None,
            host: Arc::default(),
        })
        .unwrap();
        tokio::spawn(orchestrator.run());
        let router = router(AppState {
            control,
            logs,
            auth,
            ui_dir: Arc::new(settings.ui_dir.clone()),
            outputs_dir: Arc::new(settings.volume.join("output")),
            sessions_dir: Arc::new(settings.podstack_dir().join("sessions")),
            models: Models::new(&settings).unwrap(),
            sync: None,
            fleet: Arc::new(crate::supervisor::fleet::FleetSource {
                volume: settings.volume.clone(),
                expected: None,
            }),
            streams: StreamSlots::new(1, 1),
            login_limit: Arc::default(),
            host: Arc::default(),
        });
        Panel { router, _dir: dir }
    }

    fn request(method: &str, uri: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, "pod:7777");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(Body::from(body.unwrap_or("").to_owned()))
            .unwrap()
    }

    async fn call(panel: &Panel, request: Request) -> (StatusCode, HeaderMap, String) {
        let response = panel.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"))
    }

    #[tokio::test]
    async fn refuses_bad_user_names_with_the_rule() {
        let panel = panel(None, |_| {});
        let long = "a".repeat(33);
        for name in ["../x", "a b", "$(id)", "", long.as_str()] {
            let body = serde_json::to_string(&json!({ "user": name })).unwrap();
            let (status, _, text) =
                call(&panel, request("POST", "/api/start", Some(&body), &[])).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {text}");
            let error = json(&text);
            assert!(
                error["error"]
                    .as_str()
                    .unwrap()
                    .contains("is not a valid user name"),
                "{text}"
            );
            assert_eq!(error["hint"], UserName::RULE);
        }
    }

    #[tokio::test]
    async fn an_unknown_user_is_not_found_with_the_users_listed() {
        let panel = panel(None, |_| {});
        let (status, _, text) = call(
            &panel,
            request("POST", "/api/start", Some(r#"{"user":"carol"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let error = json(&text);
        assert_eq!(error["error"], "`carol` is not a user of this pod");
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .starts_with("users: alice, bob"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn errors_are_json_with_a_hint() {
        let panel = panel(None, |_| {});
        let (status, _, text) = call(&panel, request("GET", "/nope", None, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(json(&text)["hint"].is_string());
        let (status, _, text) = call(&panel, request("GET", "/api/start", None, &[])).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
        assert_eq!(json(&text)["error"], "GET is not allowed on /api/start");
        let (status, _, text) = call(&panel, request("POST", "/api/start", Some("{"), &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(json(&text)["hint"]
            .as_str()
            .unwrap()
            .contains("JSON object"));
        let big = format!(r#"{{"user": "{}"}}"#, "a".repeat(BODY_LIMIT));
        let (status, _, text) = call(&panel, request("POST", "/api/start", Some(&big), &[])).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        assert!(json(&text)["error"].is_string());
        let (status, _, text) =
            call(&panel, request("GET", "/api/logs?service=nope", None, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json(&text)["hint"],
            "services: comfyui, jupyter, sync, supervisor; each further ComfyUI slot N: comfyui-N"
        );
        let (status, _, _) = call(&panel, request("GET", "/api/logs?after=x", None, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn status_shows_the_stack_users_services_and_links() {
        let panel = panel(None, |_| {});
        let (status, _, text) = call(&panel, request("GET", "/api/status", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        let status = json(&text);
        assert_eq!(status["stack"]["name"], "smoke");
        assert_eq!(status["stack"]["digest"], "sha256:test");
        assert_eq!(status["users"], json(r#"["alice", "bob"]"#));
        assert_eq!(status["services"]["comfyui"]["state"], "stopped");
        assert_eq!(status["services"]["jupyter"]["state"], "disabled");
        assert_eq!(status["services"]["sync"]["state"], "not-configured");
        assert_eq!(status["cpu_mode"], true);
        assert_eq!(status["attention"]["requested"]["flag"], "--cpu");
        assert_eq!(status["comfyui_url"], "http://pod:0");
        let warnings = status["warnings"].to_string();
        assert!(warnings.contains("runs on the CPU"), "{warnings}");
        assert!(warnings.contains("The panel has no token"), "{warnings}");
    }

    #[tokio::test]
    async fn a_token_guards_every_route_but_the_page_health_and_login() {
        let panel = panel(Some("s3cret"), |_| {});
        for (method, uri) in [
            ("GET", "/api/status"),
            ("GET", "/api/logs"),
            ("GET", "/metrics"),
            ("POST", "/api/stop"),
        ] {
            let (status, _, text) = call(&panel, request(method, uri, None, &[])).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {text}");
            assert_eq!(json(&text)["error"], "this panel needs its token");
        }
        let (status, _, _) = call(&panel, request("GET", "/api/health", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, page) = call(&panel, request("GET", "/", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<title>podstack</title>"));
        let bearer = [(AUTHORIZATION.as_str(), "Bearer s3cret")];
        let (status, _, _) = call(&panel, request("GET", "/api/status", None, &bearer)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(
            &panel,
            request("POST", "/api/login", Some(r#"{"token":"guess"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, headers, _) = call(
            &panel,
            request("POST", "/api/login", Some(r#"{"token":"s3cret"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let cookie = headers[SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap();
        let (status, _, _) = call(
            &panel,
            request("GET", "/api/status", None, &[(COOKIE.as_str(), pair)]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn logging_out_expires_the_cookie_and_needs_no_token() {
        let panel = panel(Some("s3cret"), |_| {});
        let (code, headers, _) = call(&panel, request("POST", "/api/logout", None, &[])).await;
        assert_eq!(code, StatusCode::OK);
        let cookie = headers[SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.ends_with("=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            "{cookie}"
        );
    }

    #[tokio::test]
    async fn anonymous_status_opens_the_status_only() {
        let panel = panel(Some("s3cret"), |runtime| runtime.anonymous_status = true);
        let (status, _, _) = call(&panel, request("GET", "/api/status", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&panel, request("GET", "/api/logs", None, &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn writes_from_another_site_are_forbidden() {
        let panel = panel(None, |_| {});
        let evil = [(ORIGIN.as_str(), "https://evil.example")];
        let (status, _, text) = call(&panel, request("POST", "/api/stop", None, &evil)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        let own = [(ORIGIN.as_str(), "http://pod:7777")];
        let (status, _, text) = call(&panel, request("POST", "/api/stop", None, &own)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    }

    #[tokio::test]
    async fn users_are_added_only_when_the_manifest_allows() {
        let closed = panel(None, |runtime| runtime.allow_new_users = false);
        let (status, _, text) = call(
            &closed,
            request("POST", "/api/users", Some(r#"{"name":"carol"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert_eq!(
            json(&text)["hint"],
            "set runtime.allow_new_users = true in the stack manifest"
        );
        let open = panel(None, |runtime| runtime.allow_new_users = true);
        let (status, _, text) = call(
            &open,
            request("POST", "/api/users", Some(r#"{"name":"carol"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        assert_eq!(json(&text)["users"], json(r#"["alice", "bob", "carol"]"#));
        let (status, _, _) = call(
            &open,
            request("POST", "/api/users", Some(r#"{"name":"carol"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _, _) = call(
            &open,
            request("POST", "/api/users", Some(r#"{"name":"Carol!"}"#), &[]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn logs_page_by_cursor_and_metrics_are_prometheus_text() {
        let panel = panel(None, |_| {});
        let (_, _, text) = call(
            &panel,
            request("GET", "/api/logs?service=supervisor&after=0", None, &[]),
        )
        .await;
        let page = json(&text);
        assert!(page["lines"].is_array() && page["next"].is_u64(), "{text}");
        let (status, headers, text) = call(&panel, request("GET", "/metrics", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert!(
            text.contains(
                "podstack_service_state{service=\"comfyui\",slot=\"0\",state=\"stopped\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("podstack_service_restarts_total{service=\"comfyui\",slot=\"0\"} 0"),
            "{text}"
        );
        let (status, _, text) = call(&panel, request("GET", "/api/usage", None, &[])).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(json(&text)["users"], json("[]"));
    }

    #[tokio::test]
    async fn serves_on_a_real_port() {
        let panel = panel(None, |_| {});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, panel.router.clone()).into_future());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let health: Value = client
            .get(format!("http://{address}/api/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["ok"], true);
    }
}
