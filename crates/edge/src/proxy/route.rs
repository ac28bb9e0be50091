//! Routing: a request's method and path into a [`Route`].

use crate::capability::Op;
use crate::error::EdgeError;

use super::Edge;

/// A request's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Create a sandbox.
    Create,
    /// Create a volume, to be attached when its sandbox is created.
    CreateVolume,
    /// An operation on one sandbox: the upstream path below `services/{id}` and the operation.
    Sandbox {
        /// The sandbox.
        id: String,
        /// What it needs.
        op: Op,
        /// The upstream path suffix, e.g. `/scale` (empty for the service itself).
        rest: String,
    },
    /// The exec WebSocket of a sandbox.
    Exec {
        /// The sandbox.
        id: String,
    },
}

impl Edge {
    /// Reads a path (below the mount) into a route.
    pub fn route(method: &str, path: &str) -> Result<Route, EdgeError> {
        let not_found = || EdgeError::NotFound(format!("route {method} {path}"));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (exec, rest) = match segments.as_slice() {
            ["v1", "command-exec", rest @ ..] => (true, rest),
            ["v1", rest @ ..] => (false, rest),
            _ => return Err(not_found()),
        };
        let rest = match rest {
            ["teams", _, "projects", _, rest @ ..] | ["projects", _, rest @ ..] => rest,
            _ => return Err(not_found()),
        };
        let valid_id = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if exec {
            return match rest {
                ["services", id] if method == "GET" && valid_id(id) => Ok(Route::Exec { id: id.to_string() }),
                _ => Err(not_found()),
            };
        }
        let sandbox = |id: &str, op: Op, rest: &str| Route::Sandbox {
            id: id.to_string(),
            op,
            rest: rest.to_string(),
        };
        match (method, rest) {
            ("POST", ["services", "deployment"]) => Ok(Route::Create),
            ("POST", ["volumes"]) => Ok(Route::CreateVolume),
            (_, ["services", id, ..]) if !valid_id(id) => Err(not_found()),
            ("GET", ["services", id]) => Ok(sandbox(id, Op::Status, "")),
            ("GET", ["services", id, "containers"]) => Ok(sandbox(id, Op::Status, "/containers")),
            ("DELETE", ["services", id]) => Ok(sandbox(id, Op::Destroy, "")),
            // Scale's operation depends on its body (0 instances is a pause); see `handle_inner`.
            ("POST", ["services", id, "scale"]) => Ok(sandbox(id, Op::Resume, "/scale")),
            ("POST", ["services", id, "pause"]) => Ok(sandbox(id, Op::Pause, "/pause")),
            ("POST", ["services", id, action @ ("resume" | "restart")]) => {
                Ok(sandbox(id, Op::Resume, &format!("/{action}")))
            }
            ("GET" | "POST", ["services", id, "ports"]) => Ok(sandbox(id, Op::Ports, "/ports")),
            ("GET", ["services", id, "logs"]) => Ok(sandbox(id, Op::Logs, "/logs")),
            _ => Err(not_found()),
        }
    }
}
