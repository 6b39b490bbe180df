//! The HTTP client for the pod's own services on loopback (ComfyUI, JupyterLab, `rclone rcd`).

use std::time::Duration;

use reqwest::Client;

/// A client for the pod's own services: short timeouts, and never through a proxy from the
/// environment.
pub fn local_client() -> reqwest::Result<Client> {
    Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .build()
}
