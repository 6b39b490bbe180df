//! `podstack health`: the container health check `compose.yaml` runs inside each pod. It asks
//! the supervisor's panel on loopback for `GET /api/health`, the route Kubernetes probes
//! over the network, so a box and a cluster judge a pod by the same answer. No shell, no curl
//! in the image: the binary that is PID 1 checks itself.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Why a pod is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("the panel on port {port} does not answer: {source}\n  hint: the supervisor is not up yet, or it stopped; see `docker logs` of this pod")]
    Unreachable {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the panel on port {port} answered `{status_line}` to /api/health\n  hint: the supervisor's log says why")]
    Status { port: u16, status_line: String },
}

/// Asks `http://127.0.0.1:<port>/api/health`; healthy on a 200 within `timeout`.
pub fn check(port: u16, timeout: Duration) -> Result<(), Unhealthy> {
    let unreachable = |source| Unhealthy::Unreachable { port, source };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(unreachable)?;
    // The status line is all that counts; the body is a few bytes of JSON.
    let mut head = [0u8; 256];
    let mut read = 0;
    while read < head.len() && !head[..read].contains(&b'\n') {
        match stream.read(&mut head[read..]).map_err(unreachable)? {
            0 => break,
            n => read += n,
        }
    }
    let text = String::from_utf8_lossy(&head[..read]);
    let status_line = text.lines().next().unwrap_or_default().trim().to_owned();
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200");
    if ok {
        Ok(())
    } else {
        Err(Unhealthy::Status { port, status_line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn answering(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response.as_bytes());
        });
        port
    }

    #[test]
    fn a_200_is_healthy_anything_else_names_the_answer() {
        let port = answering("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}");
        assert!(check(port, Duration::from_secs(5)).is_ok());
        let port = answering("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = check(port, Duration::from_secs(5)).expect_err("503");
        assert!(
            err.to_string()
                .contains("answered `HTTP/1.1 503 Service Unavailable` to /api/health"),
            "{err}"
        );
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let err = check(port, Duration::from_secs(5)).expect_err("nobody listens");
        assert!(matches!(err, Unhealthy::Unreachable { .. }), "{err}");
    }
}
