//! Exposed ports: requests whose `Host` is a port's DNS name go to the sandbox.
//!
//! A public HTTP port's name is `{port}--{service}--{project}.localhost:{listen port}`. Browsers
//! resolve `*.localhost` to loopback with no set-up, so the name works on this machine as it is.
//! The request is forwarded over a socket that the sandbox's agent connected to
//! `127.0.0.1:{internalPort}` inside the sandbox's own network namespace: the sandbox keeps no
//! network interface but loopback, so this inbound path is the only one, and it cannot be used
//! to reach out. HTTP/1.1 (with WebSocket and other upgrades) and HTTP/2 (prior knowledge, for
//! `HTTP/2` ports) are proxied. Idle HTTP/1.1 connections are kept for the next request to the
//! same port of the same sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use flankbox_protocol::service::PortProtocol;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::host::{Host, PortRefusal};
use crate::runtime::sandbox::Sandbox;

/// The suffix of every port name.
const SUFFIX: &str = ".localhost";

/// A port's address, as read from a `Host` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PortAddress<'a> {
    /// The port's `name`.
    pub port: &'a str,
    /// The service id.
    pub service: &'a str,
    /// The project id.
    pub project: &'a str,
}

/// Reads `{port}--{service}--{project}.localhost[:N]`. Ids never contain `--` (names are
/// `-`-separated words), so the first two `--` split it.
pub(crate) fn parse_host(host: &str) -> Option<PortAddress<'_>> {
    let name = super::host_name(host);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() <= SUFFIX.len() || !name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX) {
        return None;
    }
    let label = &name[..name.len() - SUFFIX.len()];
    if label.contains('.') {
        return None;
    }
    let mut parts = label.splitn(3, "--");
    let address = PortAddress {
        port: parts.next()?,
        service: parts.next()?,
        project: parts.next()?,
    };
    [address.port, address.service, address.project]
        .iter()
        .all(|p| !p.is_empty())
        .then_some(address)
}

/// Outermost middleware: a request for a port's name is proxied, any other goes to the API.
pub(crate) async fn proxy(State(proxy): State<Arc<PortProxy>>, request: Request, next: Next) -> Response {
    let host_header = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_ascii_lowercase();
    match parse_host(&host_header) {
        Some(address) => forward(&proxy, &address, &host_header, request)
            .await
            .unwrap_or_else(|refusal| page(&refusal)),
        None => next.run(request).await,
    }
}

/// The page a browser shows when a port cannot be reached.
fn page(refusal: &PortRefusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let message = html_escape(&refusal.message);
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>{code} {reason}</title>\
         <body style=\"font:16px system-ui;margin:3em\"><h1>{code} {reason}</h1><p>{message}</p>\
         <p><small>flankbox-host port proxy</small></p></body>",
        code = status.as_u16(),
        reason = status.canonical_reason().unwrap_or(""),
    );
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Any page may read why a port cannot be reached (it names only what the address already
    // does), so that a page can wait for a server inside a sandbox to come up.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bad_gateway(message: String) -> PortRefusal {
    PortRefusal { status: 502, message }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), dropped both ways.
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !(keep_upgrade && t == "upgrade"))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        if !(keep_upgrade && name == header::CONNECTION) {
            headers.remove(name);
        }
    }
    headers.remove("keep-alive");
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// The proxy of ports: the host, and a pooling HTTP/1.1 client into sandboxes.
pub(crate) struct PortProxy {
    host: Arc<Host>,
    /// Idle connections are kept for the next request to the same port of the same sandbox,
    /// so that a kept-alive browser does not pay for a dial through the agent on every request.
    client: Client<AgentConnector, Body>,
    sandboxes: Sandboxes,
}

/// Idle connections kept at most per port of a sandbox.
const POOL_MAX_PER_PORT: usize = 16;
/// How long an idle connection is kept: it holds a socket in the sandbox (and a
/// single-threaded server's attention).
const POOL_IDLE: Duration = Duration::from_secs(30);

impl PortProxy {
    pub(crate) fn new(host: Arc<Host>) -> Arc<Self> {
        let sandboxes = Sandboxes::default();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_PER_PORT)
            .build(AgentConnector(sandboxes.clone()));
        Arc::new(Self {
            host,
            client,
            sandboxes,
        })
    }
}

/// The sandboxes requests went to, by serial, for the connector to dial into. A pool key is
/// `s{serial}-p{port}`: connections into a sandbox that is gone are never handed out for its
/// successor's requests.
#[derive(Clone, Default)]
struct Sandboxes(Arc<Mutex<HashMap<u64, Weak<Sandbox>>>>);

impl Sandboxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<Sandbox>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pool key of `port` of `sandbox`, remembering the sandbox for the connector.
    fn authority(&self, sandbox: &Arc<Sandbox>, port: u16) -> String {
        let mut known = self.lock();
        if !known.contains_key(&sandbox.serial()) {
            known.retain(|_, s| s.strong_count() > 0);
            known.insert(sandbox.serial(), Arc::downgrade(sandbox));
        }
        format!("s{}-p{port}", sandbox.serial())
    }

    fn find(&self, authority: &str) -> Option<(Arc<Sandbox>, u16)> {
        let (serial, port) = authority.strip_prefix('s')?.split_once("-p")?;
        let sandbox = self.lock().get(&serial.parse().ok()?)?.upgrade()?;
        Some((sandbox, port.parse().ok()?))
    }
}

/// Why the connector could not connect.
#[derive(Debug, thiserror::Error)]
enum DialError {
    /// The sandbox stopped since the request was routed.
    #[error("the sandbox stopped")]
    Gone,
    /// Its agent could not dial.
    #[error(transparent)]
    Dial(#[from] crate::runtime::RuntimeError),
}

/// Connects to a port inside a sandbox: its agent dials `127.0.0.1:{port}` in there and hands
/// the socket over.
#[derive(Clone)]
struct AgentConnector(Sandboxes);

impl tower::Service<Uri> for AgentConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = DialError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), DialError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = uri.authority().and_then(|a| self.0.find(a.as_str()));
        Box::pin(async move {
            let (sandbox, port) = target.ok_or(DialError::Gone)?;
            let stream = sandbox.dial(port).await?;
            let _ = stream.set_nodelay(true);
            Ok(TokioIo::new(stream))
        })
    }
}

/// The page's words for a failed dial.
fn dial_refusal(e: &DialError, port: u16, service: &str) -> PortRefusal {
    match e {
        DialError::Dial(crate::runtime::RuntimeError::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            bad_gateway(format!(
                "Nothing is listening on port {port} in service {service}. Start a server on 0.0.0.0:{port} or 127.0.0.1:{port} inside the sandbox, then reload."
            ))
        }
        e => bad_gateway(format!("Port {port} of service {service} could not be reached: {e}")),
    }
}

/// A new connection to `port` inside the sandbox, dialled by its agent.
async fn dial(sandbox: &Sandbox, port: u16, service: &str) -> Result<TokioIo<tokio::net::TcpStream>, PortRefusal> {
    let stream = sandbox
        .dial(port)
        .await
        .map_err(|e| dial_refusal(&DialError::Dial(e), port, service))?;
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

async fn forward(
    proxy: &PortProxy,
    address: &PortAddress<'_>,
    host_header: &str,
    mut request: Request,
) -> Result<Response, PortRefusal> {
    let (sandbox, port) = proxy.host.port_target(address.project, address.service, address.port)?;
    let internal = port.internal_port as u16;
    let service = address.service;

    let upgrade = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(host_header).unwrap_or(HeaderValue::from_static("localhost")),
    );
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(host_header) {
        parts.headers.insert("x-forwarded-host", v);
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();

    let failed = |e: hyper::Error| bad_gateway(format!("Port {internal} of service {service} answered badly: {e}"));
    let mut response = if port.protocol == PortProtocol::Http2 {
        parts.version = axum::http::Version::HTTP_2;
        parts.uri = Uri::try_from(format!("http://{host_header}{path}")).map_err(|e| bad_gateway(e.to_string()))?;
        parts.headers.remove(header::HOST);
        let io = dial(&sandbox, internal, service).await?;
        let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(failed)?;
        tokio::spawn(connection);
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(failed)?
    } else {
        parts.version = axum::http::Version::HTTP_11;
        let authority = proxy.sandboxes.authority(&sandbox, internal);
        parts.uri = Uri::try_from(format!("http://{authority}{path}")).map_err(|e| bad_gateway(e.to_string()))?;
        // An upgraded connection is not pooled: it is the upgrade's from then on.
        proxy
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|e| {
                let dial = std::iter::successors(std::error::Error::source(&e), |e| e.source())
                    .find_map(|e| e.downcast_ref::<DialError>());
                match dial {
                    Some(dial) => dial_refusal(dial, internal, service),
                    None => bad_gateway(format!("Port {internal} of service {service} answered badly: {e}")),
                }
            })?
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(bad_gateway("the server switched protocols unasked".into()));
        };
        let server_upgrade = hyper::upgrade::on(&mut response);
        let (parts, _) = response.into_parts();
        tokio::spawn(async move {
            if let (Ok(client), Ok(server)) = (client_upgrade.await, server_upgrade.await) {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(server)).await;
            }
        });
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    Ok(finish(response))
}

/// The sandbox's response as the client gets it.
fn finish(response: axum::http::Response<hyper::body::Incoming>) -> Response {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_port_names() {
        let expected = PortAddress {
            port: "p01",
            service: "my-app",
            project: "default",
        };
        assert_eq!(parse_host("p01--my-app--default.localhost:7420"), Some(expected));
        assert_eq!(
            parse_host("p01--my-app--default.localhost").map(|a| a.service),
            Some("my-app")
        );
        assert_eq!(
            parse_host("p01--my-app--default.localhost.").map(|a| a.project),
            Some("default")
        );
        for other in [
            "127.0.0.1:7420",
            "localhost:7420",
            "foo.localhost",
            "p01--a.localhost",
            "p01----x.localhost",
            "p01--a--b.example.com",
            "x.p01--a--b.localhost",
            "",
        ] {
            assert_eq!(parse_host(other), None, "{other}");
        }
    }

    #[test]
    fn drops_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret, Upgrade"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut upgrading = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1);
        strip_hop_by_hop(&mut upgrading, true);
        assert!(upgrading.contains_key(header::UPGRADE) && upgrading.contains_key(header::CONNECTION));
        assert!(!upgrading.contains_key("x-secret"));
    }

    #[test]
    fn escapes_pages() {
        assert_eq!(html_escape("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
