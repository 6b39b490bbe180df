//! `podstack wheelhouse STACK DIR`: every file the lock pins (the Python packages of both pip
//! installs, and the wheels by URL), downloaded into one folder and checked against its sha256,
//! with a `pip.conf` that makes pip install from that folder alone. An image build then needs
//! no package index (`--build-arg PODSTACK_PACKAGES=wheelhouse`, see the Dockerfile).

use std::path::{Path, PathBuf};

use futures_util::future::join_all;

use crate::download::{self, DownloadError};
use crate::http::Http;
use crate::lock::{Cache, Endpoints, ItemError, Lockfile, Progress};
use crate::manifest::Manifest;

/// The pip configuration the Dockerfile points pip at (`PIP_CONFIG_FILE`) in a wheelhouse build.
pub const PIP_CONF: &str = "pip.conf";
/// Where the Dockerfile mounts the wheelhouse.
const MOUNTED_AT: &str = "/wheelhouse";

/// What a wheelhouse run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filled {
    /// Files in the wheelhouse, checked.
    pub files: usize,
    /// Of those, downloaded in this run.
    pub downloaded: usize,
    pub bytes: u64,
}

/// One file to have: where it comes from and what it must hash to.
#[derive(Debug, Clone)]
struct Wanted {
    file: String,
    sha256: String,
    /// Where to find the URL: a locked package (looked up in its index) or a wheel URL.
    origin: Origin,
}

#[derive(Debug, Clone)]
enum Origin {
    Package {
        name: String,
        version: String,
        layer: crate::lock::Layer,
    },
    Url(String),
}

/// Fills `dir` with every locked file of `manifest` (already pinned from `lock`).
pub async fn fill(
    http: &Http,
    cache: &Cache,
    endpoints: &Endpoints,
    manifest: &Manifest,
    lock: &Lockfile,
    dir: &Path,
    progress: &Progress,
) -> Result<Filled, Vec<ItemError>> {
    let mut wanted = Vec::new();
    if lock.python_is_current(manifest) {
        for package in &lock.packages {
            for file in &package.files {
                wanted.push(Wanted {
                    file: file.file.clone(),
                    sha256: file.sha256.clone(),
                    origin: Origin::Package {
                        name: package.name.clone(),
                        version: package.version.clone(),
                        layer: package.layer,
                    },
                });
            }
        }
    }
    for wheel in &manifest.wheels {
        if let Some(sha256) = &wheel.sha256 {
            wanted.push(Wanted {
                file: wheel.file_name().to_owned(),
                sha256: sha256.clone(),
                origin: Origin::Url(wheel.url.clone()),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|err| {
        vec![ItemError {
            item: dir.display().to_string(),
            message: format!("cannot create the folder: {err}"),
            hint: "give a folder you can write to".to_owned(),
        }]
    })?;
    let sources = endpoints.sources(manifest);
    let results = join_all(wanted.iter().map(|item| {
        let sources = &sources;
        async move {
            let url = match &item.origin {
                Origin::Url(url) => url.clone(),
                Origin::Package {
                    name,
                    version,
                    layer,
                } => {
                    let index = sources.of_layer(*layer);
                    let version = version.parse().map_err(|err| ItemError {
                        item: item.file.clone(),
                        message: format!("the lock's version `{version}` does not parse: {err}"),
                        hint: "run `podstack lock` again".to_owned(),
                    })?;
                    let release =
                        index
                            .release(http, cache, name, &version)
                            .await
                            .map_err(|err| ItemError {
                                item: item.file.clone(),
                                message: err.to_string(),
                                hint: format!(
                                    "{} must be reachable to fill the wheelhouse",
                                    index.label()
                                ),
                            })?;
                    release
                        .files
                        .into_iter()
                        .find(|file| file.filename == item.file)
                        .map(|file| file.url)
                        .ok_or_else(|| ItemError {
                            item: item.file.clone(),
                            message: format!(
                                "{} no longer lists this file of {name} {version}",
                                index.label()
                            ),
                            hint: format!("run `podstack lock --update {name}`"),
                        })?
                }
            };
            have(http, &url, item, dir, progress).await
        }
    }))
    .await;
    let mut filled = Filled::default();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((downloaded, bytes)) => {
                filled.files += 1;
                filled.downloaded += usize::from(downloaded);
                filled.bytes += bytes;
            }
            Err(err) => errors.push(err),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let conf = format!(
        "# Written by `podstack wheelhouse`. An image build with\n\
         # --build-arg PODSTACK_PACKAGES=wheelhouse mounts this folder at {MOUNTED_AT}, and pip\n\
         # installs from it alone.\n\
         [global]\nno-index = true\nfind-links = {MOUNTED_AT}\n"
    );
    std::fs::write(dir.join(PIP_CONF), conf).map_err(|err| {
        vec![ItemError {
            item: dir.join(PIP_CONF).display().to_string(),
            message: err.to_string(),
            hint: "give a folder you can write to".to_owned(),
        }]
    })?;
    Ok(filled)
}

/// Makes sure `dir/<file>` holds the file with the right hash: kept when it does, else
/// downloaded into a partial file, checked, and renamed into place. Whether it was downloaded,
/// and its size.
async fn have(
    http: &Http,
    url: &str,
    item: &Wanted,
    dir: &Path,
    progress: &Progress,
) -> Result<(bool, u64), ItemError> {
    let path = dir.join(&item.file);
    let fail = |message: String, hint: &str| ItemError {
        item: item.file.clone(),
        message,
        hint: hint.to_owned(),
    };
    if let Ok(found) = hash_file(path.clone()).await {
        if found.0 == item.sha256 {
            return Ok((false, found.1));
        }
    }
    let part: PathBuf = dir.join(format!(".{}.part", item.file));
    let _permit = http.permit().await;
    let bar = progress.transfer(&item.file, None);
    let fetched = download::fetch(
        http,
        download::Source { url, bearer: None },
        download::Target::File(&part),
        &|bytes| bar.set(bytes),
    )
    .await
    .map_err(|err| {
        let hint = match &err {
            DownloadError::DiskFull { .. } => {
                "free space on the disk, then run it again (it resumes)"
            }
            _ => "run it again; a partial download is resumed",
        };
        fail(format!("{url}: {err}"), hint)
    })?;
    if fetched.sha256 != item.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(fail(
            format!(
                "{url} served a file with sha256 {}, the lock says {}; it was not kept",
                fetched.sha256, item.sha256
            ),
            "the file behind the URL changed since the lock was made: find out why before `podstack lock --update` accepts it",
        ));
    }
    std::fs::rename(&part, &path).map_err(|err| {
        fail(
            format!("cannot move it into place: {err}"),
            "check the folder",
        )
    })?;
    progress.line(format!("downloaded {} ({} bytes)", item.file, fetched.size));
    Ok((true, fetched.size))
}

/// The sha256 and size of a file.
async fn hash_file(path: PathBuf) -> std::io::Result<(String, u64)> {
    tokio::task::spawn_blocking(move || {
        use sha2::{Digest as _, Sha256};
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)?;
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await
    .map_err(std::io::Error::other)?
}
