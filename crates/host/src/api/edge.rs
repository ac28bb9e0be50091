//! The edge proxy, mounted natively at `/edge`: the same logic as the `flankbox/edge` Worker
//! (`flankbox-edge`), with this host as its upstream. Pages (the playground first) drive their
//! sandboxes with capabilities, and never see the host's token.
//!
//! Upstream calls go over a real socket to this host's own listener, as they would from a
//! Worker to Northflank, so the API's own checks apply to everything the proxy forwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flankbox_edge::proxy::{EdgeRequest, ExecGrant, Io, Route};
use flankbox_edge::{EdgeError, Op};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TungClose;
use tokio_tungstenite::tungstenite::Message as TungMessage;

use crate::host::Host;

/// Where the proxy is mounted.
pub const MOUNT: &str = "/edge";
/// The largest body a browser may send to the proxy.
const MAX_BODY: usize = 1 << 20;

/// Calls to this host's own API with its token.
struct SelfIo {
    listen: SocketAddr,
    token: String,
}

impl Io for SelfIo {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), String> {
        let stream = tokio::net::TcpStream::connect(self.listen)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.listen.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 64 << 20)
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn nonce(&self) -> String {
        use rand::Rng;
        (0..6)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::rng().random_range(0..36)]))
            .collect()
    }
}

fn io(host: &Host) -> SelfIo {
    SelfIo {
        listen: host.config.listen,
        token: host.config.token.clone(),
    }
}

fn now() -> u64 {
    crate::model::now_unix()
}

fn refusal(e: &EdgeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    (status, [(header::CONTENT_TYPE, "application/json")], e.body()).into_response()
}

/// A REST request below `/edge`, owned, so that a create can run on in a task of its own.
struct Rest {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    origin: Option<String>,
    own_origin: Option<String>,
    client: String,
    body: String,
}

impl Rest {
    fn request(&self) -> EdgeRequest<'_> {
        EdgeRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            authorization: self.authorization.as_deref(),
            origin: self.origin.as_deref(),
            own_origin: self.own_origin.as_deref(),
            client: &self.client,
            body: &self.body,
            now: now(),
        }
    }
}

/// Any request below `/edge`.
pub(super) async fn handle(State(host): State<Arc<Host>>, request: Request) -> Response {
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
        .filter(|h| super::playground::is_loopback_host(h))
        .map(|h| format!("http://{h}"));
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let edge = &host.edge;

    let is_upgrade = header(header::UPGRADE).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let (true, Some(id)) = (is_upgrade, path.strip_prefix(HOLD)) {
        if let Err(e) = edge.check_origin(origin.as_deref(), own_origin.as_deref()) {
            return refusal(&e);
        }
        let id = id.to_string();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws
                .max_message_size(1 << 12)
                .on_upgrade(move |socket| hold(host, id, client, origin, own_origin, socket)),
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
        let max = edge.policy().exec.max_frame_bytes;
        return ws
            // Larger messages are refused by the proxy with a clear error, not by the socket.
            .max_message_size(max.saturating_mul(2).max(1 << 16))
            .on_upgrade(move |socket| relay(host, grant, origin, socket));
    }

    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return refusal(&EdgeError::BadRequest(format!("the body is over {MAX_BODY} bytes"))),
    };
    let rest = Rest {
        method: parts.method.as_str().to_string(),
        path,
        query,
        authorization: header(header::AUTHORIZATION),
        origin,
        own_origin,
        client,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let answer = match flankbox_edge::Edge::route(&rest.method, &rest.path) {
        // A page that goes away while its create is in flight never learns the sandbox's name
        // and capability, so nothing it does later can delete it. hyper drops this handler when
        // an HTTP/1 client hangs up, which may be mid-way through the upstream create, where
        // whether the sandbox exists is unknown. So a create runs to its end in a task of its
        // own, and one whose answer finds nobody waiting is deleted at once. An answer that
        // reaches a closing page too late to be read is covered by the hold (below): a held
        // create nobody comes to hold is deleted.
        Ok(Route::Create) => {
            let (answered, answer) = tokio::sync::oneshot::channel();
            let held = wants_hold(&rest.body);
            tokio::spawn(async move {
                let io = io(&host);
                let answer = host.edge.handle(&rest.request(), &io).await;
                let made = (answer.status == 200)
                    .then(|| serde_json::from_str::<serde_json::Value>(&answer.body).ok())
                    .flatten()
                    .and_then(|made| made["data"]["id"].as_str().map(str::to_string));
                if let (Some(id), true) = (&made, held) {
                    lease(&host, id);
                }
                if let (Some(id), Err(_)) = (made, answered.send(answer)) {
                    tracing::info!("edge: the client went away before its create answered; deleting {id}");
                    host.edge.destroy(&id, &io).await;
                }
            });
            let Ok(answer) = answer.await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            answer
        }
        route => {
            let answer = edge.handle(&rest.request(), &io(&host)).await;
            // Deleted by its page: no hold keeps it any more, nor needs to end it.
            if let (
                Ok(Route::Sandbox {
                    id, op: Op::Destroy, ..
                }),
                200,
            ) = (route, answer.status)
            {
                leases().remove(&id);
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

/// Where a page holds its sandbox: a WebSocket to `{HOLD}{id}`, whose first message is the
/// sandbox's capability.
const HOLD: &str = "/hold/";
/// The tag by which a create asks to be held (the proxy strips `flankbox-` tags before upstream).
const HOLD_TAG: &str = "flankbox-hold";
/// How long a held create waits for its first hold before it is deleted.
const FIRST_HOLD: Duration = Duration::from_secs(10);
/// How long a held sandbox outlives its last hold (a page that reconnects keeps it).
const HOLD_GRACE: Duration = Duration::from_secs(5);

// A page's own clean-up (a keepalive DELETE on pagehide) is best effort: a browser may skip
// unload handlers or drop their requests (headless Chromium does, now and then, when a page
// is closed), and a page that crashes runs none. So a create can ask to be held: the sandbox
// then lives while a page holds a WebSocket open for it, and is deleted HOLD_GRACE after the
// last one closes (a browser closes a gone page's sockets whatever its scripts did), or
// FIRST_HOLD after its create if no page ever came to hold it (its answer was never read). The
// state lives in this process: a Worker has no such route (its pages' holds fail, and the
// lifetime ends their sandboxes).

/// Held sandboxes: how many holds each has, and a generation that a pending expiry checks.
struct Lease {
    holds: usize,
    generation: u64,
}

static LEASES: LazyLock<Mutex<HashMap<String, Lease>>> = LazyLock::new(Default::default);

fn leases() -> MutexGuard<'static, HashMap<String, Lease>> {
    LEASES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a create body asks to be held.
fn wants_hold(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b["tags"].as_array().map(|t| t.iter().any(|t| t == HOLD_TAG)))
        .unwrap_or(false)
}

/// A held create was made: it waits FIRST_HOLD for a page to hold it.
fn lease(host: &Arc<Host>, id: &str) {
    leases().insert(
        id.into(),
        Lease {
            holds: 0,
            generation: 0,
        },
    );
    expire(host, id, 0, FIRST_HOLD);
}

/// After `after`, deletes the sandbox if nothing held it meanwhile.
fn expire(host: &Arc<Host>, id: &str, generation: u64, after: Duration) {
    let (host, id) = (host.clone(), id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        {
            let mut leases = leases();
            match leases.get(&id) {
                Some(l) if l.holds == 0 && l.generation == generation => leases.remove(&id),
                _ => return,
            };
        }
        tracing::info!("edge: no page holds {id} any more; deleting it");
        host.edge.destroy(&id, &io(&host)).await;
    });
}

/// Holds a sandbox for as long as the socket is open, once its first message, the sandbox's
/// capability, is checked (by asking the proxy for the sandbox's status with it).
async fn hold(
    host: Arc<Host>,
    id: String,
    client: String,
    origin: Option<String>,
    own_origin: Option<String>,
    mut socket: WebSocket,
) {
    let capability = match tokio::time::timeout(FIRST_HOLD, socket.recv()).await {
        Ok(Some(Ok(AxumMessage::Text(t)))) => t.to_string(),
        _ => return,
    };
    let authorization = format!("Bearer {capability}");
    let path = format!("/v1/projects/edge/services/{id}");
    let request = EdgeRequest {
        method: "GET",
        path: &path,
        query: "",
        authorization: Some(&authorization),
        origin: origin.as_deref(),
        own_origin: own_origin.as_deref(),
        client: &client,
        body: "",
        now: now(),
    };
    let answer = host.edge.handle(&request, &io(&host)).await;
    if answer.status != 200 {
        let close = CloseFrame {
            code: 1008,
            reason: "not this sandbox's capability".into(),
        };
        let _ = socket.send(AxumMessage::Close(Some(close))).await;
        return;
    }
    // Only a sandbox whose create asked to be held can be (a hold may end it).
    let held = leases().get_mut(&id).map(|lease| {
        lease.holds += 1;
        lease.generation += 1;
    });
    if held.is_none() {
        let close = CloseFrame {
            code: 1008,
            reason: "this sandbox is not held".into(),
        };
        let _ = socket.send(AxumMessage::Close(Some(close))).await;
        return;
    }
    // Whatever ends the hold (a close, an error, the page gone) lets go of it.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, AxumMessage::Close(_)) {
            break;
        }
    }
    let generation = {
        let mut leases = leases();
        let Some(lease) = leases.get_mut(&id) else { return };
        lease.holds -= 1;
        lease.generation += 1;
        (lease.holds == 0).then_some(lease.generation)
    };
    if let Some(generation) = generation {
        expire(&host, &id, generation, HOLD_GRACE);
    }
}

/// Aborts a task when dropped: a refused session leaves no upstream dial behind.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn error_frame(e: &EdgeError) -> AxumMessage {
    use flankbox_protocol::exec::{ErrorData, ServerFrame};
    super::json_message(&ServerFrame::Error(ErrorData { message: e.to_string() }))
}

async fn refuse_socket(mut socket: WebSocket, e: &EdgeError, code: u16) {
    let _ = socket.send(error_frame(e)).await;
    let _ = socket
        .send(AxumMessage::Close(Some(CloseFrame {
            code,
            reason: e.code().into(),
        })))
        .await;
}

/// Relays an exec session: the browser's `init` checked and rewritten, then every message both
/// ways, each only as fast as the other side takes it (backpressure), until either side closes
/// or the session is idle too long.
async fn relay(host: Arc<Host>, grant: ExecGrant, origin: Option<String>, mut socket: WebSocket) {
    let edge = &host.edge;
    let idle = Duration::from_secs(edge.policy().exec.idle_timeout_seconds.max(1));
    // Upstream is dialled at once, in parallel with the browser's init: it carries nothing
    // until the init has been checked, and is dropped (closed) if it is refused.
    let url = format!("ws://{}{}", host.config.listen, grant.upstream_path);
    let opening = tokio::spawn(async move { tokio_tungstenite::connect_async(url.as_str()).await });
    let _abort_on_return = AbortOnDrop(opening.abort_handle());
    let first = match tokio::time::timeout(idle, socket.recv()).await {
        Ok(Some(Ok(AxumMessage::Text(t)))) => t.to_string(),
        Ok(Some(Ok(AxumMessage::Binary(b)))) => String::from_utf8_lossy(&b).into_owned(),
        _ => return,
    };
    if let Err(e) = edge.check_frame(first.len()) {
        return refuse_socket(socket, &e, 1009).await;
    }
    let init = match edge
        .exec_init_or_reap(&grant, &first, origin.as_deref(), now(), &io(&host))
        .await
    {
        Ok(init) => init,
        Err(e) => return refuse_socket(socket, &e, 1008).await,
    };
    let upstream = match opening.await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return refuse_socket(socket, &EdgeError::Upstream(e.to_string()), 1011).await,
        Err(e) => return refuse_socket(socket, &EdgeError::Upstream(e.to_string()), 1011).await,
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    if up_tx.send(TungMessage::Text(init.into())).await.is_err() {
        return;
    }
    let (mut down_tx, mut down_rx) = socket.split();
    loop {
        tokio::select! {
            from_browser = tokio::time::timeout(idle, down_rx.next()) => {
                let message = match from_browser {
                    Err(_) => {
                        let _ = up_tx.send(TungMessage::Close(None)).await;
                        let _ = down_tx.send(AxumMessage::Close(Some(CloseFrame { code: 4000, reason: "idle timeout".into() }))).await;
                        return;
                    }
                    Ok(Some(Ok(m))) => m,
                    Ok(_) => {
                        let _ = up_tx.send(TungMessage::Close(None)).await;
                        return;
                    }
                };
                let size = match &message {
                    AxumMessage::Text(t) => t.len(),
                    AxumMessage::Binary(b) => b.len(),
                    _ => 0,
                };
                if let Err(e) = edge.check_frame(size) {
                    let _ = down_tx.send(error_frame(&e)).await;
                    let _ = down_tx.send(AxumMessage::Close(Some(CloseFrame { code: 1009, reason: e.code().into() }))).await;
                    let _ = up_tx.send(TungMessage::Close(None)).await;
                    return;
                }
                let forwarded = match message {
                    AxumMessage::Text(t) => TungMessage::Text(t.as_str().into()),
                    AxumMessage::Binary(b) => TungMessage::Binary(b),
                    AxumMessage::Close(_) => {
                        let _ = up_tx.send(TungMessage::Close(None)).await;
                        return;
                    }
                    _ => continue,
                };
                if up_tx.send(forwarded).await.is_err() {
                    return;
                }
            }
            from_host = up_rx.next() => {
                let forwarded = match from_host {
                    Some(Ok(TungMessage::Text(t))) => AxumMessage::Text(t.as_str().into()),
                    Some(Ok(TungMessage::Binary(b))) => AxumMessage::Binary(b),
                    Some(Ok(TungMessage::Close(frame))) => {
                        let (code, reason) = frame.map_or((1000, String::new()), |f: TungClose| (u16::from(f.code), f.reason.to_string()));
                        let code = if CloseCode::from(code) == CloseCode::Status { 1000 } else { code };
                        let _ = down_tx.send(AxumMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                        return;
                    }
                    Some(Ok(_)) => continue,
                    _ => {
                        let _ = down_tx.send(AxumMessage::Close(Some(CloseFrame { code: 1011, reason: "upstream lost".into() }))).await;
                        return;
                    }
                };
                if down_tx.send(forwarded).await.is_err() {
                    let _ = up_tx.send(TungMessage::Close(None)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_asks_to_be_held_by_its_tag() {
        assert!(wants_hold(r#"{"name": "x", "tags": ["playground", "flankbox-hold"]}"#));
        assert!(!wants_hold(r#"{"name": "x", "tags": ["playground"]}"#));
        assert!(!wants_hold(r#"{"name": "x"}"#));
        assert!(!wants_hold("not json"));
    }
}
