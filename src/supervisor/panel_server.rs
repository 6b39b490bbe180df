//! The control panel's HTTP server: the API's router served over HTTP/1 connections that cannot
//! pile up. A connection that sends no complete request head within [`ConnectionLimits::idle`]
//! (idle between keep-alive requests, or half-sent) is closed, and at most
//! [`ConnectionLimits::max`] are open at once: one more closes the oldest connection that has
//! no request in progress, so `/api/health` and the panel keep answering while idle or
//! half-sent sockets crowd in. Live streams hold a request open and are bounded by their own
//! slots (`stream_slots`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tower::ServiceExt as _;

/// File descriptors kept free for everything else the supervisor opens (logs, pipes, rclone).
const SPARE_FILES: usize = 128;

/// How many connections, and how long one may sit without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max: usize,
    pub idle: Duration,
}

impl ConnectionLimits {
    /// 512 connections (fewer when the open-file limit is low), 10 s to send a request head.
    pub fn for_this_process() -> Self {
        let max = open_file_limit().map_or(512, |files| files.saturating_sub(SPARE_FILES));
        Self {
            max: max.clamp(16, 512),
            idle: Duration::from_secs(10),
        }
    }
}

/// The soft `Max open files` of this process, from /proc/self/limits.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One open connection: how many requests it is serving, and how to close it.
#[derive(Debug)]
struct Open {
    busy: Arc<AtomicUsize>,
    task: AbortHandle,
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    open: BTreeMap<u64, Open>,
}

impl Connections {
    /// Closes the oldest connection with no request in progress; false when every one is busy.
    fn close_oldest_idle(&mut self) -> bool {
        let idle = self
            .open
            .iter()
            .find(|(_, open)| open.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(open) => {
                open.task.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then closes every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Mutex::new(Connections::default()));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    tracing::warn!("the panel could not accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut open = connections.lock().unwrap_or_else(PoisonError::into_inner);
        if open.open.len() >= limits.max && !open.close_oldest_idle() {
            tracing::warn!(
                "the panel has {} connections, all busy: refusing one more",
                limits.max
            );
            continue;
        }
        let id = open.next_id;
        open.next_id += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(connection(
            stream,
            router.clone(),
            limits.idle,
            Arc::clone(&busy),
            Arc::clone(&connections),
            id,
        ));
        open.open.insert(
            id,
            Open {
                busy,
                task: task.abort_handle(),
            },
        );
    }
    let open = std::mem::take(
        &mut connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open,
    );
    for connection in open.into_values() {
        connection.task.abort();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    idle: Duration,
    busy: Arc<AtomicUsize>,
    connections: Arc<Mutex<Connections>>,
    id: u64,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        let guard = Busy::new(Arc::clone(&busy));
        async move {
            let response = router.oneshot(request.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| Body::new(BusyBody { body, _busy: guard })),
            )
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        tracing::debug!("a panel connection ended: {err}");
    }
    connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .open
        .remove(&id);
}

/// Marks a connection busy from a request's arrival until its response body is sent.
#[derive(Debug)]
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is sent or dropped.
#[derive(Debug)]
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_the_oldest_idle_connection_first() {
        let mut connections = Connections::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let mut busy = Vec::new();
        for (id, requests) in [(0, 1), (1, 0), (2, 0)] {
            let count = Arc::new(AtomicUsize::new(requests));
            busy.push(Arc::clone(&count));
            let task = runtime.spawn(std::future::pending::<()>()).abort_handle();
            connections.open.insert(id, Open { busy: count, task });
        }
        assert!(connections.close_oldest_idle());
        assert_eq!(connections.open.keys().copied().collect::<Vec<_>>(), [0, 2]);
        busy[2].store(1, Ordering::Release);
        assert!(!connections.close_oldest_idle());
    }

    /// Serves a router answering `/api/health` with the given limits; returns its port.
    async fn serving(limits: ConnectionLimits) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new().route("/api/health", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        port
    }

    /// Reads until the server closes the connection, which must happen within `deadline`.
    async fn read_to_close(stream: &mut tokio::net::TcpStream, deadline: Duration) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut answer = Vec::new();
        tokio::time::timeout(deadline, stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .expect("reads");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_half_sent_request_head_is_closed_and_a_whole_one_answered() {
        use tokio::io::AsyncWriteExt as _;
        let port = serving(ConnectionLimits {
            max: 16,
            idle: Duration::from_millis(500),
        })
        .await;
        let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        half.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut whole = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        whole
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answered = read_to_close(&mut whole, Duration::from_secs(60)).await;
        assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
        assert!(answered.ends_with("ok"), "{answered}");
        // 40 times our limit, yet under hyper's own 30 s default: a server that dropped
        // `header_read_timeout(idle)` would still close it, but too late for this deadline.
        let closed = read_to_close(&mut half, Duration::from_secs(20)).await;
        assert!(
            !closed.contains("200 OK"),
            "a half-sent head got an answer: {closed}"
        );
    }

    #[test]
    fn reads_the_open_file_limit() {
        assert!(open_file_limit().is_some_and(|files| files > 0));
    }
}
