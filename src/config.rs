//! Where the API is and who is calling: base URL, token, project, team.

use crate::error::{Error, Result};

/// The default API: Northflank itself.
pub const NORTHFLANK_API: &str = "https://api.northflank.com";

/// A client's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API token.
    pub token: String,
    /// Project of every call.
    pub project_id: String,
    /// Team, for team-scoped tokens.
    pub team_id: Option<String>,
    /// `https://api.northflank.com`, or a local host such as `http://127.0.0.1:7420`.
    pub base_url: String,
    /// Whether `token` is an edge proxy's capability for one sandbox.
    pub is_capability: bool,
}

/// `encodeURIComponent`, as the official SDK encodes REST path parameters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ClientConfig {
    /// Checks and normalises the configuration.
    pub fn new(token: String, project_id: String, team_id: Option<String>, base_url: Option<String>) -> Result<Self> {
        let base_url = base_url
            .unwrap_or_else(|| NORTHFLANK_API.into())
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "baseUrl must start with http:// or https://, got {base_url:?}"
            )));
        }
        if project_id.is_empty() {
            return Err(Error::Invalid("projectId is required".into()));
        }
        Ok(Self {
            token,
            project_id,
            team_id: team_id.filter(|t| !t.is_empty()),
            base_url,
            is_capability: false,
        })
    }

    /// The same API with an edge proxy's capability for one sandbox in place of the token.
    pub fn with_capability(&self, capability: String) -> Self {
        Self {
            token: capability,
            is_capability: true,
            ..self.clone()
        }
    }

    /// `/v1/[teams/{t}/]projects/{p}{rest}`, with the ids encoded.
    pub fn project_path(&self, rest: &str) -> String {
        let team = self
            .team_id
            .as_deref()
            .map(|t| format!("/teams/{}", encode_component(t)))
            .unwrap_or_default();
        format!("/v1{team}/projects/{}{rest}", encode_component(&self.project_id))
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The exec WebSocket URL of a service (ids not encoded, as the SDK does).
    pub fn exec_url(&self, service_id: &str) -> String {
        let ws = if let Some(rest) = self.base_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.base_url.trim_start_matches("http://"))
        };
        format!(
            "{ws}{}",
            flankbox_protocol::exec::exec_path(self.team_id.as_deref(), &self.project_id, service_id)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_paths_and_urls() {
        let c = ClientConfig::new(
            "t".into(),
            "my project".into(),
            None,
            Some("http://127.0.0.1:7420/".into()),
        )
        .unwrap();
        assert_eq!(c.project_path("/services"), "/v1/projects/my%20project/services");
        assert_eq!(c.url("/v1/plans"), "http://127.0.0.1:7420/v1/plans");
        assert_eq!(
            c.exec_url("s1"),
            "ws://127.0.0.1:7420/v1/command-exec/projects/my project/services/s1"
        );
        let c = ClientConfig::new("t".into(), "p".into(), Some("team".into()), None).unwrap();
        assert_eq!(c.project_path(""), "/v1/teams/team/projects/p");
        assert_eq!(
            c.exec_url("s"),
            "wss://api.northflank.com/v1/command-exec/teams/team/projects/p/services/s"
        );
    }

    #[test]
    fn rejects_bad_configuration() {
        assert!(ClientConfig::new("t".into(), "p".into(), None, Some("ftp://x".into())).is_err());
        assert!(ClientConfig::new("t".into(), String::new(), None, None).is_err());
    }
}
