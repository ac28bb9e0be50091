//! REST requests as data, and responses parsed into results (contract §1.4, §1.5).
//!
//! The transport (fetch in wasm) only moves bytes; everything about what to send and what an
//! answer means lives here, so plain `cargo test` covers it.

use flankbox_protocol::Envelope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }
}

/// One REST call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// Method.
    pub method: Method,
    /// Path (and query) below the base URL.
    pub path: String,
    /// JSON body.
    pub body: Option<String>,
    /// Sent with fetch's `keepalive`, so that it completes after the page that sent it is gone.
    pub keepalive: bool,
}

impl ApiRequest {
    /// A GET.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::Get, path.into(), None)
    }

    fn new(method: Method, path: String, body: Option<String>) -> Self {
        Self {
            method,
            path,
            body,
            keepalive: false,
        }
    }

    /// The same call, sent with fetch's `keepalive` when `on` (a page's last request, on
    /// `pagehide`): the browser completes it after the page is gone.
    pub fn keepalive(self, on: bool) -> Self {
        Self { keepalive: on, ..self }
    }

    /// A POST with a JSON body.
    pub fn post<T: Serialize + ?Sized>(path: impl Into<String>, body: &T) -> Result<Self> {
        let body = serde_json::to_string(body).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Self::new(Method::Post, path.into(), Some(body)))
    }

    /// A POST with a body that is JSON text already.
    pub fn post_json(path: impl Into<String>, json: String) -> Self {
        Self::new(Method::Post, path.into(), Some(json))
    }

    /// A POST without a body (pause, restart).
    pub fn post_empty(path: impl Into<String>) -> Self {
        Self::new(Method::Post, path.into(), None)
    }

    /// A DELETE.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::Delete, path.into(), None)
    }

    /// Whether repeating the call is harmless. Only reads are: a repeated create can make two
    /// services (the official SDK retries creates and can), a repeated scale can undo a pause.
    pub fn idempotent(&self) -> bool {
        self.method == Method::Get
    }
}

/// What an error body says (`{"error": {"message", "id", "details"}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorParts {
    /// The message.
    pub message: String,
    /// The error id.
    pub id: Option<String>,
    /// The details, as JSON text.
    pub details: Option<String>,
}

/// The error for a non-200 answer. Only HTTP 200 is success (contract §1.4): anything else
/// carries the server's message, id and details, or the raw body when it is not Northflank's
/// shape.
pub fn api_error(status: u16, parts: Option<ErrorParts>, raw_body: &str) -> Error {
    match parts {
        Some(p) => Error::Api {
            status,
            message: if p.message.is_empty() {
                format!("HTTP {status}")
            } else {
                p.message
            },
            id: p.id,
            details: p.details,
        },
        None => {
            let snippet: String = raw_body.chars().take(200).collect();
            let message = if snippet.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {snippet}")
            };
            Error::Api {
                status,
                message,
                id: None,
                details: None,
            }
        }
    }
}

/// What the client reads of an error body ([`flankbox_protocol::ErrorBody`]): `details` is kept
/// as the JSON text it came as, so no JSON tree is built (nor its reader shipped).
#[derive(Deserialize)]
struct ErrorView<'a> {
    #[serde(borrow)]
    error: ApiErrorView<'a>,
}

#[derive(Deserialize)]
struct ApiErrorView<'a> {
    #[serde(default)]
    message: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, borrow)]
    details: Option<&'a RawValue>,
}

/// Reads an error body.
pub fn error_parts(body: &str) -> Option<ErrorParts> {
    let ErrorView { error } = serde_json::from_slice(body.as_bytes()).ok()?;
    Some(ErrorParts {
        message: error.message,
        id: error.id,
        details: error.details.map(|d| d.get().to_string()),
    })
}

/// Parses an answer: its envelope on 200, the API's error otherwise. The client's one reader of
/// REST answers.
pub fn parse<T: DeserializeOwned>(status: u16, body: &str) -> Result<Envelope<T>> {
    check(status, body)?;
    // from_slice, as frames are read: one reader in the package, not two.
    serde_json::from_slice(body.as_bytes()).map_err(|e| Error::Protocol(format!("unexpected response body: {e}")))
}

/// The error of an answer that is not a 200, for answers whose body is not read (or is handed to
/// the caller as it came).
pub fn check(status: u16, body: &str) -> Result<()> {
    if status == 200 {
        Ok(())
    } else {
        Err(api_error(status, error_parts(body), body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn success_needs_exactly_200() {
        let ok: Envelope<Value> = parse(200, r#"{"data":{"id":"x"}}"#).unwrap();
        assert_eq!(ok.data["id"], "x");
        let err = parse::<Value>(201, r#"{"data":{}}"#).unwrap_err();
        assert_eq!(err.status(), Some(201));
    }

    #[test]
    fn errors_keep_message_id_and_details() {
        let err = parse::<Value>(400, r#"{"error":{"status":400,"message":"Invalid request: name: too short","id":"err-9","details":{"field":"name"}}}"#).unwrap_err();
        assert_eq!(err.to_string(), "Invalid request: name: too short");
        assert_eq!(err.id(), Some("err-9"));
        assert_eq!(err.details(), Some(r#"{"field":"name"}"#));
        assert_eq!(err.code(), "BAD_REQUEST");
    }

    #[test]
    fn a_non_json_error_keeps_the_body() {
        let err = parse::<Value>(502, "<html>Bad gateway</html>").unwrap_err();
        assert_eq!(err.code(), "SERVER_ERROR");
        assert!(err.to_string().contains("Bad gateway"));
        assert!(matches!(
            parse::<Value>(200, "not json").unwrap_err(),
            Error::Protocol(_)
        ));
    }

    #[test]
    fn only_reads_are_idempotent() {
        assert!(ApiRequest::get("/x").idempotent());
        assert!(!ApiRequest::post_empty("/x").idempotent());
        assert!(!ApiRequest::delete("/x").idempotent());
        assert!(ApiRequest::delete("/x").keepalive(true).keepalive && !ApiRequest::delete("/x").keepalive);
    }
}
