//! `Sandbox.create`: the volume first when asked, the service, through an edge proxy the
//! capability from its answer, a readiness poll; and when any of it fails, the deletion of what
//! was made, since no handle reaches the caller.
//!
//! The service is created with one instance, as the guide creates it, and with its volume
//! attached (`createOptions`), so it starts on its own. The guide's scale to 1 after the create
//! would ask for what the service already wants: the client leaves it out, one request less
//! before the first poll.

use super::lifecycle::wait_ready;
use super::{call, call_unit, Reporter, SandboxRef};
use crate::config::{encode_component, ClientConfig};
use crate::error::Result;
use crate::rest::ApiRequest;
use crate::sandbox::{plan_create, Created, SandboxOptions};
use crate::transport::Transport;

/// A random 12-hex-digit name suffix.
fn random_suffix<T: Transport>(t: &T) -> String {
    (0..12)
        .map(|_| char::from(b"0123456789abcdef"[(t.random() * 16.0) as usize % 16]))
        .collect()
}

/// Creates a sandbox and resolves once it is ready, reporting each step.
pub async fn create<T: Transport>(
    t: &T,
    config: &ClientConfig,
    opts: &SandboxOptions,
    progress: &mut Reporter<'_>,
) -> Result<SandboxRef> {
    let mut plan = plan_create(opts, &random_suffix(t), (t.now_ms() / 1000.0) as u64)?;
    let mut volume_id = plan.volume_id();
    if let Some(volume) = &plan.volume {
        progress.report(t, "creating-volume", None, None);
        let made: Created = call(t, config, ApiRequest::post(config.project_path("/volumes"), volume)?).await?;
        if let Some(id) = made.id {
            plan.attach_volume(&id);
            volume_id = Some(id);
        }
    }
    let mut sandbox = SandboxRef {
        config: config.clone(),
        id: plan.service_id.clone(),
        volume_id,
    };
    progress.report(t, "creating", None, None);
    let request = ApiRequest::post(config.project_path("/services/deployment"), &plan.service)?;
    let created: Created = match call(t, config, request).await {
        Ok(created) => created,
        Err(e) => {
            cleanup(t, &sandbox, false).await;
            return Err(e);
        }
    };
    // Through an edge proxy, the answer names the sandbox (the proxy chooses the name) and
    // carries the capability that stands in for a token from here on.
    if let Some(capability) = created.capability {
        sandbox.config = config.with_capability(capability);
        sandbox.id = created.id.unwrap_or(sandbox.id);
    }
    progress.report(t, "starting", None, Some(&sandbox));
    if let Err(e) = wait_ready(t, &sandbox, progress).await {
        cleanup(t, &sandbox, true).await;
        return Err(e);
    }
    progress.report(t, "ready", None, None);
    Ok(sandbox)
}

/// Best-effort deletion of what a failed `create` made: the service with its volume, or only
/// the volume when the service was never made.
async fn cleanup<T: Transport>(t: &T, sandbox: &SandboxRef, service: bool) {
    let Ok(t) = t.for_cleanup() else {
        return;
    };
    let request = if service {
        ApiRequest::delete(sandbox.path("?delete_child_objects=true"))
    } else if let Some(volume) = &sandbox.volume_id {
        let path = sandbox
            .config
            .project_path(&format!("/volumes/{}", encode_component(volume)));
        ApiRequest::delete(path)
    } else {
        return;
    };
    let _ = call_unit(&t, &sandbox.config, request).await;
}
