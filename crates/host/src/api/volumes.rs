//! Volume endpoints (contract §2.7).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use flankbox_protocol::volume::AttachRequest;

use super::{done, ok, page, Body, Ids, Nf};
use crate::error::Result;
use crate::host::{paginate, parse_body, Host, PageQuery};

pub(super) async fn create(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    Ok(ok(host.create_volume(&ids.scope(), body.required()?).await?))
}

/// `data` is a bare array here, as the contract says.
pub(super) async fn list(
    State(host): State<Arc<Host>>,
    ids: Ids,
    Nf(Query(q)): Nf<Query<PageQuery>>,
) -> Result<Response> {
    let (volumes, pagination) = paginate(host.list_volumes(&ids.scope()), &q)?;
    Ok(page(volumes, pagination))
}

pub(super) async fn get(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    Ok(ok(host.get_volume(&ids.scope(), ids.volume())?))
}

pub(super) async fn update(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    Ok(ok(host.update_volume(&ids.scope(), ids.volume(), body.required()?)?))
}

pub(super) async fn delete(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    host.delete_volume(&ids.scope(), ids.volume()).await?;
    Ok(done())
}

pub(super) async fn attach(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    let req: AttachRequest = parse_body(body.required()?)?;
    host.attach_volume(&ids.scope(), ids.volume(), req)?;
    Ok(done())
}

pub(super) async fn detach(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    let req: AttachRequest = parse_body(body.required()?)?;
    host.detach_volume(&ids.scope(), ids.volume(), req)?;
    Ok(done())
}
