//! HTTP calls the supervisor makes to the services it runs: the readiness probe (ComfyUI's
//! `GET /system_stats`, JupyterLab's `GET /api`) and ComfyUI's memory relief between prompts
//! (`POST /free` when RAM or VRAM use is above the manifest's threshold, L15).

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Client, StatusCode};

use super::host::QueueSample;
use super::log_watch::{should_free, MemoryUse, FREE_MEMORY_BODY};
use crate::manifest::MemoryPolicy;

/// The base URL of a service listening on `listen`: the loopback address when it listens on
/// every address.
pub fn local_base(listen: IpAddr, port: u16) -> String {
    match listen {
        IpAddr::V4(v4) if v4.is_unspecified() => format!("http://127.0.0.1:{port}"),
        IpAddr::V6(v6) if v6.is_unspecified() => format!("http://[::1]:{port}"),
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    }
}

/// ComfyUI's queue at `base` (`GET /queue`): prompts running and waiting; `None` when it
/// does not answer.
pub async fn queue(client: &Client, base: &str) -> Option<QueueSample> {
    let url = format!("{base}/queue");
    let queue: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let count = |key: &str| queue.get(key)?.as_array().map(Vec::len);
    Some(QueueSample {
        queue_running: count("queue_running")?,
        queue_pending: count("queue_pending")?,
    })
}

/// Asks `url` until it answers 200, a little less often each time (at most once a second).
/// Never gives up: the service's exit or a stop ends it by dropping the future.
pub async fn wait_until_answers(client: &Client, url: &str) {
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(response) = client.get(url).send().await {
            if response.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// What the memory relief did.
#[derive(Debug, Clone, PartialEq)]
pub enum Relief {
    /// Use was below both thresholds.
    NotNeeded(MemoryUse),
    /// ComfyUI was asked to unload models and free memory.
    Freed(MemoryUse),
}

/// After a prompt: reads ComfyUI's memory use and asks it to free memory when either use is
/// above its threshold.
pub async fn relieve_memory(
    client: &Client,
    base: &str,
    policy: &MemoryPolicy,
) -> Result<Relief, String> {
    let stats: serde_json::Value = client
        .get(format!("{base}/system_stats"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| format!("GET /system_stats failed: {err}"))?
        .json()
        .await
        .map_err(|err| format!("GET /system_stats answered no JSON: {err}"))?;
    let usage = MemoryUse::from_system_stats(&stats)
        .ok_or_else(|| "GET /system_stats did not say how much memory is used".to_owned())?;
    if !should_free(usage.ram_used_percent, usage.vram_used_percent, policy) {
        return Ok(Relief::NotNeeded(usage));
    }
    client
        .post(format!("{base}/free"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(FREE_MEMORY_BODY)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| format!("POST /free failed: {err}"))?;
    Ok(Relief::Freed(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_loopback_when_listening_everywhere() {
        assert_eq!(
            local_base("0.0.0.0".parse().unwrap(), 8188),
            "http://127.0.0.1:8188"
        );
        assert_eq!(local_base("::".parse().unwrap(), 8188), "http://[::1]:8188");
        assert_eq!(
            local_base("10.1.2.3".parse().unwrap(), 81),
            "http://10.1.2.3:81"
        );
    }
}
