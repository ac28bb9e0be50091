//! Plans, regions, the front page, and the JSON answers for unknown routes and panics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use flankbox_protocol::plans::PLANS;
use flankbox_protocol::{ApiError, ErrorBody};

use super::ok;
use crate::host::Host;

pub(super) async fn plans() -> Response {
    let plans: Vec<_> = PLANS
        .iter()
        .map(|p| serde_json::json!({ "id": p.id, "name": p.id, "cpuResource": f64::from(p.cpu_millis) / 1000.0, "ramResource": p.memory_mib }))
        .collect();
    ok(serde_json::json!({ "plans": plans }))
}

pub(super) async fn regions() -> Response {
    ok(serde_json::json!({ "regions": [{ "id": "local", "name": "This machine", "gpuDevices": [] }] }))
}

pub(super) async fn index(State(host): State<Arc<Host>>) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>flankbox host</title>\
         <h1>flankbox local host</h1><p>The Northflank sandbox API is served under <code>/v1</code>.</p>\
         <p>Isolation: {}</p>",
        host.isolation()
    ))
}

pub(super) fn error(status: StatusCode, message: String) -> Response {
    let body = ErrorBody {
        error: ApiError {
            status: Some(status.as_u16()),
            message,
            id: None,
            details: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

pub(super) async fn not_found(uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("No route for {}", uri.path()))
}

pub(super) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error".into())
}
