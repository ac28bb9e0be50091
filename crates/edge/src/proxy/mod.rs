//! Routing, authorisation and rewriting of browser requests.
//!
//! The browser-facing API is Northflank's own paths (so the client's `Sandbox` works unchanged),
//! with a capability where the token would be:
//!
//! | Request | Needs |
//! | --- | --- |
//! | `POST /v1/projects/{any}/services/deployment` | nothing but the policy; answers the service plus `capability` and `expiresAt` |
//! | `GET /v1/projects/{any}/services/{id}` (and `/containers`) | `status` |
//! | `POST …/scale` (`instances` 0 or 1), `…/pause`, `…/resume`, `…/restart` | `pause` / `resume` |
//! | `DELETE …/services/{id}` | `destroy` (volumes and all) |
//! | `GET`/`POST …/ports` | `ports` (public ports only if the policy allows) |
//! | `GET …/logs` (range query) | `logs` |
//! | WebSocket `/v1/command-exec/projects/{any}/services/{id}` | `exec`, as the `init`'s `apiToken` |
//!
//! Whatever project a browser names, requests go to the proxy's own project and team. A sandbox
//! made here is named `fbx-{owner}-{expiry}-{nonce}`: the owner is a keyed digest of the client
//! (its IP address), the expiry is Unix seconds in base 36. The proxy keeps no state: the
//! per-client count and the clean-up of expired sandboxes read the names back.

use std::sync::{Arc, Mutex};

use flankbox_protocol::auth::bearer_token;

use crate::capability::{check_secret, derive, Capability, Op};
use crate::error::EdgeError;
use crate::policy::Policy;

mod cors;
mod create;
mod exec;
mod quota;
mod relay;
mod route;
mod sweep;
mod volume;

pub use exec::ExecGrant;
pub use relay::{SessionEnd, IDLE_CLOSE};
pub use route::Route;

use quota::Creating;

/// Tag that marks a sandbox made by the proxy.
pub const EDGE_TAG: &str = "flankbox-edge";
/// How much longer than the longest sandbox a volume made for one lives.
const VOLUME_GRACE_SECONDS: u64 = 300;

/// The proxy: its secret, the real token and project, and the policy.
#[derive(Clone)]
pub struct Edge {
    secret: Vec<u8>,
    token: String,
    project_id: String,
    team_id: Option<String>,
    policy: Policy,
    creating: Arc<Mutex<Creating>>,
}

impl std::fmt::Debug for Edge {
    // Never the secret or the token, wherever the proxy is logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("project_id", &self.project_id)
            .field("team_id", &self.team_id)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A browser request, as the caller read it.
#[derive(Debug, Clone, Default)]
pub struct EdgeRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path below the proxy's mount, from `/v1/`.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The proxy's own origin as the browser sees it (`scheme://host`), for same-origin pages.
    pub own_origin: Option<&'a str>,
    /// Who is asking: the client's IP address.
    pub client: &'a str,
    /// The body (JSON, or empty).
    pub body: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// A browser request, owned: as JavaScript gives it (`{ method, path, query, authorization,
/// origin, ownOrigin, client, body, now }`), or to outlive the handler that read it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnedRequest {
    /// HTTP method.
    pub method: String,
    /// Path below the proxy's mount, from `/v1/`.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The proxy's own origin as the browser sees it.
    pub own_origin: Option<String>,
    /// Who is asking: the client's IP address.
    pub client: String,
    /// The body (JSON, or empty).
    pub body: String,
    /// Unix seconds.
    pub now: u64,
}

impl Default for OwnedRequest {
    fn default() -> Self {
        Self {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            authorization: None,
            origin: None,
            own_origin: None,
            client: "unknown".into(),
            body: String::new(),
            now: 0,
        }
    }
}

impl OwnedRequest {
    /// The request, borrowed.
    pub fn borrow(&self) -> EdgeRequest<'_> {
        EdgeRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            authorization: self.authorization.as_deref(),
            origin: self.origin.as_deref(),
            own_origin: self.own_origin.as_deref(),
            client: &self.client,
            body: &self.body,
            now: self.now,
        }
    }
}

/// The proxy's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EdgeResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (CORS, content type).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The upstream API and randomness: what the caller provides.
// The wasm side's futures are not `Send`; the native side's concrete type keeps its own.
#[allow(async_fn_in_trait)]
pub trait Io {
    /// Calls the upstream API at `path` (with its query) with the real token. Resolves to the
    /// status and body, or [`EdgeError::Upstream`] when it could not be reached.
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), EdgeError>;
    /// Six random characters from `[a-z0-9]`.
    fn nonce(&self) -> String;
}

const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn base36(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(B36[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A sandbox name's owner and expiry, if the proxy made it.
pub fn parse_sandbox_name(name: &str) -> Option<(&str, u64)> {
    let mut parts = name.split('-');
    let (Some("fbx"), Some(owner), Some(expiry), Some(nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if owner.len() != 10 || nonce.is_empty() {
        return None;
    }
    Some((owner, u64::from_str_radix(expiry, 36).ok()?))
}

impl Edge {
    /// A proxy for `project_id` (in `team_id`) that signs with `secret` and calls upstream with
    /// `token`.
    pub fn new(
        secret: &[u8],
        token: &str,
        project_id: &str,
        team_id: Option<&str>,
        policy: Policy,
    ) -> Result<Self, EdgeError> {
        check_secret(secret)?;
        policy.check()?;
        if token.is_empty() || project_id.is_empty() {
            return Err(EdgeError::Config("token and projectId are required".into()));
        }
        Ok(Self {
            secret: secret.to_vec(),
            token: token.into(),
            project_id: project_id.into(),
            team_id: team_id.map(str::to_string),
            policy,
            creating: Arc::default(),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn project_path(&self) -> String {
        match &self.team_id {
            Some(team) => format!("/v1/teams/{team}/projects/{}", self.project_id),
            None => format!("/v1/projects/{}", self.project_id),
        }
    }

    /// The owner tag of a client: a keyed digest, so names neither reveal nor let anyone forge
    /// whose a sandbox is.
    fn owner(&self, client: &str) -> String {
        // One IPv6 client holds a whole /64, so that is what counts as one client.
        let client = match client.parse::<std::net::Ipv6Addr>() {
            Ok(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => client.to_string(),
        };
        derive(&self.secret, "owner", &client)[..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Handles one REST request (exec goes through [`Edge::open_exec`]).
    pub async fn handle(&self, req: &EdgeRequest<'_>, io: &impl Io) -> EdgeResponse {
        match self.handle_inner(req, io).await {
            Ok(r) => r,
            Err(e) => self.error_response(&e, req),
        }
    }

    async fn handle_inner(&self, req: &EdgeRequest<'_>, io: &impl Io) -> Result<EdgeResponse, EdgeError> {
        self.check_origin(req.origin, req.own_origin)?;
        if req.method == "OPTIONS" {
            return Ok(EdgeResponse {
                status: 204,
                headers: self.cors_headers(req.origin, req.own_origin, true),
                body: String::new(),
            });
        }
        let (status, body) = match Self::route(req.method, req.path)? {
            Route::Create => self.create(req, io).await?,
            Route::CreateVolume => self.create_volume(req, io).await?,
            Route::Exec { .. } => {
                return Err(EdgeError::BadRequest(
                    "command-exec is a WebSocket; open it with an Upgrade request".into(),
                ))
            }
            Route::Sandbox { id, op, rest } => {
                // A scale or resume body, read once: to 0 instances it is a pause.
                let scale = matches!(rest.as_str(), "/scale" | "/resume")
                    .then(|| scale_body(req.body))
                    .transpose()?;
                let op = match &scale {
                    Some((Some(0), _)) => Op::Pause,
                    _ => op,
                };
                let token = req
                    .authorization
                    .and_then(bearer_token)
                    .ok_or(EdgeError::Unauthenticated)?;
                self.authorize(token, &id, op, req.now, req.origin, io).await?;

                let base = format!("{}/services/{id}{rest}", self.project_path());
                let path = match op {
                    // A sandbox's volumes (made through the proxy, for it alone) go with it.
                    Op::Destroy => format!("{base}?delete_child_objects=true"),
                    Op::Logs => format!("{base}?{}", logs_query(req.query)),
                    _ => base,
                };
                let body = match (scale, rest.as_str()) {
                    (Some((_, body)), _) => Some(body),
                    (None, "/pause" | "/restart") => Some("{}".to_string()),
                    (None, "/ports") if req.method == "POST" => Some(self.ports_body(req.body)?),
                    _ => (req.method == "POST").then(|| req.body.to_string()),
                };
                io.call(req.method, &path, body).await?
            }
        };
        let mut headers = self.cors_headers(req.origin, req.own_origin, false);
        headers.push(("Content-Type".into(), "application/json".into()));
        Ok(EdgeResponse { status, headers, body })
    }

    /// Checks a capability for `op` on `id`. An authentic but expired capability also destroys
    /// its sandbox, whose time is up too.
    async fn authorize(
        &self,
        token: &str,
        id: &str,
        op: Op,
        now: u64,
        origin: Option<&str>,
        io: &impl Io,
    ) -> Result<Capability, EdgeError> {
        let cap = Capability::open(&self.secret, token)?;
        match cap.check(id, op, now, origin) {
            Err(EdgeError::ExpiredCapability(at)) => {
                self.destroy(&cap.sandbox_id, io).await;
                Err(EdgeError::ExpiredCapability(at))
            }
            other => other.map(|()| cap),
        }
    }

    /// Deletes a sandbox and its volumes, best effort (also for a host whose create answer
    /// could not be delivered).
    pub async fn destroy(&self, id: &str, io: &impl Io) {
        let path = format!("{}/services/{id}?delete_child_objects=true", self.project_path());
        // Best effort: it may be gone already, and the sweep tries again.
        let _ = io.call("DELETE", &path, None).await;
    }
}

/// A scale or resume body (empty reads as `{}`), checked: its instance count, and what goes
/// upstream, that count alone. A plan or storage change is refused, since the policy checked
/// those at create.
fn scale_body(body: &str) -> Result<(Option<u32>, String), EdgeError> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    let scale: flankbox_protocol::service::ScaleRequest =
        serde_json::from_str(body).map_err(|e| EdgeError::BadRequest(format!("scale body: {e}")))?;
    if scale.deployment_plan.is_some() || scale.storage.is_some() {
        return Err(EdgeError::Policy(
            "a sandbox's plan and storage are set when it is created".into(),
        ));
    }
    match scale.instances {
        Some(n @ (0 | 1)) => Ok((Some(n), format!("{{\"instances\":{n}}}"))),
        Some(n) => Err(EdgeError::Policy(format!("a sandbox runs 0 or 1 instances, not {n}"))),
        None => Ok((None, "{}".into())),
    }
}

/// The query of a logs request: a range query, with only the parameters one takes.
fn logs_query(query: &str) -> String {
    const KEPT: [&str; 9] = [
        "startTime",
        "endTime",
        "lineLimit",
        "direction",
        "duration",
        "textIncludes",
        "textNotIncludes",
        "regexIncludes",
        "regexNotIncludes",
    ];
    let kept = query
        .split('&')
        .filter(|pair| KEPT.contains(&pair.split('=').next().unwrap_or("")))
        .fold(String::from("queryType=range"), |q, pair| q + "&" + pair);
    kept
}

#[cfg(test)]
mod tests;
