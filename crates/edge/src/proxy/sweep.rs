//! The sweep of expired sandboxes and volumes.

use crate::error::EdgeError;

use super::{Edge, Io};

impl Edge {
    /// Deletes every expired sandbox the proxy made, and every expired volume no sandbox took
    /// (a Worker's `scheduled` handler). Resolves to how many live sandboxes are left.
    pub async fn sweep(&self, now: u64, io: &impl Io) -> Result<usize, EdgeError> {
        let live = self.live_sandboxes(now, io).await?.len();
        self.live_volumes(now, io).await?;
        Ok(live)
    }
}
