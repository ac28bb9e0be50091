//! Per-client quotas: creates in flight in this process, and the ownership count read back
//! from the upstream listings.

use std::sync::Mutex;

use crate::error::EdgeError;

use super::{parse_sandbox_name, upstream_error, Edge, Io};

/// Services listed per page while counting a client's sandboxes.
const LIST_PAGE: u32 = 100;
/// Pages read at most (10 000 services) while counting.
const LIST_PAGES: u32 = 100;

/// Creates in flight in this process (this isolate, in a Worker), by owner: each gets a ticket
/// in arrival order, and counts the earlier ones still in flight as taken slots.
#[derive(Debug, Default)]
pub(super) struct Creating {
    next_ticket: u64,
    /// (owner, ticket); a handful at most, so a list.
    pub(super) in_flight: Vec<(String, u64)>,
}

/// A create's place among its owner's creates in flight; leaves on drop.
pub(super) struct CreateTicket<'a> {
    creating: &'a Mutex<Creating>,
    owner: String,
    ticket: u64,
}

impl<'a> CreateTicket<'a> {
    pub(super) fn take(creating: &'a Mutex<Creating>, owner: String) -> Self {
        let mut c = creating.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = c.next_ticket;
        c.next_ticket += 1;
        c.in_flight.push((owner.clone(), ticket));
        Self {
            creating,
            owner,
            ticket,
        }
    }

    /// How many of the owner's creates in flight came before this one.
    pub(super) fn ahead(&self) -> usize {
        let c = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        c.in_flight
            .iter()
            .filter(|(owner, ticket)| *owner == self.owner && *ticket < self.ticket)
            .count()
    }
}

impl Drop for CreateTicket<'_> {
    fn drop(&mut self) {
        let mut c = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        c.in_flight.retain(|(_, ticket)| *ticket != self.ticket);
    }
}

/// How many of `names` (of sandboxes or volumes) the proxy made for `owner`.
pub(super) fn owned_by(names: &[String], owner: &str) -> usize {
    names
        .iter()
        .filter(|name| parse_sandbox_name(name).is_some_and(|(o, _)| o == owner))
        .count()
}

impl Edge {
    /// Every item of a paginated list (`services` or `volumes`), up to `LIST_PAGES` pages.
    pub(super) async fn list_all(&self, kind: &str, io: &impl Io) -> Result<Vec<serde_json::Value>, EdgeError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..LIST_PAGES {
            let mut path = format!("{}/{kind}?per_page={LIST_PAGE}", self.project_path());
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = io.call("GET", &path, None).await.map_err(upstream_error)?;
            if status != 200 {
                return Err(EdgeError::Upstream(format!("listing {kind} answered {status}: {body}")));
            }
            let mut page: serde_json::Value = serde_json::from_str(&body).map_err(|e| upstream_error(e.to_string()))?;
            // Services come as `data.services`; volumes as a bare array in `data`. (`get_mut`,
            // not indexing, which would panic on an answer of another shape.)
            let data = page.get_mut("data").map(serde_json::Value::take).unwrap_or_default();
            let list = match data {
                serde_json::Value::Object(mut o) => o.remove(kind).unwrap_or_default(),
                other => other,
            };
            if let serde_json::Value::Array(list) = list {
                items.extend(list);
            }
            cursor = page["pagination"]["cursor"].as_str().map(str::to_string);
            if cursor.is_none() || page["pagination"]["hasNextPage"] == false {
                break;
            }
        }
        Ok(items)
    }

    /// Reads every sandbox the proxy made; deletes the expired ones. Resolves to the live ones'
    /// names.
    pub(super) async fn live_sandboxes(&self, now: u64, io: &impl Io) -> Result<Vec<String>, EdgeError> {
        let mut live = Vec::new();
        for service in self.list_all("services", io).await? {
            let (Some(id), Some(name)) = (service["id"].as_str(), service["name"].as_str()) else {
                continue;
            };
            match parse_sandbox_name(name) {
                Some((_, expires)) if expires <= now => self.destroy(id, io).await,
                Some(_) => live.push(name.to_string()),
                None => {}
            }
        }
        Ok(live)
    }

    /// How many live sandboxes `client` holds.
    pub(super) async fn sandboxes_of(&self, client: &str, now: u64, io: &impl Io) -> Result<usize, EdgeError> {
        Ok(owned_by(&self.live_sandboxes(now, io).await?, &self.owner(client)))
    }
}
