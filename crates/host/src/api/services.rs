//! Service endpoints (contract §2.1–§2.5).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use flankbox_protocol::service::{ContainerList, PortList, PortSpec, ScaleRequest, ServiceList};

use super::{done, ok, page, Body, Ids, Nf};
use crate::error::Result;
use crate::host::{paginate, parse_body, Host, PageQuery};

pub(super) async fn create(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    Ok(ok(host.create_service(&ids.scope(), body.required()?).await?))
}

pub(super) async fn list(
    State(host): State<Arc<Host>>,
    ids: Ids,
    Nf(Query(q)): Nf<Query<PageQuery>>,
) -> Result<Response> {
    let (services, pagination) = paginate(host.list_services(&ids.scope()), &q)?;
    Ok(page(ServiceList { services }, pagination))
}

pub(super) async fn get(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    Ok(ok(host.get_service(&ids.scope(), ids.service())?))
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct DeleteQuery {
    delete_child_objects: Option<String>,
}

pub(super) async fn delete(
    State(host): State<Arc<Host>>,
    ids: Ids,
    Nf(Query(q)): Nf<Query<DeleteQuery>>,
) -> Result<Response> {
    let children = q
        .delete_child_objects
        .as_deref()
        .is_some_and(|v| v == "true" || v == "1");
    host.delete_service(&ids.scope(), ids.service(), children).await?;
    Ok(done())
}

pub(super) async fn scale(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    let req: ScaleRequest = body.or_default()?;
    host.scale(&ids.scope(), ids.service(), req)?;
    Ok(done())
}

pub(super) async fn pause(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    host.pause(&ids.scope(), ids.service())?;
    Ok(done())
}

pub(super) async fn resume(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    host.resume(&ids.scope(), ids.service(), body.or_default()?)?;
    Ok(done())
}

pub(super) async fn restart(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    host.restart(&ids.scope(), ids.service())?;
    Ok(done())
}

pub(super) async fn ports(State(host): State<Arc<Host>>, ids: Ids) -> Result<Response> {
    Ok(ok(PortList {
        ports: host.ports(&ids.scope(), ids.service())?,
    }))
}

pub(super) async fn update_ports(State(host): State<Arc<Host>>, ids: Ids, body: Body) -> Result<Response> {
    let list: PortList<PortSpec> = parse_body(body.required()?)?;
    host.update_ports(&ids.scope(), ids.service(), list.ports)?;
    Ok(done())
}

pub(super) async fn containers(
    State(host): State<Arc<Host>>,
    ids: Ids,
    Nf(Query(q)): Nf<Query<PageQuery>>,
) -> Result<Response> {
    let (containers, pagination) = paginate(host.containers(&ids.scope(), ids.service())?, &q)?;
    Ok(page(ContainerList { containers }, pagination))
}
