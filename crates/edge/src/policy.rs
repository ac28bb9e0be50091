//! What browsers may do through the proxy. Read from JSON (or a JS object) in camelCase; every
//! field has a safe default, so `{}` is a locked-down but working policy.

use serde::Deserialize;

use crate::capability::Op;
use crate::error::EdgeError;

/// The proxy's policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Policy {
    /// Images a sandbox may run (`deployment.external.imagePath`), exactly.
    pub images: Vec<String>,
    /// Deployment plans a sandbox may use.
    pub plans: Vec<String>,
    /// The longest a sandbox (and its capability) may live, in seconds.
    pub max_ttl_seconds: u64,
    /// Live sandboxes one client may hold at once.
    pub max_sandboxes_per_client: u32,
    /// Whether ports may be public.
    pub allow_public_ports: bool,
    /// Whether GPU plans and GPU blocks are allowed.
    pub allow_gpu: bool,
    /// The largest volume a sandbox may be created with, in MB; 0 allows no volumes. A client
    /// may hold as many live volumes as it may hold sandboxes.
    pub max_volume_mb: u64,
    /// The most ephemeral storage a sandbox may ask for, in MB.
    pub max_ephemeral_mb: u64,
    /// Web origins allowed to call (CORS), e.g. `https://app.example`; `*` allows any. A page of
    /// the proxy's own origin is always allowed.
    pub allowed_origins: Vec<String>,
    /// Whether a capability is bound to the origin of the page that created the sandbox.
    pub bind_origin: bool,
    /// The operations a sandbox's capability grants.
    pub operations: Vec<String>,
    /// Limits on exec sessions.
    pub exec: ExecPolicy,
}

/// Limits on exec sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ExecPolicy {
    /// The largest message a browser may send, in bytes.
    pub max_frame_bytes: usize,
    /// A session with no message either way for this long is closed, in seconds.
    pub idle_timeout_seconds: u64,
    /// Whether a PTY may be asked for.
    pub allow_tty: bool,
    /// The users commands may run as (`user` in the exec context); empty allows any.
    pub users: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            images: vec!["ubuntu:22.04".into()],
            plans: vec![
                "nf-compute-20".into(),
                "nf-compute-100-1".into(),
                "nf-compute-200".into(),
            ],
            max_ttl_seconds: 30 * 60,
            max_sandboxes_per_client: 2,
            allow_public_ports: false,
            allow_gpu: false,
            max_volume_mb: 0,
            max_ephemeral_mb: 4096,
            allowed_origins: Vec::new(),
            bind_origin: true,
            operations: Op::ALL.iter().map(|op| op.name().to_string()).collect(),
            exec: ExecPolicy::default(),
        }
    }
}

impl Default for ExecPolicy {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            idle_timeout_seconds: 10 * 60,
            allow_tty: true,
            users: Vec::new(),
        }
    }
}

impl Policy {
    /// Reads a policy from JSON; unknown fields are an error, so a typo is not a silent hole.
    pub fn from_json(json: &str) -> Result<Self, EdgeError> {
        let policy: Self = serde_json::from_str(json).map_err(|e| EdgeError::Config(format!("policy: {e}")))?;
        policy.check()?;
        Ok(policy)
    }

    /// Checks the policy is usable.
    pub fn check(&self) -> Result<(), EdgeError> {
        let config = |m: String| Err(EdgeError::Config(format!("policy: {m}")));
        if self.images.is_empty() || self.plans.is_empty() {
            return config("images and plans must each allow at least one value".into());
        }
        if self.max_ttl_seconds == 0 {
            return config("maxTtlSeconds must be more than 0".into());
        }
        if let Some(bad) = self.operations.iter().find(|o| Op::from_name(o).is_none()) {
            return config(format!(
                "unknown operation {bad:?} in operations (use status, exec, pause, resume, destroy, ports, logs)"
            ));
        }
        if self.exec.max_frame_bytes < 1024 {
            return config("exec.maxFrameBytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The operations a new sandbox's capability grants.
    pub fn granted(&self) -> crate::capability::Ops {
        self.operations.iter().filter_map(|o| Op::from_name(o)).collect()
    }

    /// Whether a page of `origin` may call, given the proxy's own origin.
    pub fn origin_allowed(&self, origin: &str, own_origin: Option<&str>) -> bool {
        own_origin == Some(origin) || self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_is_locked_down() {
        let p = Policy::from_json("{}").unwrap();
        assert!(!p.allow_public_ports && !p.allow_gpu && p.bind_origin);
        assert!(p.allowed_origins.is_empty());
        assert!(!p.origin_allowed("https://evil.example", Some("https://edge.example")));
        assert!(p.origin_allowed("https://edge.example", Some("https://edge.example")));
        assert!(p.granted().contains(Op::Exec));
    }

    #[test]
    fn typos_and_nonsense_are_configuration_errors() {
        for (json, word) in [
            (r#"{"allowPublicPort": true}"#, "allowPublicPort"),
            (r#"{"images": []}"#, "images"),
            (r#"{"operations": ["status", "root"]}"#, "root"),
            (r#"{"exec": {"maxFrameBytes": 10}}"#, "maxFrameBytes"),
            (r#"{"maxTtlSeconds": 0}"#, "maxTtlSeconds"),
        ] {
            let e = Policy::from_json(json).unwrap_err();
            assert_eq!(e.status(), 500);
            assert!(e.to_string().contains(word), "{e}");
        }
    }
}
