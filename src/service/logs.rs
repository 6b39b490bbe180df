//! The log book of every supervised service (ComfyUI, JupyterLab, the sync) and of the
//! supervisor itself: every line one of them prints goes to a size-rotated
//! file under `<volume>/.podstack/logs/<pod>/<service>.log`, to a bounded in-memory ring per
//! service that the API pages through with stable cursors, and to a broadcast for live streams.
//! A line is stored once and shared (`Arc`) by the ring, the broadcast and every reader, so a
//! hundred live readers of a full ring cost a hundred lists of pointers, not a hundred rings.
//!
//! A cursor is given once, in order, across all services: a line keeps its cursor for good, so
//! `after=<cursor>` always means "what came after that line", and a reader learns when lines it
//! has not seen were dropped from the ring.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::broadcast;

use super::clock::now_ms;

/// The service name of the supervisor's own log.
pub const SUPERVISOR: &str = "supervisor";

/// Longest line kept; longer ones are cut (a progress bar without newlines, binary noise).
const MAX_LINE_BYTES: usize = 8 * 1024;

/// One line of a service's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub cursor: u64,
    pub service: Arc<str>,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub text: Box<str>,
}

/// A line as the ring, the broadcast and the readers share it.
pub type SharedLine = Arc<LogLine>;

/// Lines newer than a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogPage {
    pub lines: Vec<SharedLine>,
    /// Pass this as `after` next time.
    pub next: u64,
    /// Lines after the requested cursor fell out of the ring before they were read.
    pub dropped: bool,
}

/// Sizes of the ring and of the log files.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    pub ring_lines: usize,
    pub file_bytes: u64,
    /// Rotated files kept beside the current one (`.1` is the newest).
    pub rotated_files: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            ring_lines: 5000,
            file_bytes: 5 * 1024 * 1024,
            rotated_files: 3,
        }
    }
}

/// Every service's log.
#[derive(Debug)]
pub struct LogBook {
    dir: Option<PathBuf>,
    limits: LogLimits,
    echo: bool,
    inner: Mutex<Inner>,
    live: broadcast::Sender<SharedLine>,
}

#[derive(Debug, Default)]
struct Inner {
    last_cursor: u64,
    services: BTreeMap<Arc<str>, ServiceLog>,
}

#[derive(Debug)]
struct ServiceLog {
    name: Arc<str>,
    ring: VecDeque<SharedLine>,
    /// Cursor of the newest line evicted from the ring; 0 when none was.
    evicted_through: u64,
    file: Option<RotatingFile>,
}

impl LogBook {
    /// Logs kept in memory, and in files under `dir` when given. With `echo`, every line is
    /// also written to the supervisor's stderr as `[service] text` (the pod's own log).
    pub fn new(dir: Option<PathBuf>, limits: LogLimits, echo: bool) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            dir,
            limits,
            echo,
            inner: Mutex::default(),
            live,
        }
    }

    /// Appends one line to `service`'s log and returns it with its cursor.
    pub fn push(&self, service: &str, text: &str) -> SharedLine {
        let text = truncate(text);
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        inner.last_cursor += 1;
        let cursor = inner.last_cursor;
        let log = inner
            .services
            .entry(Arc::from(service))
            .or_insert_with_key(|name| ServiceLog {
                name: Arc::clone(name),
                ring: VecDeque::new(),
                evicted_through: 0,
                file: self.dir.as_deref().and_then(|dir| {
                    RotatingFile::open(dir, service, self.limits)
                        .map_err(|err| {
                            eprintln!(
                                "[{SUPERVISOR}] cannot write the {service} log in {}: {err}",
                                dir.display()
                            );
                        })
                        .ok()
                }),
            });
        let line = Arc::new(LogLine {
            cursor,
            service: Arc::clone(&log.name),
            time_ms: now_ms(),
            text: text.into(),
        });
        if let Some(file) = &mut log.file {
            if let Err(err) = file.write_line(&utc_timestamp(line.time_ms), text) {
                eprintln!("[{SUPERVISOR}] cannot write the {service} log file: {err}");
                log.file = None;
            }
        }
        if log.ring.len() == self.limits.ring_lines {
            if let Some(old) = log.ring.pop_front() {
                log.evicted_through = old.cursor;
            }
        }
        log.ring.push_back(Arc::clone(&line));
        // Sent under the lock, so live readers get lines in cursor order.
        let _ = self.live.send(Arc::clone(&line));
        drop(guard);
        if self.echo {
            eprintln!("[{service}] {text}");
        }
        line
    }

    /// Lines after `after` (0: from the start), of one service or of all, oldest first.
    pub fn after(&self, service: Option<&str>, after: u64) -> LogPage {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A cursor from before a restart of the supervisor: everything is new to that reader.
        let restarted = after > inner.last_cursor;
        let after = if restarted { 0 } else { after };
        let mut dropped = restarted;
        let mut lines = Vec::new();
        for (name, log) in &inner.services {
            if service.is_some_and(|wanted| wanted != &**name) {
                continue;
            }
            dropped |= after < log.evicted_through;
            let start = log.ring.partition_point(|line| line.cursor <= after);
            lines.extend(log.ring.range(start..).cloned());
        }
        lines.sort_by_key(|line| line.cursor);
        let next = lines.last().map_or(after, |line| line.cursor);
        LogPage {
            lines,
            next,
            dropped,
        }
    }

    /// The service's log files on the volume that exist, oldest first (`.3`, `.2`, `.1`, then
    /// the current one); none when the log book keeps no files.
    pub fn files(&self, service: &str) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let current = dir.join(format!("{service}.log"));
        (1..=self.limits.rotated_files)
            .rev()
            .map(|n| dir.join(format!("{service}.log.{n}")))
            .chain([current])
            .filter(|path| path.is_file())
            .collect()
    }

    /// Every line pushed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SharedLine> {
        self.live.subscribe()
    }
}

/// Reads a child's output and pushes it line by line into `service`'s log, handing each line
/// to `on_line` as well. A carriage return ends a line too, so progress bars show up as they
/// move. Returns when the pipe closes.
pub async fn pump_lines(
    mut pipe: impl AsyncRead + Unpin,
    book: Arc<LogBook>,
    service: &'static str,
    mut on_line: impl FnMut(SharedLine),
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0_u8; 8192];
    let mut after_cr = false;
    loop {
        let read = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        for &byte in &chunk[..read] {
            match byte {
                b'\n' if after_cr => after_cr = false,
                b'\n' | b'\r' => {
                    after_cr = byte == b'\r';
                    on_line(book.push(service, &String::from_utf8_lossy(&pending)));
                    pending.clear();
                }
                _ => {
                    after_cr = false;
                    if pending.len() < MAX_LINE_BYTES {
                        pending.push(byte);
                    }
                }
            }
        }
    }
    if !pending.is_empty() {
        on_line(book.push(service, &String::from_utf8_lossy(&pending)));
    }
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_LINE_BYTES {
        return text;
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `2025-10-12T09:30:00.123Z` for milliseconds since the epoch.
pub fn utc_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// A log file that moves aside to `.1`, `.2`, ... when it grows past its limit.
#[derive(Debug)]
struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
}

impl RotatingFile {
    fn open(dir: &Path, service: &str, limits: LogLimits) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{service}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            size,
            limits,
        })
    }

    fn write_line(&mut self, timestamp: &str, text: &str) -> io::Result<()> {
        let line = format!("{timestamp} {text}\n");
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.limits.file_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..self.limits.rotated_files).rev() {
            let from = numbered(n);
            if from.exists() {
                fs::rename(&from, numbered(n + 1))?;
            }
        }
        if self.limits.rotated_files > 0 {
            fs::rename(&self.path, numbered(1))?;
        } else {
            fs::remove_file(&self.path)?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Lets `tracing` write the supervisor's own messages into its log: one writer per event,
/// whose lines are pushed when it is dropped.
#[derive(Debug, Clone)]
pub struct SupervisorWriter(pub Arc<LogBook>);

/// The buffer of one `tracing` event.
#[derive(Debug)]
pub struct EventBuffer {
    book: Arc<LogBook>,
    bytes: Vec<u8>,
}

impl io::Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.bytes);
        for line in text.lines() {
            // `tracing` right-aligns the level (" INFO"): no leading blank in the log.
            self.book.push(SUPERVISOR, line.trim_start());
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SupervisorWriter {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer {
            book: Arc::clone(&self.0),
            bytes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(ring_lines: usize) -> LogBook {
        LogBook::new(
            None,
            LogLimits {
                ring_lines,
                ..LogLimits::default()
            },
            false,
        )
    }

    #[test]
    fn cursors_are_stable_and_after_returns_newer_lines() {
        let book = book(10);
        let first = book.push("comfyui", "one");
        book.push("jupyter", "other");
        book.push("comfyui", "two");
        let page = book.after(Some("comfyui"), first.cursor);
        assert_eq!(
            page.lines.iter().map(|l| &*l.text).collect::<Vec<_>>(),
            ["two"]
        );
        assert_eq!(page.next, 3);
        assert!(!page.dropped);
        let all = book.after(None, 0);
        assert_eq!(
            all.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let nothing = book.after(None, 3);
        assert!(nothing.lines.is_empty());
        assert_eq!(nothing.next, 3);
    }

    #[test]
    fn says_when_unread_lines_were_dropped_from_the_ring() {
        let book = book(2);
        for text in ["a", "b", "c", "d"] {
            book.push("comfyui", text);
        }
        let page = book.after(Some("comfyui"), 1);
        assert!(page.dropped);
        assert_eq!(
            page.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(!book.after(Some("comfyui"), 2).dropped);
    }

    #[test]
    fn files_rotate_by_size_and_keep_a_few() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(
            Some(dir.path().to_owned()),
            LogLimits {
                ring_lines: 10,
                file_bytes: 100,
                rotated_files: 2,
            },
            false,
        );
        for n in 0..20 {
            book.push("comfyui", &format!("line {n:02} with some padding text"));
        }
        let file = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(file("comfyui.log").ends_with("line 19 with some padding text\n"));
        // About 60 bytes a line with its timestamp: one line a file under a 100-byte limit.
        assert!(file("comfyui.log.1").contains("line 18"));
        assert!(file("comfyui.log.2").contains("line 17"));
        assert!(!dir.path().join("comfyui.log.3").exists());
    }

    #[tokio::test]
    async fn pumps_lines_split_on_newlines_and_carriage_returns() {
        let book = Arc::new(book(100));
        let input: &[u8] = b"Starting server\n\nTo see the GUI\r\n 10%\r 50%\rtail";
        let mut seen = Vec::new();
        pump_lines(input, Arc::clone(&book), "comfyui", |line| {
            seen.push(line.text.to_string())
        })
        .await;
        assert_eq!(
            seen,
            [
                "Starting server",
                "",
                "To see the GUI",
                " 10%",
                " 50%",
                "tail"
            ]
        );
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(1_760_261_400_123), "2025-10-12T09:30:00.123Z");
        assert_eq!(utc_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
