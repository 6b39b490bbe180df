//! A user's latest ComfyUI outputs for the panel's thumbnails: the newest images under
//! `<volume>/output/<user>`, listed and served for a valid user of this pod only. A request
//! names a user and a path relative to that user's folder; names are checked segment by segment
//! and the resolved file must still lie inside the folder (no `..`, no symlink out), and only
//! images are served (L12, L16).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio_util::io::ReaderStream;

use super::api_error::ApiError;
use super::app_state::AppState;
use crate::user::UserName;

/// How many images the panel shows.
pub const LATEST: usize = 12;

/// How deep under the user's folder images are looked for (ComfyUI's `filename_prefix` may
/// name subfolders, `2026-05/portrait`).
const MAX_DEPTH: usize = 4;

const IMAGE_TYPES: [(&str, &str); 5] = [
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("webp", "image/webp"),
    ("gif", "image/gif"),
];

/// One image of a user's output folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputImage {
    /// Relative to the user's output folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub modified_ms: u64,
}

/// A user's newest images.
#[derive(Debug, Serialize)]
pub struct OutputList {
    pub user: String,
    /// Newest first, at most [`LATEST`]; each is served at `/api/outputs/<user>/<path>`.
    pub images: Vec<OutputImage>,
}

/// Why an output file is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputRefusal {
    #[error("`{0}` is not a plain file name inside the user's output folder")]
    BadSegment(String),
    #[error("`{0}` is not an image (png, jpg, jpeg, webp, gif)")]
    NotAnImage(String),
    #[error("`{0}` is not in the user's output folder")]
    Missing(String),
    #[error("`{0}` leads outside the user's output folder")]
    Outside(String),
}

/// The content type of an image file name; `None` for anything else.
pub fn image_type(name: &str) -> Option<&'static str> {
    let extension = Path::new(name).extension()?.to_str()?;
    IMAGE_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map(|(_, content_type)| *content_type)
}

fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && !segment.contains(['\\', '\0'])
        && segment.len() <= 255
}

/// The newest `count` images under `user_dir`, newest first. A folder that does not exist yet
/// holds none.
pub fn latest(user_dir: &Path, count: usize) -> std::io::Result<Vec<OutputImage>> {
    if !user_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut images = Vec::new();
    let walk = walkdir::WalkDir::new(user_dir)
        .max_depth(MAX_DEPTH)
        .follow_links(false)
        .into_iter()
        .filter_entry(|entry| {
            entry.depth() == 0 || plain_segment(&entry.file_name().to_string_lossy())
        });
    for entry in walk {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file()
            || image_type(&entry.file_name().to_string_lossy()).is_none()
        {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(user_dir) else {
            continue;
        };
        let Some(path) = relative
            .iter()
            .map(|part| part.to_str())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join("/"))
        else {
            continue;
        };
        let metadata = entry.metadata().map_err(std::io::Error::other)?;
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        images.push(OutputImage {
            path,
            bytes: metadata.len(),
            modified_ms,
        });
    }
    images.sort_by(|a, b| {
        b.modified_ms
            .cmp(&a.modified_ms)
            .then_with(|| b.path.cmp(&a.path))
    });
    images.truncate(count);
    Ok(images)
}

/// The file `relative` names inside `user_dir`, with its content type, when it is an image that
/// exists there.
pub fn resolve(user_dir: &Path, relative: &str) -> Result<(PathBuf, &'static str), OutputRefusal> {
    if let Some(bad) = relative.split('/').find(|segment| !plain_segment(segment)) {
        return Err(OutputRefusal::BadSegment(bad.to_owned()));
    }
    let content_type =
        image_type(relative).ok_or_else(|| OutputRefusal::NotAnImage(relative.to_owned()))?;
    let missing = || OutputRefusal::Missing(relative.to_owned());
    let root = user_dir.canonicalize().map_err(|_| missing())?;
    let file = root.join(relative).canonicalize().map_err(|_| missing())?;
    if !file.starts_with(&root) {
        return Err(OutputRefusal::Outside(relative.to_owned()));
    }
    if !file.is_file() {
        return Err(missing());
    }
    Ok((file, content_type))
}

/// The user named in a request, when it is a valid name and a user of this pod.
fn known_user(state: &AppState, name: &str) -> Result<UserName, ApiError> {
    let user = UserName::parse(name)
        .map_err(|bad| ApiError::bad_request(bad.to_string(), UserName::RULE))?;
    let users = state.control.status().users.clone();
    if !users.iter().any(|known| known == user.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("`{user}` is not a user of this pod"),
            format!("users: {}", users.join(", ")),
        ));
    }
    Ok(user)
}

#[derive(Debug, Deserialize)]
pub struct OutputQuery {
    user: String,
}

/// `GET /api/outputs?user=<name>`: the user's newest images.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Json<OutputList>, ApiError> {
    let Query(query) = query
        .map_err(|rejection| ApiError::bad_request(rejection.body_text(), "use ?user=<name>"))?;
    let user = known_user(&state, &query.user)?;
    let dir = state.outputs_dir.join(user.as_str());
    let images = tokio::task::spawn_blocking(move || latest(&dir, LATEST))
        .await
        .map_err(|err| ApiError::internal("listing the outputs", &err))?
        .map_err(|err| ApiError::internal("listing the outputs", &err))?;
    Ok(Json(OutputList {
        user: user.to_string(),
        images,
    }))
}

/// `GET /api/outputs/<user>/<path>`: one image of the user's output folder.
pub async fn image(
    State(state): State<AppState>,
    UrlPath((user, relative)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let user = known_user(&state, &user)?;
    let dir = state.outputs_dir.join(user.as_str());
    let (path, content_type) = resolve(&dir, &relative).map_err(|refusal| {
        let status = match refusal {
            OutputRefusal::Missing(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            refusal.to_string(),
            format!("GET /api/outputs?user={user} lists the images that can be fetched"),
        )
    })?;
    let file = tokio::fs::File::open(&path).await.map_err(|err| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("`{relative}` cannot be read: {err}"),
            format!("GET /api/outputs?user={user} lists the images that can be fetched"),
        )
    })?;
    let length = file
        .metadata()
        .await
        .map_err(|err| ApiError::internal("reading an output image", &err))?
        .len();
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (CONTENT_LENGTH, length.to_string()),
            (CACHE_CONTROL, "private, max-age=60".to_owned()),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, age_s: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"\x89PNG").unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn lists_the_newest_images_of_the_folder_only() {
        let volume = tempfile::tempdir().unwrap();
        let alice = volume.path().join("output/alice");
        for i in 0..15_u64 {
            touch(&alice.join(format!("ComfyUI_{i:05}_.png")), 100 - i);
        }
        touch(&alice.join("2026-05/portrait_00001_.webp"), 1);
        touch(&alice.join("notes.txt"), 0);
        touch(&alice.join(".hidden/secret.png"), 0);
        touch(&volume.path().join("output/bob/bobs.png"), 0);
        let images = latest(&alice, LATEST).unwrap();
        assert_eq!(images.len(), LATEST);
        assert_eq!(images[0].path, "2026-05/portrait_00001_.webp");
        assert_eq!(images[1].path, "ComfyUI_00014_.png");
        assert!(images.iter().all(|image| !image.path.contains("bobs")
            && !image.path.contains("secret")
            && !image.path.ends_with(".txt")));
        assert_eq!(
            latest(&volume.path().join("output/carol"), LATEST).unwrap(),
            []
        );
    }

    #[test]
    fn resolves_images_inside_the_folder_and_nothing_else() {
        let volume = tempfile::tempdir().unwrap();
        let alice = volume.path().join("output/alice");
        touch(&alice.join("a.png"), 0);
        touch(&alice.join("day/b.jpg"), 0);
        touch(&volume.path().join("output/bob/b.png"), 0);
        std::fs::write(volume.path().join("secret.png"), b"x").unwrap();
        std::os::unix::fs::symlink(volume.path().join("secret.png"), alice.join("link.png"))
            .unwrap();
        assert_eq!(resolve(&alice, "a.png").unwrap().1, "image/png");
        assert_eq!(resolve(&alice, "day/b.jpg").unwrap().1, "image/jpeg");
        for (relative, refusal) in [
            ("../bob/b.png", OutputRefusal::BadSegment("..".into())),
            ("day/../a.png", OutputRefusal::BadSegment("..".into())),
            ("/etc/passwd", OutputRefusal::BadSegment(String::new())),
            ("a//a.png", OutputRefusal::BadSegment(String::new())),
            (
                "..\\bob\\b.png",
                OutputRefusal::BadSegment("..\\bob\\b.png".into()),
            ),
            ("notes.txt", OutputRefusal::NotAnImage("notes.txt".into())),
            ("nope.png", OutputRefusal::Missing("nope.png".into())),
            ("link.png", OutputRefusal::Outside("link.png".into())),
        ] {
            assert_eq!(resolve(&alice, relative), Err(refusal), "{relative}");
        }
    }
}
