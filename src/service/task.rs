//! Background tasks a service owns (a readiness probe, a sync pass): stopped when their owner
//! goes, so nothing outlives the process or the folder it was started for.

use tokio::task::JoinHandle;

/// A task that is stopped when its owner goes.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
