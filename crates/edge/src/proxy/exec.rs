//! Exec: the WebSocket upgrade and the `init` message.

use flankbox_protocol::exec::{exec_path, ClientFrame, IdOrName, InitAuth, InitRequest};

use crate::capability::{Capability, Op};
use crate::error::EdgeError;

use super::{Edge, Io, Route};

/// An exec session allowed so far: the sandbox and the upstream WebSocket path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecGrant {
    /// The sandbox.
    pub sandbox_id: String,
    /// The upstream command-exec path.
    pub upstream_path: String,
}

impl Edge {
    /// Checks an exec WebSocket's upgrade request: its route and origin. The capability comes
    /// in the `init` message ([`Edge::exec_init`]).
    pub fn open_exec(
        &self,
        path: &str,
        origin: Option<&str>,
        own_origin: Option<&str>,
    ) -> Result<ExecGrant, EdgeError> {
        self.check_origin(origin, own_origin)?;
        match Self::route("GET", path)? {
            Route::Exec { id } => Ok(ExecGrant {
                upstream_path: exec_path(self.team_id.as_deref(), &self.project_id, &id),
                sandbox_id: id,
            }),
            _ => Err(EdgeError::NotFound(format!("exec route {path}"))),
        }
    }

    /// Checks the browser's `init` (its capability and context) and rewrites it with the real
    /// token. Anything but a well-formed `init` is refused; unknown fields are dropped.
    pub fn exec_init(
        &self,
        grant: &ExecGrant,
        message: &str,
        origin: Option<&str>,
        now: u64,
    ) -> Result<String, EdgeError> {
        self.check_frame(message.len())?;
        let frame: ClientFrame = serde_json::from_str(message)
            .map_err(|e| EdgeError::BadRequest(format!("the first exec message must be init: {e}")))?;
        let ClientFrame::Init(init) = frame else {
            return Err(EdgeError::BadRequest("the first exec message must be init".into()));
        };
        let cap = Capability::open(&self.secret, &init.auth.api_token)?;
        cap.check(&grant.sandbox_id, Op::Exec, now, origin)?;
        // No context means the default shell, as root: it is checked like any other.
        let c = init.context.unwrap_or_default();
        let e = &self.policy.exec;
        if c.tty == Some(true) && !e.allow_tty {
            return Err(EdgeError::Policy("a PTY (tty) is not allowed".into()));
        }
        if !e.users.is_empty() {
            let user = match &c.user {
                None => "root".to_string(),
                Some(IdOrName::Id(id)) => id.to_string(),
                Some(IdOrName::Name(name)) => name.clone(),
            };
            if !e.users.contains(&user) {
                return Err(EdgeError::Policy(format!(
                    "commands may not run as {user} (allowed: {})",
                    e.users.join(", ")
                )));
            }
            // A group of its own choosing (root's, say) would widen what the user may do.
            if c.group.is_some() {
                return Err(EdgeError::Policy(
                    "a group may not be chosen when the policy limits users".into(),
                ));
            }
        }
        let rewritten = ClientFrame::Init(Box::new(InitRequest {
            auth: InitAuth::api_token(&self.token),
            context: Some(c),
        }));
        serde_json::to_string(&rewritten).map_err(|e| EdgeError::BadRequest(e.to_string()))
    }

    /// Refuses an exec message over the policy's size.
    pub fn check_frame(&self, size: usize) -> Result<(), EdgeError> {
        let limit = self.policy.exec.max_frame_bytes;
        if size > limit {
            return Err(EdgeError::FrameTooLarge { size, limit });
        }
        Ok(())
    }

    /// [`Edge::exec_init`], and when the capability is authentic but expired, its sandbox is
    /// destroyed too.
    pub async fn exec_init_or_reap(
        &self,
        grant: &ExecGrant,
        message: &str,
        origin: Option<&str>,
        now: u64,
        io: &impl Io,
    ) -> Result<String, EdgeError> {
        let result = self.exec_init(grant, message, origin, now);
        if let Err(EdgeError::ExpiredCapability(_)) = &result {
            if let Ok(ClientFrame::Init(init)) = serde_json::from_str::<ClientFrame>(message) {
                if let Ok(cap) = Capability::open(&self.secret, &init.auth.api_token) {
                    self.destroy(&cap.sandbox_id, io).await;
                }
            }
        }
        result
    }
}
