//! The edge proxy, mounted natively at `/edge`: the same logic as the `flankbox/edge` Worker
//! (`flankbox-edge`), with this host as its upstream. Pages (the playground first) drive their
//! sandboxes with capabilities, and never see the host's token.
//!
//! Upstream calls go through this host's own API routes, in-process and with the host's token,
//! as a Worker's would go to Northflank, so the API's own checks (the token first) apply to
//! everything the proxy forwards. The exec relay dials this host's listener: a WebSocket needs
//! a connection.
//!
//! - `hold`: sandboxes kept for as long as a page holds a socket open for them;
//! - `relay`: the exec relay.

mod hold;
mod relay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use flankbox_edge::proxy::{Io, OwnedRequest, Route};
use flankbox_edge::{Edge, EdgeError, Op};
use tower::ServiceExt;

use crate::host::Host;

/// Where the proxy is mounted.
pub const MOUNT: &str = "/edge";
/// The largest body a browser may send to the proxy.
const MAX_BODY: usize = 1 << 20;
/// The largest answer read from the API (a listing of 100 services is far less).
const MAX_ANSWER: usize = 64 << 20;

/// The proxy, its upstream (this host's API routes) and the sandboxes pages hold.
pub(crate) struct EdgeMount {
    host: Arc<Host>,
    edge: Edge,
    upstream: Router,
    leases: Mutex<HashMap<String, hold::Lease>>,
}

impl EdgeMount {
    /// The proxy `edge` in front of `upstream`, this host's API routes.
    pub(crate) fn new(host: Arc<Host>, edge: Edge, upstream: Router) -> Arc<Self> {
        Arc::new(Self {
            host,
            edge,
            upstream,
            leases: Mutex::default(),
        })
    }

    /// The proxy's upstream, with the host's token.
    fn io(&self) -> &Self {
        self
    }
}

impl Io for EdgeMount {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), EdgeError> {
        let failed = |e: &dyn std::fmt::Display| EdgeError::Upstream(e.to_string());
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.config.listen.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.host.config.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default()))
            .map_err(|e| failed(&e))?;
        let response = match self.upstream.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| failed(&e))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn nonce(&self) -> String {
        use rand::Rng;
        (0..6)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::rng().random_range(0..36)]))
            .collect()
    }
}

fn now() -> u64 {
    crate::model::now_unix()
}

fn refusal(e: &EdgeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    (status, [(header::CONTENT_TYPE, "application/json")], e.body()).into_response()
}

/// Any request below `/edge`.
pub(super) async fn handle(State(mount): State<Arc<EdgeMount>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().strip_prefix(MOUNT).unwrap_or("/").to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let origin = header(header::ORIGIN);
    // The proxy's own origin as the page sees it: same-origin pages are always allowed. Only
    // for a loopback name, since a Host header is what a DNS-rebinding page controls: under any
    // other name, the page's origin must be listed in the policy's allowedOrigins.
    let own_origin = header(header::HOST)
        .filter(|h| super::is_loopback_host(h))
        .map(|h| format!("http://{h}"));
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let edge = &mount.edge;

    let is_upgrade = header(header::UPGRADE).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let (true, Some(id)) = (is_upgrade, path.strip_prefix(hold::HOLD)) {
        if let Err(e) = edge.check_origin(origin.as_deref(), own_origin.as_deref()) {
            return refusal(&e);
        }
        let id = id.to_string();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.max_message_size(1 << 12).on_upgrade(move |socket| {
                hold::hold(
                    mount,
                    hold::Holder {
                        id,
                        client,
                        origin,
                        own_origin,
                    },
                    socket,
                )
            }),
            Err(rejection) => rejection.into_response(),
        };
    }
    if is_upgrade {
        let grant = match edge.open_exec(&path, origin.as_deref(), own_origin.as_deref()) {
            Ok(g) => g,
            Err(e) => return refusal(&e),
        };
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        return ws
            .max_message_size(edge.exec_socket_limit())
            .on_upgrade(move |socket| relay::relay(mount, grant, origin, socket));
    }

    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return refusal(&EdgeError::BadRequest(format!("the body is over {MAX_BODY} bytes"))),
    };
    let rest = OwnedRequest {
        method: parts.method.as_str().to_string(),
        path,
        query,
        authorization: header(header::AUTHORIZATION),
        origin,
        own_origin,
        client,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        now: now(),
    };
    let answer = match Edge::route(&rest.method, &rest.path) {
        Ok(Route::Create) => create(mount, rest).await,
        route => {
            let answer = edge.handle(&rest.borrow(), mount.io()).await;
            // Deleted by its page: no hold keeps it any more, nor needs to end it.
            if let (
                Ok(Route::Sandbox {
                    id, op: Op::Destroy, ..
                }),
                200,
            ) = (route, answer.status)
            {
                mount.release(&id);
            }
            answer
        }
    };
    let mut response = Response::new(if answer.status == 204 {
        Body::empty()
    } else {
        Body::from(answer.body)
    });
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A create, run to its end in a task of its own.
///
/// A page that goes away while its create is in flight never learns the sandbox's name and
/// capability, so nothing it does later can delete it. hyper drops the handler when an HTTP/1
/// client hangs up, which may be mid-way through the upstream create, where whether the sandbox
/// exists is unknown. So a create whose answer finds nobody waiting is deleted at once. An
/// answer that reaches a closing page too late to be read is covered by the hold: a held create
/// nobody comes to hold is deleted.
async fn create(mount: Arc<EdgeMount>, rest: OwnedRequest) -> flankbox_edge::EdgeResponse {
    let (answered, answer) = tokio::sync::oneshot::channel();
    let held = hold::wants_hold(&rest.body);
    tokio::spawn(async move {
        let answer = mount.edge.handle(&rest.borrow(), mount.io()).await;
        let made = (answer.status == 200)
            .then(|| serde_json::from_str::<flankbox_protocol::Envelope<Made>>(&answer.body).ok())
            .flatten()
            .map(|made| made.data.id);
        if let (Some(id), true) = (&made, held) {
            mount.lease(id);
        }
        if let (Some(id), Err(_)) = (made, answered.send(answer)) {
            tracing::info!("edge: the client went away before its create answered; deleting {id}");
            mount.edge.destroy(&id, mount.io()).await;
        }
    });
    answer.await.unwrap_or_else(|_| flankbox_edge::EdgeResponse {
        status: 500,
        headers: Vec::new(),
        body: String::new(),
    })
}

/// The id of a sandbox a create made.
#[derive(serde::Deserialize)]
struct Made {
    id: String,
}
