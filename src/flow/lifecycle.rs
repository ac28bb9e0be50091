//! Status, pause, resume, destroy and connect, and the polls they share with `create`.

use super::{call_unit, Reporter, SandboxRef};
use crate::error::{Error, Result};
use crate::rest::ApiRequest;
use crate::retry::PollBackoff;
use crate::sandbox::{settled, Readiness, ServiceState};
use crate::transport::Transport;

/// Where the sandbox stands.
pub async fn status<T: Transport>(t: &T, sandbox: &SandboxRef) -> Result<ServiceState> {
    sandbox.state(t).await
}

/// Checks that the sandbox exists.
pub async fn connect<T: Transport>(t: &T, sandbox: &SandboxRef) -> Result<()> {
    sandbox.state(t).await.map(drop)
}

/// Polls until the deployment is ready (or failed), reporting each new status. Called right
/// after a create or a scale to 1, it waits the first interval before the first poll: a boot is
/// never done the moment the request is answered (here it takes a couple of milliseconds, on
/// Northflank seconds), and a poll then would only take CPU from it.
pub async fn wait_ready<T: Transport>(t: &T, sandbox: &SandboxRef, progress: &mut Reporter<'_>) -> Result<()> {
    let mut last = String::new();
    for wait in PollBackoff::default() {
        t.sleep(wait).await?;
        match sandbox.state(t).await?.readiness() {
            Readiness::Ready => return Ok(()),
            Readiness::Failed => {
                return Err(Error::DeploymentFailed(format!(
                    "service {} reports FAILED",
                    sandbox.id
                )))
            }
            Readiness::Waiting(status) => {
                if status != last {
                    progress.report(t, "waiting", Some(status.clone()), None);
                    last = status;
                }
            }
        }
    }
    unreachable!("PollBackoff never ends")
}

/// Pauses: scales to 0 and polls until the rollout settles.
pub async fn pause<T: Transport>(t: &T, sandbox: &SandboxRef) -> Result<()> {
    sandbox.scale(t, 0).await?;
    for wait in PollBackoff::default() {
        if settled(sandbox.state(t).await?.rollout()) {
            return Ok(());
        }
        t.sleep(wait).await?;
    }
    unreachable!("PollBackoff never ends")
}

/// Resumes: scales back to 1 and waits until the fresh sandbox is ready.
pub async fn resume<T: Transport>(t: &T, sandbox: &SandboxRef, progress: &mut Reporter<'_>) -> Result<()> {
    sandbox.scale(t, 1).await?;
    wait_ready(t, sandbox, progress).await
}

/// Deletes the sandbox, with `delete_volume` its volumes too; `keepalive` sends it with fetch's
/// keepalive (a page's last request).
pub async fn destroy<T: Transport>(t: &T, sandbox: &SandboxRef, delete_volume: bool, keepalive: bool) -> Result<()> {
    let query = if delete_volume {
        "?delete_child_objects=true"
    } else {
        ""
    };
    let request = ApiRequest::delete(sandbox.path(query)).keepalive(keepalive);
    call_unit(t, &sandbox.config, request).await
}
