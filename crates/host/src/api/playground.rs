//! How a playground page gets its connection, without a token ever being written into a page.
//!
//! By default the page runs in **capability mode**: `/playground/config.json` names the edge
//! proxy mounted at `/edge`, the page creates its sandbox through it and drives it with the
//! capability it gets back. The config holds no secret, so any origin may read it (whether that
//! origin may then use the proxy is the edge policy's call).
//!
//! With `--dev` (refused unless the host listens on loopback) the page instead receives an API
//! token, for pointing the playground at another API (`--playground-api`, e.g. Northflank's).
//! That answer goes only to requests that are plainly from this machine's own pages: a loopback
//! `Host` (which defeats DNS rebinding), and no `Origin` other than the host's own. No CORS
//! headers are sent, so a page of another site cannot read it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flankbox_protocol::{ApiError, ErrorBody};

use super::is_loopback_host;
use crate::host::Host;

/// How long a playground sandbox may live before the host's reaper deletes it.
pub const PLAYGROUND_TTL_SECONDS: u64 = 30 * 60;

fn refuse(message: &str) -> Response {
    let body = ErrorBody {
        error: ApiError {
            status: Some(403),
            message: message.into(),
            id: None,
            details: None,
        },
    };
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

pub(super) async fn config(State(host): State<Arc<Host>>, headers: HeaderMap) -> Response {
    if !host.config.dev {
        let body = serde_json::json!({
            "mode": "edge",
            // Relative to the host that served this config.
            "edgePath": super::edge::MOUNT,
            "ttlSeconds": PLAYGROUND_TTL_SECONDS,
        });
        return (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            axum::Json(body),
        )
            .into_response();
    }
    let host_header = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host_header) {
        return refuse("dev mode serves the playground's credentials to this machine's own pages only");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if origin != format!("http://{host_header}") {
            return refuse("dev mode serves the playground's credentials to same-origin pages only");
        }
    }
    let c = &host.config;
    let body = serde_json::json!({
        "mode": "dev",
        // Empty: this host. Otherwise the API the page talks to, e.g. Northflank's.
        "baseUrl": c.playground_api.as_deref().unwrap_or(""),
        "projectId": c.playground_project,
        "token": c.playground_token.as_deref().unwrap_or(&c.token),
        "ttlSeconds": PLAYGROUND_TTL_SECONDS,
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_count() {
        for ok in [
            "127.0.0.1:7420",
            "localhost:7420",
            "localhost",
            "[::1]:7420",
            "p80--svc--proj.localhost:7420",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:7420",
            "10.0.0.1:7420",
            "",
            "localhost.evil.example",
            "[2001:db8::1]:80",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
