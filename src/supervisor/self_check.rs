//! The pod checks itself before it starts anything: its files, packages, rclone and digest
//! against its build (see `crate::verify`), then the manifest's policy decides: warn and go
//! on, or refuse to start with a message saying which build runs and which was expected. A
//! stack that syncs never starts with an rclone too old for the sync's safety settings.

use tokio::runtime::Runtime;

use super::settings::Settings;
use crate::manifest::OnMismatch;
use crate::verify::{self, Report, Subject};

/// Runs the checks. `Err` carries the refusal message when the policy is `refuse` and the
/// pod is stale or drifted (or the policy override is not a policy).
pub fn self_check(settings: &Settings, runtime: &Runtime) -> Result<Report, String> {
    let stack = &settings.stack;
    let policy = verify::policy(
        stack,
        std::env::var("PODSTACK_VERIFY_POLICY").ok().as_deref(),
    )?;
    let subject = Subject::new(
        stack.clone(),
        settings.runtime_dir.clone(),
        settings
            .digest
            .clone()
            .unwrap_or_else(|| "unknown".to_owned()),
        std::env::var("PODSTACK_EXPECTED_DIGEST").ok(),
        &settings.python,
        &settings.rclone,
    );
    let timeout = stack.runtime.verify.latest_digest_timeout.0;
    let report = runtime.block_on(verify::verify(&subject, timeout));
    if let Some(unusable) = report.rclone_unusable(stack) {
        return Err(format!("refusing to start: {unusable}"));
    }
    if !report.mismatch() {
        tracing::info!("verification: {}", report.summary());
        return Ok(report);
    }
    match policy {
        OnMismatch::Refuse => Err(format!(
            "refusing to start: {} (runtime.verify.on_mismatch = refuse)\n{report}",
            report.summary()
        )),
        OnMismatch::Warn => {
            tracing::warn!("verification: {}", report.summary());
            Ok(report)
        }
    }
}
