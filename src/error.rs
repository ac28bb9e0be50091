//! The client's one error type. At the JavaScript boundary it becomes a JS `Error` with `name`,
//! `code`, `status`, `message`, `id` and `details`.

/// Everything that can go wrong in a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error: its status, message, id and details are kept.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The server's error id.
        id: Option<String>,
        /// The server's details, as JSON text.
        details: Option<String>,
    },
    /// An argument was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The call took longer than its timeout.
    #[error("timed out after {ms} ms: {what}")]
    Timeout {
        /// What timed out.
        what: String,
        /// The timeout.
        ms: u64,
    },
    /// The caller's `AbortSignal` fired.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The network failed (DNS, refused, reset, CORS).
    #[error("network error: {0}")]
    Network(String),
    /// The server said something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An exec stream ended before its command did: the outcome is unknown.
    #[error("the exec stream was lost before the command finished: {0}")]
    StreamLost(String),
    /// The server refused or could not run a command (an exec `error` frame).
    #[error("{0}")]
    Exec(String),
    /// The sandbox's deployment failed.
    #[error("the sandbox failed to deploy: {0}")]
    DeploymentFailed(String),
}

/// Result with the client's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable machine code: branch on this, not on the message.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api { status, .. } => match status {
                400 => "BAD_REQUEST",
                401 => "UNAUTHENTICATED",
                403 => "FORBIDDEN",
                404 => "NOT_FOUND",
                409 => "CONFLICT",
                429 => "RATE_LIMITED",
                500..=599 => "SERVER_ERROR",
                _ => "API_ERROR",
            },
            Self::Invalid(_) => "INVALID_ARGUMENT",
            Self::Timeout { .. } => "TIMEOUT",
            Self::Aborted(_) => "ABORTED",
            Self::Network(_) => "NETWORK",
            Self::Protocol(_) => "PROTOCOL",
            Self::StreamLost(_) => "STREAM_LOST",
            Self::Exec(_) => "EXEC_FAILED",
            Self::DeploymentFailed(_) => "DEPLOYMENT_FAILED",
        }
    }

    /// The JS error `name`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Api { .. } => "NorthflankApiError",
            Self::Invalid(_) => "TypeError",
            Self::Timeout { .. } => "TimeoutError",
            Self::Aborted(_) => "AbortError",
            Self::Network(_) => "NetworkError",
            Self::Protocol(_) => "ProtocolError",
            Self::StreamLost(_) => "StreamLostError",
            Self::Exec(_) => "ExecError",
            Self::DeploymentFailed(_) => "DeploymentError",
        }
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error id, for API errors.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Api { id, .. } => id.as_deref(),
            _ => None,
        }
    }

    /// The server's details (JSON text), for API errors.
    pub fn details(&self) -> Option<&str> {
        match self {
            Self::Api { details, .. } => details.as_deref(),
            _ => None,
        }
    }
}

impl From<flankbox_protocol::exec::ArgvError> for Error {
    fn from(e: flankbox_protocol::exec::ArgvError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<flankbox_protocol::ValidationError> for Error {
    fn from(e: flankbox_protocol::ValidationError) -> Self {
        Self::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_per_kind() {
        let errors = [
            Error::Timeout {
                what: "x".into(),
                ms: 1,
            },
            Error::Aborted("x".into()),
            Error::Network("x".into()),
            Error::Protocol("x".into()),
            Error::StreamLost("x".into()),
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(Error::code).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(
            codes.contains("TIMEOUT")
                && codes.contains("ABORTED")
                && codes.contains("NETWORK")
                && codes.contains("PROTOCOL")
        );
    }

    #[test]
    fn api_errors_keep_the_servers_words() {
        let e = Error::Api {
            status: 404,
            message: "Service x not found".into(),
            id: Some("err-1".into()),
            details: None,
        };
        assert_eq!((e.code(), e.status(), e.id()), ("NOT_FOUND", Some(404), Some("err-1")));
        assert_eq!(e.to_string(), "Service x not found");
    }
}
