//! Streaming a URL into a file, or through a hash only: the body is copied into blocks of a
//! small reused pool (so the HTTP client reuses its own buffers too), and the sha256 and the
//! size are computed on a writer thread that hashes and writes each block (the body is never
//! held in memory, and hashing runs beside the network). A connection that breaks off is
//! resumed with an HTTP range request where the server allows it, else started again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::http::{Http, HttpError};

/// Bytes hashed and written in one go.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the network and the writer thread.
const BLOCKS_IN_FLIGHT: usize = 8;
/// Written bytes after which their writeback to disk is started.
const WRITEBACK_EVERY: u64 = 64 << 20;

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
    file: Option<File>,
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
        let mut buffer = vec![0; BLOCK];
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
            file: Some(file),
            hasher,
            len,
        })
    }

    /// Drops what was received so far, to start again from the first byte.
    fn reset(&mut self) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
        }
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Hashes and writes blocks until the channel closes, handing each block back for reuse.
    fn consume(
        mut self,
        mut blocks: mpsc::Receiver<Vec<u8>>,
        emptied: std::sync::mpsc::Sender<Vec<u8>>,
    ) -> (Self, io::Result<()>) {
        let mut written_back = self.len;
        while let Some(mut block) = blocks.blocking_recv() {
            if let Some(file) = self.file.as_mut() {
                if let Err(err) = file.write_all(&block) {
                    return (self, Err(err));
                }
                let written = self.len + block.len() as u64;
                if written - written_back >= WRITEBACK_EVERY {
                    start_writeback(file, written_back, written);
                    written_back = written;
                }
            }
            self.hasher.update(&block);
            self.len += block.len() as u64;
            block.clear();
            let _ = emptied.send(block);
        }
        let synced = self.file.as_ref().map_or(Ok(()), File::sync_all);
        (self, synced)
    }

    fn fetched(self) -> Fetched {
        Fetched {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.len,
        }
    }
}

/// Starts writing `from..to` of `file` back to disk without waiting for it, so that the fsync
/// at the end waits only for the tail; the kernel also drops those pages from its cache once
/// written (a 100 GB model folder does not push everything else out). Only a hint.
fn start_writeback(file: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        offset,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
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
        let (blocks, receiver) = mpsc::channel(BLOCKS_IN_FLIGHT);
        let (emptied, pool) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer = tokio::task::spawn_blocking(move || sink.consume(receiver, emptied));
        let mut response = response;
        let mut received = offset;
        let mut broken = None;
        let mut block = Vec::with_capacity(BLOCK);
        let mut writer_failed = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    let mut rest = &chunk[..];
                    while !rest.is_empty() {
                        let take = rest.len().min(BLOCK - block.len());
                        block.extend_from_slice(&rest[..take]);
                        rest = &rest[take..];
                        if block.len() == BLOCK {
                            let next = pool
                                .try_recv()
                                .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
                            if blocks
                                .send(std::mem::replace(&mut block, next))
                                .await
                                .is_err()
                            {
                                writer_failed = true; // its error is reported below
                                break;
                            }
                        }
                    }
                    if writer_failed {
                        break;
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
        if !block.is_empty() && !writer_failed {
            let _ = blocks.send(block).await;
        }
        drop(blocks);
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
        sender.try_send(b"world".to_vec()).unwrap();
        drop(sender);
        let (emptied, returned) = std::sync::mpsc::channel();
        let (sink, written) = sink.consume(receiver, emptied);
        assert_eq!(
            returned.try_recv().unwrap().capacity(),
            5,
            "the block comes back"
        );
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
