//! The exec relay: the browser's `init` checked and rewritten, then every message both ways,
//! each only as fast as the other side takes it (backpressure), until either side closes or the
//! session is idle too long. What each of those means (the limits, the close codes) is the edge
//! core's ([`SessionEnd`]); this file moves the messages.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as Browser, WebSocket};
use flankbox_edge::proxy::ExecGrant;
use flankbox_edge::{EdgeError, SessionEnd};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as UpstreamClose;
use tokio_tungstenite::tungstenite::Message as Upstream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{now, EdgeMount};

type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Aborts a task when dropped: a refused session leaves no upstream dial behind.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Relays one exec session.
pub(super) async fn relay(mount: Arc<EdgeMount>, grant: ExecGrant, origin: Option<String>, mut socket: WebSocket) {
    let idle = mount.edge.exec_idle_timeout();
    // Upstream is dialled at once, in parallel with the browser's init: it carries nothing
    // until the init has been checked, and is dropped (closed) if it is refused.
    let url = format!("ws://{}{}", mount.host.config.listen, grant.upstream_path);
    let opening = tokio::spawn(async move { tokio_tungstenite::connect_async(url.as_str()).await });
    let _abort_on_return = AbortOnDrop(opening.abort_handle());
    let upstream = match start(&mount, &grant, origin.as_deref(), &mut socket, idle).await {
        Ok(init) => match opening.await {
            Ok(Ok((mut upstream, _))) => match upstream.send(Upstream::Text(init.into())).await {
                Ok(()) => upstream,
                Err(_) => return,
            },
            Ok(Err(e)) => return end_browser(socket, SessionEnd::refusal(&EdgeError::Upstream(e.to_string()))).await,
            Err(e) => return end_browser(socket, SessionEnd::refusal(&EdgeError::Upstream(e.to_string()))).await,
        },
        Err(end) => return end_browser(socket, end).await,
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = socket.split();
    let end = pump(&mount, idle, (&mut down_tx, &mut down_rx), (&mut up_tx, &mut up_rx)).await;
    finish(&mut down_tx, &mut up_tx, end).await;
}

/// The browser's first message, checked and rewritten into the upstream `init`.
async fn start(
    mount: &EdgeMount,
    grant: &ExecGrant,
    origin: Option<&str>,
    socket: &mut WebSocket,
    idle: Duration,
) -> Result<String, SessionEnd> {
    let first = match tokio::time::timeout(idle, socket.recv()).await {
        Ok(Some(Ok(Browser::Text(t)))) => t.to_string(),
        Ok(Some(Ok(Browser::Binary(b)))) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => return Err(SessionEnd::idle()),
        Ok(Some(Ok(Browser::Close(frame)))) => return Err(browser_closed(frame)),
        Ok(_) => return Err(SessionEnd::lost("client")),
    };
    mount.edge.relay_from_browser(first.len())?;
    mount
        .edge
        .exec_init_or_reap(grant, &first, origin, now(), mount.io())
        .await
        .map_err(|e| SessionEnd::refusal(&e))
}

/// Relays messages both ways until the session ends, and says how.
async fn pump(
    mount: &EdgeMount,
    idle: Duration,
    (down_tx, down_rx): (&mut SplitSink<WebSocket, Browser>, &mut SplitStream<WebSocket>),
    (up_tx, up_rx): (
        &mut SplitSink<UpstreamSocket, Upstream>,
        &mut SplitStream<UpstreamSocket>,
    ),
) -> SessionEnd {
    loop {
        tokio::select! {
            from_browser = tokio::time::timeout(idle, down_rx.next()) => {
                let message = match from_browser {
                    Err(_) => return SessionEnd::idle(),
                    Ok(Some(Ok(m))) => m,
                    Ok(_) => return SessionEnd::lost("client"),
                };
                let (forwarded, size) = match message {
                    Browser::Text(t) => {
                        let size = t.len();
                        (Upstream::Text(t.as_str().into()), size)
                    }
                    Browser::Binary(b) => {
                        let size = b.len();
                        (Upstream::Binary(b), size)
                    }
                    Browser::Close(frame) => return browser_closed(frame),
                    _ => continue,
                };
                if let Err(end) = mount.edge.relay_from_browser(size) {
                    return end;
                }
                if up_tx.send(forwarded).await.is_err() {
                    return SessionEnd::lost("upstream");
                }
            }
            from_host = up_rx.next() => {
                let forwarded = match from_host {
                    Some(Ok(Upstream::Text(t))) => Browser::Text(t.as_str().into()),
                    Some(Ok(Upstream::Binary(b))) => Browser::Binary(b),
                    Some(Ok(Upstream::Close(frame))) => {
                        return match frame {
                            Some(f) => SessionEnd::closed(Some(u16::from(f.code)), &f.reason),
                            None => SessionEnd::closed(None, ""),
                        };
                    }
                    Some(Ok(_)) => continue,
                    _ => return SessionEnd::lost("upstream"),
                };
                if down_tx.send(forwarded).await.is_err() {
                    return SessionEnd::lost("client");
                }
            }
        }
    }
}

fn browser_closed(frame: Option<CloseFrame>) -> SessionEnd {
    match frame {
        Some(f) => SessionEnd::closed(Some(f.code), &f.reason),
        None => SessionEnd::closed(None, ""),
    }
}

fn browser_close(end: &SessionEnd) -> Browser {
    Browser::Close(Some(CloseFrame {
        code: end.code,
        reason: end.reason.as_str().into(),
    }))
}

/// Ends a session before upstream took part: the browser is told why.
async fn end_browser(mut socket: WebSocket, end: SessionEnd) {
    if let Some(frame) = &end.frame {
        let _ = socket.send(Browser::Text(frame.as_str().into())).await;
    }
    let _ = socket.send(browser_close(&end)).await;
}

/// Ends a session on both sides (a side that closed already ignores its close).
async fn finish(
    down_tx: &mut SplitSink<WebSocket, Browser>,
    up_tx: &mut SplitSink<UpstreamSocket, Upstream>,
    end: SessionEnd,
) {
    if let Some(frame) = &end.frame {
        let _ = down_tx.send(Browser::Text(frame.as_str().into())).await;
    }
    let _ = down_tx.send(browser_close(&end)).await;
    let close = UpstreamClose {
        code: end.code.into(),
        reason: end.reason.as_str().into(),
    };
    let _ = up_tx.send(Upstream::Close(Some(close))).await;
}
