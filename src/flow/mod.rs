//! The calls' steps, over a [`Transport`]: what the JS classes do, as plain Rust that `cargo test`
//! drives with an in-memory transport. Split by concern: `create` (volume, service, capability,
//! poll, clean-up), `lifecycle` (status, pause, resume, destroy), `ports` (exposePort),
//! `exec` (a command to its end: input, output within a limit, callbacks), `files` (file
//! commands over an exec session) and `detached` (processes that outlive their connection, and
//! the follower that resumes them).

mod create;
pub mod detached;
pub mod exec;
mod files;
mod lifecycle;
mod ports;
#[cfg(test)]
mod tests;

pub use create::create;
pub use exec::run as exec;
pub use files::{file_op, open_session};
pub use lifecycle::{connect, destroy, pause, resume, status, wait_ready};
pub use ports::expose_port;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{encode_component, ClientConfig};
use crate::error::{Error, Result};
use crate::rest::{self, ApiRequest};
use crate::retry::{Outcome, RetryPolicy};
use crate::sandbox::ServiceState;
use crate::transport::Transport;

/// A sandbox as the calls address it: the connection (a token, or an edge proxy's capability),
/// the service id, and the volume `create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRef {
    /// The connection.
    pub config: ClientConfig,
    /// The service id.
    pub id: String,
    /// The volume made by `create`, if any.
    pub volume_id: Option<String>,
}

impl SandboxRef {
    /// A path below the service.
    pub fn path(&self, rest: &str) -> String {
        self.config
            .project_path(&format!("/services/{}{rest}", encode_component(&self.id)))
    }

    /// `data` of a GET below the service.
    pub async fn get<T: Transport, D: DeserializeOwned>(&self, t: &T, rest: &str) -> Result<D> {
        call(t, &self.config, ApiRequest::get(self.path(rest))).await
    }

    /// A POST below the service, its answer unread.
    pub async fn post<T: Transport, B: Serialize>(&self, t: &T, rest: &str, body: &B) -> Result<()> {
        call_unit(t, &self.config, ApiRequest::post(self.path(rest), body)?).await
    }

    /// What the service reports.
    pub async fn state<T: Transport>(&self, t: &T) -> Result<ServiceState> {
        self.get(t, "").await
    }

    /// Scales to `instances`.
    pub async fn scale<T: Transport>(&self, t: &T, instances: u32) -> Result<()> {
        let body = crate::protocol::service::ScaleRequest {
            instances: Some(instances),
            ..Default::default()
        };
        self.post(t, "/scale", &body).await
    }
}

/// A step of `create` (and `resume`), as `onProgress` gets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `creating-volume`, `creating`, `starting`, `waiting` or `ready`.
    pub step: &'static str,
    /// The rollout status, while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Since the call started, ms.
    pub elapsed_ms: f64,
    /// The sandbox, from `starting` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Through an edge proxy, its capability, from `starting` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
}

/// Reports steps with the time since the call started.
pub struct Reporter<'a> {
    started: f64,
    sink: &'a mut dyn FnMut(Progress),
}

impl<'a> Reporter<'a> {
    /// Reports to `sink`, timing from now.
    pub fn new<T: Transport>(t: &T, sink: &'a mut dyn FnMut(Progress)) -> Self {
        Self {
            started: t.monotonic_ms(),
            sink,
        }
    }

    fn report<T: Transport>(
        &mut self,
        t: &T,
        step: &'static str,
        status: Option<String>,
        sandbox: Option<&SandboxRef>,
    ) {
        let config = sandbox.map(|s| &s.config);
        (self.sink)(Progress {
            step,
            status,
            elapsed_ms: (t.monotonic_ms() - self.started).round(),
            id: sandbox.map(|s| s.id.clone()),
            capability: config.filter(|c| c.is_capability).map(|c| c.token.clone()),
        });
    }
}

/// Sends `req` and resolves to the answer's status and body; reads are retried with backoff on
/// network errors, 429 and 5xx.
pub async fn exchange<T: Transport>(t: &T, config: &ClientConfig, req: &ApiRequest) -> Result<(u16, String)> {
    let policy = RetryPolicy::default();
    let mut tried = 0;
    loop {
        let result = t.fetch(config, req).await;
        let outcome = match &result {
            Ok((status, _)) => Outcome::Status(*status),
            Err(Error::Network(_)) => Outcome::NetworkError,
            Err(e) => return Err(e.clone()),
        };
        match policy.retry_after(req.idempotent(), tried, outcome, t.random()) {
            Some(wait) => {
                tried += 1;
                t.sleep(wait).await?;
            }
            None => return result,
        }
    }
}

/// Sends `req` and reads the answer's `data` as `D` ([`rest::parse`]).
pub async fn call<T: Transport, D: DeserializeOwned>(t: &T, config: &ClientConfig, req: ApiRequest) -> Result<D> {
    let (status, body) = exchange(t, config, &req).await?;
    Ok(rest::parse::<D>(status, &body)?.data)
}

/// Sends `req`; only the status of its answer is read.
pub async fn call_unit<T: Transport>(t: &T, config: &ClientConfig, req: ApiRequest) -> Result<()> {
    let (status, body) = exchange(t, config, &req).await?;
    rest::check(status, &body)
}
