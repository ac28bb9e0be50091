//! Holds: a sandbox kept for as long as a page holds a WebSocket open for it.
//!
//! A page's own clean-up (a keepalive DELETE on pagehide) is best effort: a browser may skip
//! unload handlers or drop their requests (headless Chromium does, now and then, when a page is
//! closed), and a page that crashes runs none. So a create can ask to be held: the sandbox then
//! lives while a page holds a WebSocket open for it, and is deleted HOLD_GRACE after the last one
//! closes (a browser closes a gone page's sockets whatever its scripts did), or FIRST_HOLD after
//! its create if no page ever came to hold it (its answer was never read). The state lives in
//! this process: a Worker has no such route (its pages' holds fail, and the lifetime ends their
//! sandboxes).

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use flankbox_edge::proxy::EdgeRequest;

use super::{now, EdgeMount};

/// Where a page holds its sandbox: a WebSocket to `{HOLD}{id}`, whose first message is the
/// sandbox's capability.
pub(super) const HOLD: &str = "/hold/";
/// The tag by which a create asks to be held (the proxy strips `flankbox-` tags before upstream).
const HOLD_TAG: &str = "flankbox-hold";
/// How long a held create waits for its first hold before it is deleted.
const FIRST_HOLD: Duration = Duration::from_secs(10);
/// How long a held sandbox outlives its last hold (a page that reconnects keeps it). Long enough
/// for a reload on a loaded machine (the new page must load, read its config and hold again:
/// the playground reattaches to a program left running) and for a few seconds offline (a page
/// retries its hold every second); short enough that the playground tests, which wait 30 s for
/// a closed or crashed page's sandbox to go, still see it go.
const HOLD_GRACE: Duration = Duration::from_secs(15);

/// A held sandbox: how many holds it has, and a generation that a pending expiry checks.
pub(super) struct Lease {
    holds: usize,
    generation: u64,
}

/// Who asks to hold which sandbox.
pub(super) struct Holder {
    pub(super) id: String,
    pub(super) client: String,
    pub(super) origin: Option<String>,
    pub(super) own_origin: Option<String>,
}

/// Whether a create body asks to be held.
pub(super) fn wants_hold(body: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Vec<String>,
    }
    serde_json::from_str::<Tags>(body).is_ok_and(|b| b.tags.iter().any(|t| t == HOLD_TAG))
}

impl EdgeMount {
    fn leases(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A held create was made: it waits FIRST_HOLD for a page to hold it.
    pub(super) fn lease(self: &Arc<Self>, id: &str) {
        self.leases().insert(
            id.into(),
            Lease {
                holds: 0,
                generation: 0,
            },
        );
        self.expire(id, 0, FIRST_HOLD);
    }

    /// The sandbox was deleted by its page: nothing holds it any more.
    pub(super) fn release(&self, id: &str) {
        self.leases().remove(id);
    }

    /// After `after`, deletes the sandbox if nothing held it meanwhile.
    fn expire(self: &Arc<Self>, id: &str, generation: u64, after: Duration) {
        let (mount, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            {
                let mut leases = mount.leases();
                match leases.get(&id) {
                    Some(l) if l.holds == 0 && l.generation == generation => leases.remove(&id),
                    _ => return,
                };
            }
            tracing::info!("edge: no page holds {id} any more; deleting it");
            mount.edge.destroy(&id, mount.io()).await;
        });
    }
}

async fn refuse(mut socket: WebSocket, reason: &'static str) {
    let close = CloseFrame {
        code: close_code::POLICY,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}

/// Holds a sandbox for as long as the socket is open, once its first message, the sandbox's
/// capability, is checked (by asking the proxy for the sandbox's status with it).
pub(super) async fn hold(mount: Arc<EdgeMount>, holder: Holder, mut socket: WebSocket) {
    let capability = match tokio::time::timeout(FIRST_HOLD, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        _ => return,
    };
    let authorization = format!("Bearer {capability}");
    let path = format!("/v1/projects/edge/services/{}", holder.id);
    let request = EdgeRequest {
        method: "GET",
        path: &path,
        query: "",
        authorization: Some(&authorization),
        origin: holder.origin.as_deref(),
        own_origin: holder.own_origin.as_deref(),
        client: &holder.client,
        body: "",
        now: now(),
    };
    if mount.edge.handle(&request, mount.io()).await.status != 200 {
        return refuse(socket, "not this sandbox's capability").await;
    }
    // Only a sandbox whose create asked to be held can be (a hold may end it).
    let held = mount.leases().get_mut(&holder.id).map(|lease| {
        lease.holds += 1;
        lease.generation += 1;
    });
    if held.is_none() {
        return refuse(socket, "this sandbox is not held").await;
    }
    // Whatever ends the hold (a close, an error, the page gone) lets go of it.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
    let generation = {
        let mut leases = mount.leases();
        let Some(lease) = leases.get_mut(&holder.id) else {
            return;
        };
        lease.holds -= 1;
        lease.generation += 1;
        (lease.holds == 0).then_some(lease.generation)
    };
    if let Some(generation) = generation {
        mount.expire(&holder.id, generation, HOLD_GRACE);
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
