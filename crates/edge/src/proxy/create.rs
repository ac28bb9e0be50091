//! Creating a sandbox: the create body checked against the policy and rewritten, and the
//! per-client limit.

use flankbox_protocol::service::{CreateDeployment, PortSpec};
use flankbox_protocol::validate::requested_gpu;
use flankbox_protocol::Envelope;

use crate::capability::Capability;
use crate::error::EdgeError;

use super::quota::CreateTicket;
use super::{base36, parse_sandbox_name, Edge, EdgeRequest, Io, EDGE_TAG};
use flankbox_protocol::lifetime::{expiry_of, expiry_tag};

impl Edge {
    fn check_port_list(&self, ports: &[PortSpec]) -> Result<(), EdgeError> {
        if !self.policy.allow_public_ports {
            if let Some(p) = ports.iter().find(|p| p.public == Some(true)) {
                return Err(EdgeError::Policy(format!(
                    "public ports are not allowed (port {})",
                    p.internal_port
                )));
            }
        }
        Ok(())
    }

    /// Checks a ports update and returns what goes upstream: the checked list itself, so
    /// nothing the check did not see goes through.
    pub(super) fn ports_body(&self, body: &str) -> Result<String, EdgeError> {
        let mut list: flankbox_protocol::service::PortList<PortSpec> =
            serde_json::from_str(body).map_err(|e| EdgeError::BadRequest(format!("ports body: {e}")))?;
        self.check_port_list(&list.ports)?;
        for port in &mut list.ports {
            // Custom domains and security rules are the operator's business, not a page's.
            port.domains = None;
            port.security = None;
        }
        serde_json::to_string(&list).map_err(|e| EdgeError::BadRequest(e.to_string()))
    }

    /// Checks a create body against the policy and rewrites it: the proxy's name (owner and
    /// expiry), its tags, nothing the policy does not allow.
    fn rewrite_create(&self, req: &EdgeRequest<'_>, nonce: &str) -> Result<(CreateDeployment, u64), EdgeError> {
        let mut create: CreateDeployment =
            serde_json::from_str(req.body).map_err(|e| EdgeError::BadRequest(format!("create body: {e}")))?;
        let p = &self.policy;
        if !p.allow_gpu {
            if let Some((gpu, _)) = requested_gpu(&create) {
                return Err(EdgeError::Policy(format!("GPUs are not allowed (asked for {gpu})")));
            }
            // Not asked for, so not passed on either (a disabled block, say).
            create.deployment.gpu = None;
        }
        // Saved registry credentials and storage classes are the operator's, not a page's.
        if let Some(external) = create.deployment.external.as_mut() {
            external.credentials = None;
        }
        if let Some(storage) = create.deployment.storage.as_mut() {
            storage.use_hdb_storage = None;
            storage.use_pd_ssd_storage = None;
        }
        let plan = &create.billing.deployment_plan;
        if !p.plans.contains(plan) {
            return Err(EdgeError::Policy(format!(
                "plan {plan} is not allowed (allowed: {})",
                p.plans.join(", ")
            )));
        }
        let image = create
            .deployment
            .external
            .as_ref()
            .map(|e| e.image_path.clone())
            .unwrap_or_default();
        if create.deployment.internal.is_some() || !p.images.contains(&image) {
            return Err(EdgeError::Policy(format!(
                "image {} is not allowed (allowed: {})",
                if image.is_empty() { "(a build)" } else { &image },
                p.images.join(", ")
            )));
        }
        if create.deployment.instances > 1 {
            return Err(EdgeError::Policy("a sandbox runs 0 or 1 instances".into()));
        }
        self.check_port_list(create.ports.as_deref().unwrap_or_default())?;
        let ephemeral = create
            .deployment
            .storage
            .as_ref()
            .and_then(|s| s.ephemeral_storage)
            .map(|e| e.storage_size);
        if let Some(mb) = ephemeral.filter(|mb| *mb > p.max_ephemeral_mb) {
            return Err(EdgeError::Policy(format!(
                "{mb} MB of ephemeral storage is over the limit of {} MB",
                p.max_ephemeral_mb
            )));
        }
        let owner = self.owner(req.client);
        let attach = create
            .create_options
            .as_ref()
            .and_then(|o| o.volumes_to_attach.as_deref());
        if let Some(foreign) = attach
            .unwrap_or_default()
            .iter()
            .find(|id| parse_sandbox_name(id).is_none_or(|(o, _)| o != owner))
        {
            return Err(EdgeError::Policy(format!(
                "volume {foreign} was not made by this client through the proxy"
            )));
        }
        // The lifetime: what the client asked for (as the client's expiry tag), at most the
        // policy's.
        let latest = req.now + p.max_ttl_seconds;
        let tags = create.tags.take().unwrap_or_default();
        let asked = expiry_of(tags.iter().map(String::as_str));
        let expires = asked.map_or(latest, |a| a.min(latest));
        if expires <= req.now {
            return Err(EdgeError::BadRequest("the requested lifetime has already ended".into()));
        }
        let mut tags: Vec<String> = tags.into_iter().filter(|t| !t.starts_with("flankbox-")).collect();
        tags.push(EDGE_TAG.into());
        tags.push(expiry_tag(expires));
        create.tags = Some(tags);
        create.name = format!("fbx-{owner}-{}-{nonce}", base36(expires));
        Ok((create, expires))
    }

    pub(super) async fn create(&self, req: &EdgeRequest<'_>, io: &impl Io) -> Result<(u16, String), EdgeError> {
        let (create, expires) = self.rewrite_create(req, &io.nonce())?;
        let limit = self.policy.max_sandboxes_per_client;
        // Creates of the same client racing in this process take slots in arrival order.
        let ticket = CreateTicket::take(&self.creating, self.owner(req.client));
        if self.sandboxes_of(req.client, req.now, io).await? + ticket.ahead() >= limit as usize {
            return Err(EdgeError::TooManySandboxes(limit));
        }
        let body = serde_json::to_string(&create).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
        let path = format!("{}/services/deployment", self.project_path());
        let (status, answer) = io.call("POST", &path, Some(body)).await?;
        // From here the sandbox shows in listings, and counts there.
        drop(ticket);
        if status != 200 {
            return Ok((status, answer));
        }
        // The service as upstream answered it, passed on whole: only two fields are added.
        let mut answer: Envelope<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&answer)
            .map_err(|e| EdgeError::Upstream(format!("a create answered without a data object: {e}")))?;
        let id = answer
            .data
            .get("id")
            .and_then(|id| id.as_str())
            .unwrap_or(&create.name)
            .to_string();
        // Creates racing in other processes (other Worker isolates) may all pass the count
        // above, and the proxy keeps no shared state to lock. So count again: a create that sees
        // more than the limit, its own included, undoes itself. The last of a race always sees
        // the others, so the limit holds once the racers are done (at worst, racers that all
        // see each other all back off).
        let after = self.sandboxes_of(req.client, req.now, io).await;
        if !matches!(after, Ok(n) if n <= limit as usize) {
            self.destroy(&id, io).await;
            after?;
            return Err(EdgeError::TooManySandboxes(limit));
        }
        let origin = if self.policy.bind_origin {
            req.origin.map(str::to_string)
        } else {
            None
        };
        let cap = Capability {
            sandbox_id: id,
            ops: self.policy.granted(),
            expires_at: expires,
            origin,
        };
        answer.data.insert("capability".into(), cap.mint(&self.secret).into());
        answer.data.insert("expiresAt".into(), expires.into());
        let answer = serde_json::to_string(&answer).map_err(|e| EdgeError::Upstream(e.to_string()))?;
        Ok((200, answer))
    }
}
