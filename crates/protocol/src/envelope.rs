//! Success and error envelopes (contract §1.4, §1.5).

use serde::{Deserialize, Serialize};

/// The success envelope: the payload is always under `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The payload.
    pub data: T,
    /// Present on list endpoints only, as a sibling of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl<T> Envelope<T> {
    /// An envelope without pagination.
    pub fn new(data: T) -> Self {
        Self { data, pagination: None }
    }
}

/// Pagination of a list response.
///
/// `cursor` must be *absent* on the last page: the official SDK keeps fetching while it is not
/// `undefined`, so a `null` cursor would loop forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Whether another page follows (the SDK ignores it and looks at `cursor`).
    pub has_next_page: bool,
    /// Opaque, URL-safe cursor of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Number of items on this page.
    pub count: usize,
}

/// The error body: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// A Northflank API error. The SDK reads `message`, `id` and `details`; the status comes from the
/// HTTP status line, and is repeated here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status, repeated in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Error id, for support and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Structured details, e.g. the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
