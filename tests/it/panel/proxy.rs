//! A tiny HTTP proxy in front of the supervisor, standing in for RunPod's (Cloudflare) proxy:
//! it records every request the page sends and, when told, answers one itself (a 500, a
//! proxy's 524 HTML page, a route that does not exist yet) instead of passing it on. One
//! request per connection, so every request is seen. Set down, it stands for a dead pod: every
//! connection, open or new, ends without an answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// An answer the proxy gives itself.
#[derive(Debug, Clone)]
pub struct Fault {
    method: String,
    path: String,
    response: String,
    delay: Duration,
    /// How many more requests it answers; `None` for every one.
    times: Option<usize>,
}

impl Fault {
    /// Answers `method path` (the path without its query) with `status` and `body`.
    pub fn new(method: &str, path: &str, status: u16, content_type: &str, body: &str) -> Self {
        let reason = match status {
            200 => "OK",
            202 => "Accepted",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Error",
        };
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            response: format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
            delay: Duration::ZERO,
            times: None,
        }
    }

    /// Answers only the next `times` matching requests.
    pub fn times(mut self, times: usize) -> Self {
        self.times = Some(times);
        self
    }

    /// Waits before answering, as a proxy that gives up after a while does.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Cloudflare's page for a request the origin did not answer within 100 s (L14).
pub const CLOUDFLARE_524: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<title>pod-7777.proxy.runpod.net | 524: A timeout occurred</title>\n</head>\n<body>\n<h1>A timeout occurred <span>Error code 524</span></h1>\n<p>The origin web server timed out responding to this request.</p>\n</body>\n</html>\n";

#[derive(Debug, Default)]
struct Shared {
    requests: Vec<String>,
    faults: Vec<Fault>,
}

/// The proxy, serving until its runtime ends.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    down: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    /// Listens on a free port and passes requests on to `upstream` on 127.0.0.1.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds");
        let port = listener.local_addr().expect("the proxy's port").port();
        let proxy = Self {
            port,
            shared: Arc::default(),
            down: Arc::new(tokio::sync::watch::channel(false).0),
        };
        let shared = Arc::clone(&proxy.shared);
        let down = Arc::clone(&proxy.down);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(
                    inbound,
                    upstream,
                    Arc::clone(&shared),
                    down.subscribe(),
                ));
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Down: every connection ends unanswered, the open ones (streams) at once, as when the
    /// pod dies; up: requests pass again.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the request head, then answers it with a fault or passes the connection through.
async fn relay(
    mut inbound: TcpStream,
    upstream: u16,
    shared: Arc<Mutex<Shared>>,
    mut down: tokio::sync::watch::Receiver<bool>,
) {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 4096];
    let end = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match inbound.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    };
    let (head, body) = head.split_at(end);
    let head = String::from_utf8_lossy(head).into_owned();
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let fault = {
        let mut shared = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.requests.push(format!("{method} {target}"));
        let found = shared
            .faults
            .iter_mut()
            .find(|fault| fault.method == method && fault.path == path && fault.times != Some(0));
        found.map(|fault| {
            if let Some(times) = fault.times.as_mut() {
                *times -= 1;
            }
            fault.clone()
        })
    };
    if *down.borrow() {
        return;
    }
    if let Some(fault) = fault {
        tokio::time::sleep(fault.delay).await;
        let _ = inbound.write_all(fault.response.as_bytes()).await;
        let _ = inbound.shutdown().await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    // One request per connection: the supervisor closes after answering, and says so.
    let mut forwarded: String = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .take_while(|line| !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    if outbound.write_all(forwarded.as_bytes()).await.is_err()
        || outbound.write_all(body).await.is_err()
    {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = down.wait_for(|down| *down) => {}
    }
}
