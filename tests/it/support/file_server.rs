//! A small HTTP/1.1 file server for tests, on a free port of 127.0.0.1: byte ranges, redirects,
//! 404s, a connection dropped part-way, a slow body, and a log of every request, so a test can
//! say exactly what a download asked for.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a path is served.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200, or 206 for a `Range: bytes=N-` request.
    Serve,
    /// The first `times` answers stop after `after` body bytes and close the connection.
    Drop { after: usize, times: usize },
    /// 302 to another path.
    Redirect(String),
    /// At most this many bytes a second.
    Slow { bytes_per_s: usize },
}

#[derive(Debug)]
struct Route {
    body: Arc<Vec<u8>>,
    behaviour: Behaviour,
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes written for it.
    pub sent: usize,
}

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<String, Route>,
    seen: Vec<Seen>,
}

/// The server; it runs until the test process ends.
#[derive(Debug, Clone)]
pub struct FileServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FileServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { port, state }
    }

    pub fn route(&self, path: &str, body: Vec<u8>, behaviour: Behaviour) -> &Self {
        self.state.lock().expect("state").routes.insert(
            path.to_owned(),
            Route {
                body: Arc::new(body),
                behaviour,
            },
        );
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("state").seen.clone()
    }

    /// Body bytes served for `path`, over every request.
    pub fn sent(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|seen| seen.path == path)
            .map(|seen| seen.sent)
            .sum()
    }
}

/// `bytes=N-`, `bytes=-N` (the last N) or `bytes=A-B` of a body of `len` bytes, as a
/// half-open span; `None` when it does not fit (the whole body is sent).
fn byte_range(range: &str, len: usize) -> Option<(usize, usize)> {
    let (first, last) = range.strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = match (first.parse::<usize>().ok(), last.parse::<usize>().ok()) {
        (Some(start), None) => (start, len),
        (None, Some(suffix)) => (len.saturating_sub(suffix), len),
        (Some(start), Some(last)) => (start, (last + 1).min(len)),
        (None, None) => return None,
    };
    (start < end).then_some((start, end))
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let route = {
        let mut state = state.lock().expect("state");
        let found = state.routes.get_mut(&path).map(|route| {
            let behaviour = route.behaviour.clone();
            if let Behaviour::Drop { times, .. } = &mut route.behaviour {
                *times = times.saturating_sub(1);
            }
            (Arc::clone(&route.body), behaviour)
        });
        found
    };
    let mut stream = stream;
    let (status, sent) = match route {
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            (404, 0)
        }
        Some((_, Behaviour::Redirect(to))) => {
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            (302, 0)
        }
        Some((body, behaviour)) => {
            let span = range
                .as_deref()
                .and_then(|range| byte_range(range, body.len()));
            let (status, head, from, to) = match span {
                Some((start, end)) => (
                    206,
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        end - 1,
                        body.len(),
                        end - start
                    ),
                    start,
                    end,
                ),
                None => (
                    200,
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                        body.len()
                    ),
                    0,
                    body.len(),
                ),
            };
            let _ = stream.write_all(head.as_bytes());
            let rest = if method == "HEAD" {
                &body[..0]
            } else {
                &body[from..to]
            };
            let sent = match behaviour {
                Behaviour::Drop { after, times } if times > 0 => {
                    let cut = after.min(rest.len());
                    let _ = stream.write_all(&rest[..cut]);
                    let _ = stream.flush();
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    cut
                }
                Behaviour::Slow { bytes_per_s } => {
                    let chunk = (bytes_per_s / 20).max(1);
                    let mut sent = 0;
                    for piece in rest.chunks(chunk) {
                        if stream.write_all(piece).is_err() {
                            break;
                        }
                        sent += piece.len();
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    sent
                }
                _ => {
                    let _ = stream.write_all(rest);
                    rest.len()
                }
            };
            (status, sent)
        }
    };
    state.lock().expect("state").seen.push(Seen {
        path,
        range,
        status,
        sent,
    });
}
