//! Per-client quotas: creates in flight in this process, and the ownership count read back
//! from the upstream listings.

use std::sync::Mutex;

use flankbox_protocol::service::ServiceList;
use flankbox_protocol::volume::Volume;
use flankbox_protocol::{Envelope, Pagination};
use serde::de::DeserializeOwned;

use crate::error::EdgeError;

use super::{parse_sandbox_name, Edge, Io};

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
    /// Every item of a paginated list (`services` or `volumes`), up to `LIST_PAGES` pages, each
    /// page read as `Envelope<P>` and its items taken out by `items`.
    async fn list_all<P: DeserializeOwned, T>(
        &self,
        kind: &str,
        items: impl Fn(P) -> Vec<T>,
        io: &impl Io,
    ) -> Result<Vec<T>, EdgeError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..LIST_PAGES {
            let mut path = format!("{}/{kind}?per_page={LIST_PAGE}", self.project_path());
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = io.call("GET", &path, None).await?;
            if status != 200 {
                return Err(EdgeError::Upstream(format!("listing {kind} answered {status}: {body}")));
            }
            let page: Envelope<P> = serde_json::from_str(&body)
                .map_err(|e| EdgeError::Upstream(format!("listing {kind} answered an unreadable page: {e}")))?;
            all.extend(items(page.data));
            cursor = match page.pagination {
                Some(Pagination {
                    has_next_page: true,
                    cursor: Some(next),
                    ..
                }) => Some(next),
                _ => break,
            };
        }
        Ok(all)
    }

    /// Reads every sandbox the proxy made; deletes the expired ones. Resolves to the live ones'
    /// names.
    pub(super) async fn live_sandboxes(&self, now: u64, io: &impl Io) -> Result<Vec<String>, EdgeError> {
        let mut live = Vec::new();
        let services = self.list_all("services", |list: ServiceList| list.services, io).await?;
        for service in services {
            match parse_sandbox_name(&service.name) {
                Some((_, expires)) if expires <= now => self.destroy(&service.id, io).await,
                Some(_) => live.push(service.name),
                None => {}
            }
        }
        Ok(live)
    }

    /// How many live sandboxes `client` holds.
    pub(super) async fn sandboxes_of(&self, client: &str, now: u64, io: &impl Io) -> Result<usize, EdgeError> {
        Ok(owned_by(&self.live_sandboxes(now, io).await?, &self.owner(client)))
    }

    /// Every volume (a bare array in `data`).
    pub(super) async fn list_volumes(&self, io: &impl Io) -> Result<Vec<Volume>, EdgeError> {
        self.list_all("volumes", |list: Vec<Volume>| list, io).await
    }
}
