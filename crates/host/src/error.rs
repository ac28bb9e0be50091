//! The host's one error type, and its Northflank-shaped JSON body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flankbox_protocol::{ApiError, ErrorBody, ValidationError};

use crate::runtime::RuntimeError;

/// Everything that can go wrong in a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such resource.
    #[error("{kind} {id} not found")]
    NotFound {
        /// "Service", "Volume", …
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request is malformed or breaks a rule.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The request body is not the JSON the endpoint takes.
    #[error("Invalid request body: {0}")]
    Body(String),
    /// The request clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong API token.
    #[error("Unauthenticated: missing or invalid API token")]
    Unauthorized,
    /// The host cannot provide what was asked for (a GPU, an image).
    #[error("{0}")]
    Unavailable(String),
    /// The sandbox runtime failed.
    #[error("sandbox runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] rusqlite::Error),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result with the host's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A missing service.
    pub fn no_service(id: &str) -> Self {
        Self::NotFound {
            kind: "Service",
            id: id.into(),
        }
    }

    /// A missing volume.
    pub fn no_volume(id: &str) -> Self {
        Self::NotFound {
            kind: "Volume",
            id: id.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Invalid(_) | Self::Body(_) | Self::Unavailable(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Runtime(RuntimeError::Unsupported(_)) => StatusCode::BAD_REQUEST,
            Self::Runtime(_) | Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body the client sees. Server-side failures keep their details in the log, under the
    /// same id.
    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        let id = format!("err-{:016x}", rand::random::<u64>());
        let (message, details) = match self {
            Self::Invalid(v) => (
                format!("Invalid request: {v}"),
                Some(serde_json::json!({ "field": v.field, "reason": v.message })),
            ),
            Self::NotFound { kind, id } => (self.to_string(), Some(serde_json::json!({ "kind": kind, "id": id }))),
            _ if status.is_server_error() => {
                tracing::error!(error_id = %id, "{self}");
                ("Internal error; see the host log for this error id".to_string(), None)
            }
            _ => (self.to_string(), None),
        };
        ErrorBody {
            error: ApiError {
                status: Some(status.as_u16()),
                message,
                id: Some(id),
                details,
            },
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_the_field() {
        let body = Error::Invalid(ValidationError::new("billing.deploymentPlan", "unknown plan")).body();
        assert_eq!(body.error.status, Some(400));
        assert!(body.error.message.contains("billing.deploymentPlan"));
        assert_eq!(body.error.details.unwrap()["field"], "billing.deploymentPlan");
        assert!(body.error.id.unwrap().starts_with("err-"));
    }

    #[test]
    fn internal_errors_hide_their_details() {
        let body = Error::Internal("secret path /root/x".into()).body();
        assert_eq!(body.error.status, Some(500));
        assert!(!body.error.message.contains("/root/x"));
    }
}
