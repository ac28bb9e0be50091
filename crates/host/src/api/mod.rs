//! The HTTP API: the Northflank REST subset, the exec WebSocket, and the front page.

mod edge;
mod exec;
mod logs;
mod meta;
mod playground;
mod ports;
mod services;
mod static_files;
mod volumes;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use flankbox_protocol::Envelope;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::host::{Host, Scope};

/// Builds the application: every route, with its layers, over `host`, and the edge proxy
/// `edge` at `/edge`.
pub fn app(host: Arc<Host>, edge: flankbox_edge::Edge) -> Router {
    let api = api_routes(&host);
    // What the edge proxy calls: the API as a client would see it, refusals included.
    let upstream = api
        .clone()
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(meta::panic_response))
        .with_state(host.clone());
    let edge = edge::EdgeMount::new(host.clone(), edge, upstream);
    let router = api.route("/playground/config.json", get(playground::config));
    let router = match &host.config.www {
        // The playground's files; paths no route takes fall through to them.
        Some(dir) => router.fallback_service(static_files::serve(dir)),
        None => router.route("/", get(meta::index)).fallback(meta::not_found),
    };
    let router = router
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(cors())
        // The edge proxy answers CORS itself, by its policy (so it is added after that layer):
        // capabilities instead of the token, for pages.
        .route(
            &format!("{}/{{*rest}}", edge::MOUNT),
            axum::routing::any(edge::handle).with_state(edge),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(meta::panic_response))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state::<()>(host.clone());
    // Outermost, so that every path of a port's name goes to its sandbox.
    Router::new()
        .fallback_service(router)
        .layer(middleware::from_fn_with_state(
            ports::PortProxy::new(host),
            ports::proxy,
        ))
}

/// The Northflank API: REST (behind the token), the exec and log WebSockets. The edge proxy
/// calls these in-process.
fn api_routes(host: &Arc<Host>) -> Router<Arc<Host>> {
    let project = Router::new()
        .route("/services/deployment", post(services::create))
        .route("/services", get(services::list))
        .route("/services/{service_id}", get(services::get).delete(services::delete))
        .route("/services/{service_id}/scale", post(services::scale))
        .route("/services/{service_id}/pause", post(services::pause))
        .route("/services/{service_id}/resume", post(services::resume))
        .route("/services/{service_id}/restart", post(services::restart))
        .route(
            "/services/{service_id}/ports",
            get(services::ports).post(services::update_ports),
        )
        .route("/services/{service_id}/containers", get(services::containers))
        .route("/volumes", get(volumes::list).post(volumes::create))
        .route(
            "/volumes/{volume_id}",
            get(volumes::get).post(volumes::update).delete(volumes::delete),
        )
        .route("/volumes/{volume_id}/attach", post(volumes::attach))
        .route("/volumes/{volume_id}/detach", post(volumes::detach));
    let rest = Router::new()
        .nest("/v1/projects/{project_id}", project.clone())
        .nest("/v1/teams/{team_id}/projects/{project_id}", project)
        .route("/v1/plans", get(meta::plans))
        .route("/v1/regions", get(meta::regions))
        .route_layer(middleware::from_fn_with_state(host.clone(), require_token));
    Router::new()
        .merge(rest)
        .route(
            "/v1/command-exec/projects/{project_id}/{entity}/{entity_id}",
            get(exec::upgrade),
        )
        .route(
            "/v1/command-exec/teams/{team_id}/projects/{project_id}/{entity}/{entity_id}",
            get(exec::upgrade),
        )
        // Logs check the token themselves: the tail WebSocket sends it in its first frame.
        .route("/v1/projects/{project_id}/services/{service_id}/logs", get(logs::logs))
        .route(
            "/v1/teams/{team_id}/projects/{project_id}/services/{service_id}/logs",
            get(logs::logs),
        )
}

/// Browsers may call the API (`/v1/…`) from any origin: it is guarded by a bearer token, never
/// by cookies, so a page can do no more than its token allows. Nothing else is open to other
/// origins: not the playground's pages, and not its dev-mode config.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::predicate(|_, request| {
            request.uri.path().starts_with("/v1/")
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// Whether `presented` is the host's token, compared in constant time.
pub(crate) fn token_matches(host: &Host, presented: &str) -> bool {
    let expected = host.config.token.as_bytes();
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected))
}

/// Whether `headers` carry `Authorization: Bearer <the host's token>`.
pub(crate) fn bearer_matches(host: &Host, headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(flankbox_protocol::auth::bearer_token)
        .is_some_and(|t| token_matches(host, t))
}

async fn require_token(State(host): State<Arc<Host>>, request: Request, next: Next) -> Response {
    if bearer_matches(&host, request.headers()) {
        next.run(request).await
    } else {
        Error::Unauthorized.into_response()
    }
}

/// A WebSocket text message of one of our own frame types.
pub(crate) fn json_message<T: Serialize>(frame: &T) -> axum::extract::ws::Message {
    // Serialising our own frame types cannot fail.
    axum::extract::ws::Message::Text(serde_json::to_string(frame).unwrap_or_default().into())
}

/// Whether a `Host` header names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The name of a `Host` header: without its port, and without the brackets of an IPv6 address.
pub(crate) fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A 200 JSON success envelope.
pub(crate) fn ok<T: Serialize>(data: T) -> Response {
    axum::Json(Envelope::new(data)).into_response()
}

/// A 200 JSON success envelope with pagination.
pub(crate) fn page<T: Serialize>(data: T, pagination: flankbox_protocol::Pagination) -> Response {
    axum::Json(Envelope {
        data,
        pagination: Some(pagination),
    })
    .into_response()
}

/// `{"data": {}}`, the answer of action endpoints.
pub(crate) fn done() -> Response {
    ok(serde_json::json!({}))
}

/// Path parameters of every project-scoped route.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Ids {
    team_id: Option<String>,
    project_id: String,
    service_id: Option<String>,
    volume_id: Option<String>,
}

impl Ids {
    pub(crate) fn scope(&self) -> Scope {
        Scope {
            team_id: self.team_id.clone(),
            project_id: self.project_id.clone(),
        }
    }

    pub(crate) fn service(&self) -> &str {
        self.service_id.as_deref().unwrap_or_default()
    }

    pub(crate) fn volume(&self) -> &str {
        self.volume_id.as_deref().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(ids) = Path::<Ids>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::Body(e.to_string()))?;
        Ok(ids)
    }
}

/// An extractor whose refusal is a Northflank-shaped error (axum's own are plain text), with
/// the status axum gives it (400 for a bad query or path, 405 or 400 for a bad upgrade).
pub(crate) struct Nf<E>(pub E);

impl<S: Send + Sync, E: FromRequestParts<S>> FromRequestParts<S> for Nf<E>
where
    E::Rejection: std::fmt::Display + IntoResponse,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match E::from_request_parts(parts, state).await {
            Ok(e) => Ok(Self(e)),
            Err(rejection) => {
                let message = rejection.to_string();
                Err(meta::error(rejection.into_response().status(), message))
            }
        }
    }
}

/// A JSON body that may be absent: the SDK sends `Content-Type: application/json` with an empty
/// body on pause, restart and friends. Malformed JSON is a 400 in Northflank's shape.
pub(crate) struct Body(pub Option<serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Error::Body(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(|e| Error::Body(format!("not valid JSON: {e}")))
    }
}

impl Body {
    /// The body, required.
    pub(crate) fn required(self) -> Result<serde_json::Value, Error> {
        self.0.ok_or_else(|| Error::Body("a JSON body is required".into()))
    }

    /// The body parsed as `T`, or `T::default()` when absent.
    pub(crate) fn or_default<T: serde::de::DeserializeOwned + Default>(self) -> Result<T, Error> {
        self.0.map_or_else(|| Ok(T::default()), crate::host::parse_body)
    }
}

/// The parsers behind the routes, reachable without a running host, for the fuzz targets
/// (`tests/fuzz_parsers.rs`). Not an API.
#[doc(hidden)]
pub mod fuzz_support {
    use axum::extract::{FromRequest, FromRequestParts, Query, Request};
    use axum::response::Response;
    use flankbox_protocol::exec::{ExecContext, IdOrName};

    pub use super::exec::{Identity, SetupError};
    use super::{Body, Nf};
    use crate::host::PageQuery;

    /// A refusal as the client sees it: the status and the body, parsed as JSON if it is.
    pub type Refusal = (u16, Result<serde_json::Value, String>);

    async fn refusal(response: Response) -> Refusal {
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).map_err(|_| String::from_utf8_lossy(&bytes).into_owned()),
        )
    }

    fn parts(query: &str) -> Option<axum::http::request::Parts> {
        let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
        Some(Request::builder().uri(uri).body(()).ok()?.into_parts().0)
    }

    /// A JSON request body as every route reads it: absent (`None`), JSON, or a refusal.
    pub async fn body(bytes: Vec<u8>) -> Result<Option<serde_json::Value>, Refusal> {
        let request = Request::new(axum::body::Body::from(bytes));
        match Body::from_request(request, &()).await {
            Ok(b) => Ok(b.0),
            Err(e) => Err(refusal(axum::response::IntoResponse::into_response(e)).await),
        }
    }

    /// A logs query string as the logs route reads it, its filter applied to `lines` (time in
    /// ms, text): how many lines a range query and a tail's backlog send. `None` when `query`
    /// is not a URI's query at all (no request could carry it).
    pub async fn logs_query(query: &str, lines: &[(u64, String)]) -> Option<Result<(usize, usize), Refusal>> {
        let mut parts = parts(query)?;
        let q = match Nf::<Query<super::logs::LogsQuery>>::from_request_parts(&mut parts, &()).await {
            Ok(Nf(Query(q))) => q,
            Err(r) => return Some(Err(refusal(r).await)),
        };
        Some(match super::logs::fuzz_filter(&q, lines) {
            Ok(counts) => Ok(counts),
            Err(e) => Err(refusal(axum::response::IntoResponse::into_response(e)).await),
        })
    }

    /// A list's query string as the list routes read it, paginating `items` items: the page.
    pub async fn page_query(
        query: &str,
        items: usize,
    ) -> Option<Result<(Vec<usize>, flankbox_protocol::Pagination), Refusal>> {
        let mut parts = parts(query)?;
        let q = match Nf::<Query<PageQuery>>::from_request_parts(&mut parts, &()).await {
            Ok(Nf(Query(q))) => q,
            Err(r) => return Some(Err(refusal(r).await)),
        };
        Some(match crate::host::paginate((0..items).collect(), &q) {
            Ok(page) => Ok(page),
            Err(e) => Err(refusal(axum::response::IntoResponse::into_response(e)).await),
        })
    }

    /// The argv an exec context runs.
    pub fn exec_argv(ctx: &ExecContext) -> Result<Vec<String>, SetupError> {
        super::exec::command_argv(ctx)
    }

    /// Who an exec runs as.
    pub fn exec_identity(user: Option<&IdOrName>, group: Option<&IdOrName>) -> Result<Identity, SetupError> {
        super::exec::identity(user, group)
    }

    /// Whether an exec payload decodes.
    pub fn exec_payload(data: &str, base64: bool) -> bool {
        super::exec::decode_payload(data, base64).is_some()
    }

    /// The name of a `Host` header.
    pub fn host_name(host: &str) -> &str {
        super::host_name(host)
    }
}
