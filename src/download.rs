//! Streaming a URL into a file, or through a hash only: the sha256 and the size are computed on
//! a writer thread as the bytes arrive (the body is never held in memory, and hashing runs
//! beside the network), and a connection that breaks off is resumed with an HTTP range request
//! where the server allows it, else started again.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::http::{Http, HttpError};

/// Bytes written to disk in one go.
const WRITE_BUFFER: usize = 1 << 20;
/// Chunks in flight between the network and the writer thread.
const CHUNKS_IN_FLIGHT: usize = 64;

/// What to fetch.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub url: &'a str,
    /// Sent as `Authorization: Bearer <token>` (reqwest drops it on a redirect to another host).
    pub bearer: Option<&'a str>,
}

/// Where the bytes go.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Only hashed and counted.
    Discard,
    /// Appended to this partial file, which is continued when it already holds a prefix.
    File(&'a Path),
}

/// What was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("no space left for {}: {source}", path.display())]
    DiskFull {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DownloadError {
    fn io(path: Option<&Path>, source: io::Error) -> Self {
        let path = path.map_or_else(|| PathBuf::from("(hash only)"), Path::to_owned);
        // ENOSPC, EDQUOT, and EFBIG (a file-size limit) all mean "no room for this file".
        if matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
        ) {
            Self::DiskFull { path, source }
        } else {
            Self::Write { path, source }
        }
    }
}

/// The partial result: the file (if any), the hash of what it holds, and its length.
#[derive(Debug)]
struct Sink {
    file: Option<BufWriter<File>>,
    hasher: Sha256,
    len: u64,
}

impl Sink {
    /// Opens the partial file (none: hash only); what it holds is hashed so the download can
    /// continue it.
    fn open(path: Option<&Path>) -> io::Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                file: None,
                hasher: Sha256::new(),
                len: 0,
            });
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; WRITE_BUFFER];
        let mut len = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            len += read as u64;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher,
            len,
        })
    }

    /// Drops what was received so far, to start again from the first byte.
    fn reset(&mut self) -> io::Result<()> {
        if let Some(writer) = self.file.as_mut() {
            writer.flush()?;
            let file = writer.get_mut();
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
        }
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Hashes and writes chunks until the channel closes.
    fn consume(mut self, mut chunks: mpsc::Receiver<Bytes>) -> (Self, io::Result<()>) {
        while let Some(chunk) = chunks.blocking_recv() {
            if let Some(file) = self.file.as_mut() {
                if let Err(err) = file.write_all(&chunk) {
                    return (self, Err(err));
                }
            }
            self.hasher.update(&chunk);
            self.len += chunk.len() as u64;
        }
        let flushed = self.file.as_mut().map_or(Ok(()), |file| {
            file.flush().and_then(|()| file.get_ref().sync_all())
        });
        (self, flushed)
    }

    fn fetched(self) -> Fetched {
        Fetched {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.len,
        }
    }
}

/// Fetches `source` into `target`, calling `progress` with the bytes held so far. Resumes the
/// partial file and broken connections; gives up after the client's retries without progress.
pub async fn fetch(
    http: &Http,
    source: Source<'_>,
    target: Target<'_>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Fetched, DownloadError> {
    let target_path = match target {
        Target::File(path) => Some(path.to_owned()),
        Target::Discard => None,
    };
    let io_error = |err| DownloadError::io(target_path.as_deref(), err);
    let opened = target_path.clone();
    let mut sink = blocking(move || Sink::open(opened.as_deref()))
        .await
        .map_err(io_error)?;
    let url = source.url;
    let retry = http.retry();
    let mut attempt = 1;
    loop {
        let offset = sink.len;
        progress(offset);
        let response = http
            .send(url, |client| {
                let mut request = client.get(url);
                if offset > 0 {
                    request = request.header(RANGE, format!("bytes={offset}-"));
                }
                if let Some(token) = source.bearer {
                    request = request.header(AUTHORIZATION, format!("Bearer {token}"));
                }
                request
            })
            .await?;
        let status = response.status();
        let continues = match status {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                range_start(response.headers().get(CONTENT_RANGE)) == Some(offset)
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => false,
            status if status.is_success() => false,
            status => {
                return Err(HttpError::Status {
                    url: url.to_owned(),
                    status,
                }
                .into())
            }
        };
        if offset > 0 && !continues {
            // The server ignored or refused the range: start from the first byte.
            sink = blocking(move || sink.reset().map(|()| sink))
                .await
                .map_err(io_error)?;
            if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
                continue;
            }
        }
        let expected = response.content_length().map(|len| sink.len + len);
        let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || sink.consume(receiver));
        let mut response = response;
        let mut received = offset;
        let mut broken = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if chunks.send(chunk).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                    progress(received);
                }
                Ok(None) => break,
                Err(err) => {
                    broken = Some(HttpError::from_reqwest(url, &err));
                    break;
                }
            }
        }
        drop(chunks);
        let (done, written) = writer
            .await
            .map_err(|err| io_error(io::Error::other(err)))?;
        written.map_err(io_error)?;
        sink = done;
        let short = expected.is_some_and(|expected| sink.len < expected);
        if broken.is_none() && !short {
            return Ok(sink.fetched());
        }
        if sink.len > offset {
            attempt = 1; // progress was made: the connection, not the server, is the problem
        }
        if attempt >= retry.attempts {
            return Err(broken
                .unwrap_or_else(|| HttpError::Body {
                    url: url.to_owned(),
                    reason: format!(
                        "the body ended after {} of {} bytes",
                        sink.len,
                        expected.unwrap_or_default()
                    ),
                })
                .into());
        }
        attempt += 1;
        tracing::debug!("{url}: resuming at byte {}", sink.len);
        tokio::time::sleep(retry.delay(attempt)).await;
    }
}

/// The first byte of a `Content-Range: bytes <first>-<last>/<total>` header.
fn range_start(header: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    let text = header?.to_str().ok()?;
    let range = text.strip_prefix("bytes ")?;
    range.split(['-', '/']).next()?.trim().parse().ok()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_the_start_of_a_content_range() {
        let header = |text: &'static str| HeaderValue::from_static(text);
        assert_eq!(range_start(Some(&header("bytes 100-199/200"))), Some(100));
        assert_eq!(range_start(Some(&header("bytes 0-0/*"))), Some(0));
        assert_eq!(range_start(Some(&header("items 1-2/3"))), None);
        assert_eq!(range_start(None), None);
    }

    #[test]
    fn a_partial_file_is_hashed_before_it_is_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.part");
        std::fs::write(&path, b"hello ").unwrap();
        let sink = Sink::open(Some(&path)).unwrap();
        assert_eq!(sink.len, 6);
        let (sender, receiver) = mpsc::channel(4);
        sender.try_send(Bytes::from_static(b"world")).unwrap();
        drop(sender);
        let (sink, written) = sink.consume(receiver);
        written.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(
            sink.fetched(),
            Fetched {
                sha256: hex::encode(Sha256::digest(b"hello world")),
                size: 11
            }
        );
    }

    #[test]
    fn a_full_disk_is_named_as_such() {
        let err = DownloadError::io(
            Some(Path::new("/vol/x.part")),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(err, DownloadError::DiskFull { .. }), "{err:?}");
    }
}
