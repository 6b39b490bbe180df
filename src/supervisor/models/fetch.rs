//! Making one model present: check the file that is there (by its verification record, else
//! by hashing it), else take the volume's lease for it and download it into a partial file
//! beside its destination, check its sha256 (and size), and rename it into place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::lease::{self, Acquired};
use super::{Entry, ModelState, Shared, Transfer};
use crate::download::{self, DownloadError};

/// How often a pod waiting for another pod's download looks again.
const WAIT_POLL: Duration = Duration::from_secs(1);
/// Bytes read at a time when hashing a file that is there.
const HASH_BUFFER: usize = 1 << 20;

/// What a partial file is a partial of; a partial of something else is started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartOf {
    url: String,
    sha256: Option<String>,
}

/// What a check of the file that is there found.
enum Found {
    Present {
        verified: bool,
    },
    Absent,
    /// A file whose content is not the model's (it is replaced by the download).
    Other {
        sha256: String,
    },
}

/// Makes model `index` present (when `download`), or only finds out whether it is.
pub(super) async fn ensure(shared: &Arc<Shared>, index: usize, download: bool) {
    let entry = &shared.entries[index];
    let dest = entry.model.dest.clone();
    match check(shared, entry).await {
        Ok(Found::Present { verified }) => return entry.set(ModelState::Present { verified }),
        Ok(Found::Absent) => {}
        Ok(Found::Other { sha256 }) => tracing::warn!(
            "models/{dest} has sha256 {sha256}, not the manifest's: it is downloaded again"
        ),
        Err(err) => {
            return fail(
                entry,
                format!("cannot read models/{dest}: {err}"),
                "check the volume",
            )
        }
    }
    if !download {
        return entry.set(ModelState::Missing);
    }
    let lease_path = shared.leases.join(format!("{}.lease", key_of(&dest)));
    loop {
        entry.set(ModelState::Queued);
        let slot = shared.http.permit().await;
        let lease = match lease::acquire(&lease_path, &shared.pod) {
            Ok(Acquired::Held(lease)) => lease,
            Ok(Acquired::Busy { holder }) => {
                drop(slot);
                entry.set(ModelState::Waiting { pod: holder });
                tokio::time::sleep(WAIT_POLL).await;
                continue;
            }
            Err(err) => {
                return fail(
                    entry,
                    format!(
                        "cannot take the download lease {}: {err}",
                        lease_path.display()
                    ),
                    "check that the volume is mounted and writable",
                )
            }
        };
        // Another pod may have finished it while this one waited.
        match check(shared, entry).await {
            Ok(Found::Present { verified }) => return entry.set(ModelState::Present { verified }),
            Ok(_) => {}
            Err(err) => {
                return fail(
                    entry,
                    format!("cannot read models/{dest}: {err}"),
                    "check the volume",
                )
            }
        }
        let result = fetch(shared, entry).await;
        *entry.transfer() = None;
        drop(lease);
        drop(slot);
        match result {
            Ok(verified) => {
                tracing::info!("models/{dest} is in place");
                entry.set(ModelState::Present { verified });
            }
            Err((reason, hint)) => fail(entry, reason, &hint),
        }
        return;
    }
}

fn fail(entry: &Entry, reason: String, hint: &str) {
    tracing::error!("{reason}");
    entry.set(ModelState::Failed {
        reason,
        hint: hint.to_owned(),
    });
}

/// A file name for a model's lease, readable and unique per destination.
fn key_of(dest: &str) -> String {
    let name = dest.rsplit('/').next().unwrap_or(dest);
    let hash = hex::encode(&Sha256::digest(dest.as_bytes())[..6]);
    format!("{name}-{hash}")
}

fn final_path(shared: &Shared, entry: &Entry) -> PathBuf {
    shared.folder.join(&entry.model.dest)
}

/// The partial file and its note, hidden beside the destination (same filesystem, so the
/// rename is atomic; ComfyUI lists no `.podstack-part` file).
fn partial_paths(path: &Path) -> (PathBuf, PathBuf) {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = path.with_file_name(format!(".{name}.podstack-part"));
    let note = path.with_file_name(format!(".{name}.podstack-part.json"));
    (part, note)
}

/// Whether the model's file is there and is the model.
async fn check(shared: &Arc<Shared>, entry: &Entry) -> io::Result<Found> {
    let path = final_path(shared, entry);
    let Ok(meta) = fs::metadata(&path) else {
        return Ok(Found::Absent);
    };
    let Some(expected) = entry.model.sha256.clone() else {
        return Ok(Found::Present { verified: false });
    };
    if shared.verified.holds(&entry.model.dest, &path, &expected) {
        return Ok(Found::Present { verified: true });
    }
    tracing::info!(
        "models/{} has no verification record (or changed): hashing it",
        entry.model.dest
    );
    let total = meta.len();
    entry.set(ModelState::Checking { bytes: 0, total });
    let read = Arc::new(AtomicU64::new(0));
    let hashing = {
        let path = path.clone();
        let read = Arc::clone(&read);
        tokio::task::spawn_blocking(move || hash_file(&path, &read))
    };
    tokio::pin!(hashing);
    let sha256 = loop {
        tokio::select! {
            done = &mut hashing => break done.map_err(io::Error::other)??,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                entry.set(ModelState::Checking { bytes: read.load(Ordering::Relaxed), total });
            }
        }
    };
    if sha256 == expected {
        shared.verified.record(&entry.model.dest, &path, &sha256)?;
        Ok(Found::Present { verified: true })
    } else {
        Ok(Found::Other { sha256 })
    }
}

fn hash_file(path: &Path, read: &AtomicU64) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; HASH_BUFFER];
    loop {
        let got = file.read(&mut buffer)?;
        if got == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..got]);
        read.fetch_add(got as u64, Ordering::Relaxed);
    }
}

/// Downloads the model into place; whether it was checked against a sha256. The error is a
/// reason and a hint.
async fn fetch(shared: &Shared, entry: &Entry) -> Result<bool, (String, String)> {
    let model = &entry.model;
    let dest = &model.dest;
    let path = final_path(shared, entry);
    let (part, note) = partial_paths(&path);
    let io_failure = |what: &str, err: io::Error| {
        (
            format!("models/{dest}: cannot {what}: {err}"),
            "check that the volume is mounted and writable".to_owned(),
        )
    };
    let dir = path.parent().unwrap_or(&shared.folder).to_owned();
    fs::create_dir_all(&dir).map_err(|err| io_failure("create its folder", err))?;
    let part_of = PartOf {
        url: model.url.clone(),
        sha256: model.sha256.clone(),
    };
    let same = fs::read(&note)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<PartOf>(&bytes).ok())
        .is_some_and(|noted| noted == part_of);
    if !same {
        let _ = fs::remove_file(&part);
    }
    let have = fs::metadata(&part).map_or(0, |meta| meta.len());
    // A known size is checked before anything is written, the note included: on a volume that
    // another download is filling, the answer is "full", not a failed note.
    if let Some(size) = model.size {
        let free = free_space(&dir).unwrap_or(u64::MAX);
        let needed = size.saturating_sub(have);
        if free < needed {
            return Err((
                format!(
                    "the volume is full for models/{dest}: it needs {} more, {} is free",
                    bytes(needed),
                    bytes(free)
                ),
                "free space on the volume or make it larger, then POST /api/models/fetch"
                    .to_owned(),
            ));
        }
    }
    if !same {
        let note_text = serde_json::to_vec(&part_of)
            .map_err(|err| io_failure("note the download", io::Error::other(err)))?;
        fs::write(&note, note_text).map_err(|err| io_failure("note the download", err))?;
    }
    if have > 0 {
        tracing::info!("models/{dest}: resuming at byte {have}");
    }
    let token = model
        .auth_env
        .as_ref()
        .and_then(|name| std::env::var(name).ok())
        .filter(|token| !token.is_empty());
    let counter = Arc::new(AtomicU64::new(have));
    *entry.transfer() = Some(Transfer {
        started: Instant::now(),
        from: have,
        bytes: Arc::clone(&counter),
        total: model.size,
    });
    entry.set(ModelState::Downloading {
        bytes: have,
        total: model.size,
        bytes_per_s: 0,
    });
    tracing::info!("models/{dest}: downloading {}", model.url);
    let fetched = download::fetch(
        &shared.http,
        download::Source {
            url: &model.url,
            bearer: token.as_deref(),
        },
        download::Target::File(&part),
        &|bytes| counter.store(bytes, Ordering::Relaxed),
    )
    .await
    .map_err(|err| {
        failure(
            dest,
            &model.url,
            model.auth_env.as_deref(),
            token.is_some(),
            &err,
        )
    })?;
    let wrong = match (&model.sha256, model.size) {
        (Some(expected), _) if *expected != fetched.sha256 => Some(format!(
            "{} served a file with sha256 {}, the manifest pins {expected}",
            model.url, fetched.sha256
        )),
        (None, Some(size)) if size != fetched.size => Some(format!(
            "{} served {} bytes, the manifest says {size}",
            model.url, fetched.size
        )),
        _ => None,
    };
    if let Some(wrong) = wrong {
        let _ = fs::remove_file(&part);
        let _ = fs::remove_file(&note);
        return Err((
            format!("models/{dest}: {wrong}; the download was removed"),
            "the file behind the URL changed, or the manifest is wrong: check the model's page before changing the pin".to_owned(),
        ));
    }
    fs::rename(&part, &path).map_err(|err| io_failure("move the download into place", err))?;
    let _ = fs::remove_file(&note);
    if let Ok(folder) = fs::File::open(&dir) {
        let _ = folder.sync_all();
    }
    match &model.sha256 {
        Some(sha256) => {
            shared
                .verified
                .record(dest, &path, sha256)
                .map_err(|err| io_failure("record its verification", err))?;
            Ok(true)
        }
        None => {
            tracing::warn!(
                "models/{dest} is not pinned: it has sha256 {}; add it to the manifest",
                fetched.sha256
            );
            Ok(false)
        }
    }
}

/// A failed download in plain words, with what to do.
fn failure(
    dest: &str,
    url: &str,
    auth_env: Option<&str>,
    has_token: bool,
    err: &DownloadError,
) -> (String, String) {
    let reason = format!("models/{dest}: {err}");
    let hint = match err {
        DownloadError::DiskFull { .. } => {
            "the volume is full: free space or make it larger, then POST /api/models/fetch (the partial download is kept and resumes)".to_owned()
        }
        DownloadError::Write { .. } => "check that the volume is mounted and writable".to_owned(),
        DownloadError::Http(http) => match (http.status(), auth_env) {
            (Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), Some(var)) if !has_token => {
                format!("the host wants a token: set {var} in the pod's environment")
            }
            (Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), Some(var)) => {
                format!("the host refused the token in {var}: check that it may read this file")
            }
            (Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), None) => {
                "the host wants a token: name the variable that holds it as auth_env (e.g. HF_TOKEN)".to_owned()
            }
            (Some(StatusCode::NOT_FOUND), _) => format!("{url} is gone: check the model's page for its address"),
            _ if http.is_unreachable() => {
                "the pod cannot reach the host: check its network, then POST /api/models/fetch".to_owned()
            }
            _ => "POST /api/models/fetch tries again; the partial download resumes".to_owned(),
        },
    };
    (reason, hint)
}

/// Bytes free to this process on the filesystem holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// `1.2 GiB`, `300.0 MiB`, `12 bytes`.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)] // for people
    let mut value = count as f64;
    if value < 1024.0 {
        return format!("{count} bytes");
    }
    let mut unit = "bytes";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_are_hidden_beside_their_model() {
        let (part, note) =
            partial_paths(Path::new("/workspace/models/checkpoints/sdxl.safetensors"));
        assert_eq!(
            part,
            Path::new("/workspace/models/checkpoints/.sdxl.safetensors.podstack-part")
        );
        assert_eq!(
            note,
            Path::new("/workspace/models/checkpoints/.sdxl.safetensors.podstack-part.json")
        );
        assert!(key_of("checkpoints/sdxl.safetensors").starts_with("sdxl.safetensors-"));
        assert_ne!(key_of("a/x.bin"), key_of("b/x.bin"));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(bytes(12), "12 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(6_938_078_334), "6.5 GiB");
    }

    #[test]
    fn a_refused_token_names_the_variable() {
        let err = DownloadError::Http(crate::http::HttpError::Status {
            url: "https://huggingface.co/x".to_owned(),
            status: StatusCode::UNAUTHORIZED,
        });
        let (reason, hint) = failure(
            "checkpoints/x",
            "https://huggingface.co/x",
            Some("HF_TOKEN"),
            false,
            &err,
        );
        assert_eq!(
            reason,
            "models/checkpoints/x: https://huggingface.co/x answered 401 Unauthorized"
        );
        assert_eq!(
            hint,
            "the host wants a token: set HF_TOKEN in the pod's environment"
        );
    }
}
