//! Refusals. Each has an HTTP status and becomes a Northflank-shaped body,
//! `{"error": {"status", "message", "details": {"code"}}}`, so clients read them like the API's.

use flankbox_protocol::{ApiError, ErrorBody};

/// Why the proxy refuses a request, or cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    /// No capability was presented.
    #[error("a capability is required: send `Authorization: Bearer <capability>` (or it as the exec init's apiToken)")]
    Unauthenticated,
    /// The capability is malformed or was not signed by this proxy's current secret.
    #[error("invalid capability: it was not issued by this proxy, was altered, or its secret has been rotated")]
    InvalidCapability,
    /// The capability's time is up.
    #[error("the capability expired at {0} (Unix seconds); its sandbox is destroyed")]
    ExpiredCapability(u64),
    /// The capability does not cover this request.
    #[error("{0}")]
    Forbidden(String),
    /// The policy does not allow this request.
    #[error("not allowed by the proxy's policy: {0}")]
    Policy(String),
    /// The request's origin is not allowed.
    #[error("origin {0} is not allowed by the proxy's policy")]
    Origin(String),
    /// The client already has as many live sandboxes as the policy allows.
    #[error("this client already has {0} live sandboxes, the most the policy allows; destroy one first")]
    TooManySandboxes(u32),
    /// The client already has as many live volumes as the policy allows.
    #[error(
        "this client already has {0} live volumes, the most the policy allows; destroy a sandbox with its volume first"
    )]
    TooManyVolumes(u32),
    /// An exec message over the policy's size.
    #[error("an exec message of {size} bytes is over the policy's limit of {limit} bytes")]
    FrameTooLarge {
        /// The message's size.
        size: usize,
        /// The policy's limit.
        limit: usize,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such route on the proxy.
    #[error("the edge proxy has no {0}")]
    NotFound(String),
    /// The upstream API could not be reached or answered nonsense.
    #[error("the upstream API failed: {0}")]
    Upstream(String),
    /// The proxy's own configuration is wrong.
    #[error("edge proxy configuration: {0}")]
    Config(String),
}

impl EdgeError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated | Self::InvalidCapability | Self::ExpiredCapability(_) => 401,
            Self::Forbidden(_) | Self::Policy(_) | Self::Origin(_) => 403,
            Self::TooManySandboxes(_) | Self::TooManyVolumes(_) => 429,
            Self::FrameTooLarge { .. } => 413,
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Upstream(_) => 502,
            Self::Config(_) => 500,
        }
    }

    /// A stable code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "CAPABILITY_REQUIRED",
            Self::InvalidCapability => "CAPABILITY_INVALID",
            Self::ExpiredCapability(_) => "CAPABILITY_EXPIRED",
            Self::Forbidden(_) => "CAPABILITY_SCOPE",
            Self::Policy(_) => "POLICY",
            Self::Origin(_) => "ORIGIN",
            Self::TooManySandboxes(_) => "TOO_MANY_SANDBOXES",
            Self::TooManyVolumes(_) => "TOO_MANY_VOLUMES",
            Self::FrameTooLarge { .. } => "FRAME_TOO_LARGE",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Upstream(_) => "UPSTREAM",
            Self::Config(_) => "CONFIG",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let body = ErrorBody {
            error: ApiError {
                status: Some(self.status()),
                message: self.to_string(),
                id: None,
                details: Some(serde_json::json!({ "code": self.code() })),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_northflank_shaped() {
        let e = EdgeError::TooManySandboxes(2);
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["status"], 429);
        assert_eq!(v["error"]["details"]["code"], "TOO_MANY_SANDBOXES");
        assert!(v["error"]["message"].as_str().unwrap().contains("2 live sandboxes"));
    }
}
