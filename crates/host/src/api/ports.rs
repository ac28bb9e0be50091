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

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use flankbox_protocol::service::PortProtocol;
use hyper::client::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo};

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
pub(crate) async fn proxy(State(host): State<Arc<Host>>, request: Request, next: Next) -> Response {
    let host_header = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_ascii_lowercase();
    match parse_host(&host_header) {
        Some(address) => forward(&host, &address, &host_header, request)
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

/// Idle HTTP/1.1 connections into sandboxes, kept for the next request to the same port, so
/// that a kept-alive browser does not pay for a dial through the agent on every request.
struct Pool(Mutex<PoolState>);

struct PoolState {
    idle: Vec<Idle>,
    /// Whether a task is closing old connections; it runs while any are kept.
    purging: bool,
}

struct Idle {
    sandbox: Weak<Sandbox>,
    port: u16,
    sender: http1::SendRequest<Body>,
    since: Instant,
}

/// Idle connections kept at most, over all sandboxes.
const POOL_MAX: usize = 64;
/// How long an idle connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

static POOL: Pool = Pool(Mutex::new(PoolState {
    idle: Vec::new(),
    purging: false,
}));

impl Pool {
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A ready connection to `port` of this very sandbox (not one that had its pid before).
    fn take(&self, sandbox: &Arc<Sandbox>, port: u16) -> Option<http1::SendRequest<Body>> {
        let mut state = self.state();
        state.purge();
        let at = state.idle.iter().position(|e| {
            e.port == port && std::ptr::eq(e.sandbox.as_ptr(), Arc::as_ptr(sandbox)) && e.sender.is_ready()
        })?;
        Some(state.idle.swap_remove(at).sender)
    }

    /// Keeps `sender` once its response has been read to the end, if the server keeps it open.
    fn give_back(&'static self, sandbox: &Arc<Sandbox>, port: u16, mut sender: http1::SendRequest<Body>) {
        let sandbox = Arc::downgrade(sandbox);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut state = self.state();
            if state.idle.len() >= POOL_MAX {
                return;
            }
            state.idle.push(Idle {
                sandbox,
                port,
                sender,
                since: Instant::now(),
            });
            if !std::mem::replace(&mut state.purging, true) {
                tokio::spawn(self.purge_while_kept());
            }
        });
    }

    /// An idle connection holds a socket in the sandbox (and a single-threaded server's
    /// attention): one task closes those too old, even if no request comes to purge them, and
    /// ends when none are left.
    async fn purge_while_kept(&'static self) {
        loop {
            tokio::time::sleep(POOL_IDLE / 3).await;
            let mut state = self.state();
            state.purge();
            if state.idle.is_empty() {
                state.purging = false;
                return;
            }
        }
    }
}

impl PoolState {
    /// Drops connections that are closed, too old, or into a sandbox that is gone.
    fn purge(&mut self) {
        self.idle
            .retain(|e| e.sandbox.strong_count() > 0 && !e.sender.is_closed() && e.since.elapsed() < POOL_IDLE);
    }
}

/// A new connection to `port` inside the sandbox, dialled by its agent.
async fn dial(sandbox: &Sandbox, port: u16, service: &str) -> Result<TokioIo<tokio::net::TcpStream>, PortRefusal> {
    let stream = sandbox.dial(port).await.map_err(|e| {
        let refused = matches!(&e, crate::runtime::RuntimeError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused {
            bad_gateway(format!(
                "Nothing is listening on port {port} in service {service}. Start a server on 0.0.0.0:{port} or 127.0.0.1:{port} inside the sandbox, then reload."
            ))
        } else {
            bad_gateway(format!("Port {port} of service {service} could not be reached: {e}"))
        }
    })?;
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

async fn forward(
    host: &Host,
    address: &PortAddress<'_>,
    host_header: &str,
    mut request: Request,
) -> Result<Response, PortRefusal> {
    let (sandbox, port) = host.port_target(address.project, address.service, address.port)?;
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
        parts.uri = Uri::try_from(path).map_err(|e| bad_gateway(e.to_string()))?;
        let mut request = Request::from_parts(parts, body);
        // An idle pooled connection first (never for an upgrade: that connection is not
        // coming back); if the server closed it meanwhile, the request comes back unsent.
        if !upgrade {
            if let Some(mut sender) = POOL.take(&sandbox, internal) {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        POOL.give_back(&sandbox, internal, sender);
                        return Ok(finish(response));
                    }
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(failed(e.into_error())),
                    },
                }
            }
        }
        let io = dial(&sandbox, internal, service).await?;
        let (mut sender, connection) = http1::handshake(io).await.map_err(failed)?;
        tokio::spawn(connection.with_upgrades());
        let response = sender.send_request(request).await.map_err(failed)?;
        if !upgrade {
            POOL.give_back(&sandbox, internal, sender);
        }
        response
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
