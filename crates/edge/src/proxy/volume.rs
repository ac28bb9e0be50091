//! Volumes: made for a sandbox to come, counted per client like sandboxes.

use flankbox_protocol::lifetime::expiry_tag;
use flankbox_protocol::volume::CreateVolume;
use flankbox_protocol::Envelope;

use crate::error::EdgeError;

use super::quota::{owned_by, CreateTicket};
use super::{base36, parse_sandbox_name, Edge, EdgeRequest, Io, EDGE_TAG, VOLUME_GRACE_SECONDS};

impl Edge {
    /// Reads every volume the proxy made; deletes the expired ones no sandbox uses. Resolves to
    /// the others' names.
    pub(super) async fn live_volumes(&self, now: u64, io: &impl Io) -> Result<Vec<String>, EdgeError> {
        let mut live = Vec::new();
        for volume in self.list_volumes(io).await? {
            match parse_sandbox_name(&volume.name) {
                Some((_, expires)) if expires <= now && volume.attached_objects.is_empty() => {
                    let path = format!("{}/volumes/{}", self.project_path(), volume.id);
                    // Best effort, like a sandbox's destroy: the next sweep tries again.
                    let _ = io.call("DELETE", &path, None).await;
                }
                Some(_) => live.push(volume.name),
                None => {}
            }
        }
        Ok(live)
    }

    /// Creates a volume for a sandbox to come: within the policy's size, named like a sandbox
    /// (owner and expiry), attached to nothing yet.
    pub(super) async fn create_volume(&self, req: &EdgeRequest<'_>, io: &impl Io) -> Result<(u16, String), EdgeError> {
        let mut volume: CreateVolume =
            serde_json::from_str(req.body).map_err(|e| EdgeError::BadRequest(format!("volume body: {e}")))?;
        let p = &self.policy;
        if p.max_volume_mb == 0 {
            return Err(EdgeError::Policy("volumes are not allowed".into()));
        }
        if volume.spec.storage_size > p.max_volume_mb {
            return Err(EdgeError::Policy(format!(
                "a volume of {} MB is over the limit of {} MB",
                volume.spec.storage_size, p.max_volume_mb
            )));
        }
        if volume.attached_objects.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(EdgeError::Policy(
                "a volume is attached by the create of its sandbox (createOptions.volumesToAttach), not by attachedObjects"
                    .into(),
            ));
        }
        // The plain, generally available kind only.
        volume.spec.access_mode = flankbox_protocol::volume::AccessMode::ReadWriteOnce;
        volume.spec.storage_class_name = None;
        let owner = self.owner(req.client);
        let limit = p.max_sandboxes_per_client;
        let mine = |names: Vec<String>| owned_by(&names, &owner);
        // Counted like sandboxes (see `create`): in arrival order within this process, and
        // again once made.
        let ticket = CreateTicket::take(&self.creating, format!("{owner}/volumes"));
        if mine(self.live_volumes(req.now, io).await?) + ticket.ahead() >= limit as usize {
            return Err(EdgeError::TooManyVolumes(limit));
        }
        // It outlives any sandbox made after it by a little, so it is never swept from under
        // one; it goes with its sandbox, or by the sweep if no sandbox took it.
        let expires = req.now + p.max_ttl_seconds + VOLUME_GRACE_SECONDS;
        volume.name = format!("fbx-{owner}-{}-{}", base36(expires), io.nonce());
        let mut tags: Vec<String> = volume
            .tags
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !t.starts_with("flankbox-"))
            .collect();
        tags.push(EDGE_TAG.into());
        tags.push(expiry_tag(expires));
        volume.tags = Some(tags);
        let body = serde_json::to_string(&volume).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
        let path = format!("{}/volumes", self.project_path());
        let (status, answer) = io.call("POST", &path, Some(body)).await?;
        drop(ticket);
        if status != 200 {
            return Ok((status, answer));
        }
        let after = self.live_volumes(req.now, io).await.map(mine);
        if !matches!(after, Ok(n) if n <= limit as usize) {
            let made = serde_json::from_str::<Envelope<NfId>>(&answer).ok();
            let id = made.as_ref().map_or(&volume.name, |made| &made.data.id);
            let _ = io.call("DELETE", &format!("{path}/{id}"), None).await;
            after?;
            return Err(EdgeError::TooManyVolumes(limit));
        }
        Ok((status, answer))
    }
}

/// The id of what a create made.
#[derive(serde::Deserialize)]
struct NfId {
    id: String,
}
