//! `Northflank` and `Sandbox`: the JS classes.
//!
//! Every async method clones what it needs and returns a `Promise` (so calls may overlap), takes
//! an options object with `signal` and `timeoutMs`, and rejects with the errors of
//! [`super::errors`].
//!
//! Split by concern: `create` (creation, connection, the handle's getters), `exec` (exec and
//! spawn), `files`, `ports` and `lifecycle` (status, pause, resume, destroy), each with a
//! `#[wasm_bindgen] impl Sandbox` of its own.

mod create;
mod exec;
mod files;
mod lifecycle;
mod ports;

use std::rc::Rc;

use js_sys::{Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::cancel::Cancel;
use super::http::{send, send_raw, send_unit};
use super::types::{get, object, signal, timeout_ms};
use crate::config::{encode_component, ClientConfig};
use crate::error::{Error, Result};
use crate::rest::ApiRequest;
use crate::retry::PollBackoff;
use crate::sandbox::{settled, Readiness, ServiceState};

/// Runs `fut` as a Promise, turning errors into JS errors.
fn promise<F>(fut: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    future_to_promise(async move { fut.await.map_err(JsValue::from) })
}

/// Default timeout of one REST call, ms.
const CALL_TIMEOUT_MS: u64 = 30_000;

fn call_cancel(what: &str, opts: &JsValue) -> Result<Cancel> {
    Cancel::new(what, signal(opts), Some(timeout_ms(opts).unwrap_or(CALL_TIMEOUT_MS)))
}

/// A Northflank API connection: a token, a project and a base URL.
#[wasm_bindgen]
pub struct Northflank {
    config: Rc<ClientConfig>,
}

#[wasm_bindgen]
impl Northflank {
    /// `new Northflank({ token, projectId, teamId?, baseUrl? })`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "NorthflankOptions")] options: JsValue,
    ) -> Result<Northflank, JsValue> {
        let s = |k: &str| get(&options, k).and_then(|v| v.as_string());
        let token = s("token").unwrap_or_default();
        // Through an edge proxy there is no token and the proxy picks the project.
        let project = s("projectId").or_else(|| token.is_empty().then(|| "edge".into()));
        let config = ClientConfig::new(token, project.unwrap_or_default(), s("teamId"), s("baseUrl"))?;
        Ok(Self {
            config: Rc::new(config),
        })
    }

    /// The project.
    #[wasm_bindgen(getter, js_name = projectId)]
    pub fn project_id(&self) -> String {
        self.config.project_id.clone()
    }

    /// The API base URL.
    #[wasm_bindgen(getter, js_name = baseUrl)]
    pub fn base_url(&self) -> String {
        self.config.base_url.clone()
    }

    /// One REST call to `path` (below the base URL, e.g. `/v1/projects/p/services`). Resolves to
    /// `{ data, pagination? }`; rejects on any status but 200. Reads are retried.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ data: any; pagination?: { hasNextPage: boolean; cursor?: string; count: number } }>"
    )]
    pub fn call(
        &self,
        method: String,
        path: String,
        body: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        let config = self.config.clone();
        promise(async move {
            let cancel = call_cancel(&format!("{method} {path}"), &options)?;
            let req = match method.to_ascii_uppercase().as_str() {
                "GET" => ApiRequest::get(path),
                "DELETE" => ApiRequest::delete(path),
                "POST" if body.is_undefined() || body.is_null() => ApiRequest::post_empty(path),
                "POST" => {
                    let json = js_sys::JSON::stringify(&body)
                        .map_err(|_| Error::Invalid("the body cannot be turned into JSON".into()))?;
                    ApiRequest::post_json(path, json.into())
                }
                other => return Err(Error::Invalid(format!("unsupported method {other}"))),
            };
            let keepalive = super::types::boolean(&options, "keepalive").unwrap_or(false);
            send_raw(&config, req.keepalive(keepalive), &cancel).await
        })
    }
}

/// A sandbox: one Northflank deployment service.
#[wasm_bindgen]
pub struct Sandbox {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Rc<ClientConfig>,
    pub(crate) id: String,
    volume_id: Option<String>,
}

impl Inner {
    fn path(&self, rest: &str) -> String {
        self.config
            .project_path(&format!("/services/{}{rest}", encode_component(&self.id)))
    }

    /// `data` of a GET below the service.
    async fn get<T: serde::de::DeserializeOwned>(&self, rest: &str, cancel: &Cancel) -> Result<T> {
        send(&self.config, ApiRequest::get(self.path(rest)), cancel).await
    }

    async fn post<B: Serialize>(&self, rest: &str, body: &B, cancel: &Cancel) -> Result<()> {
        send_unit(&self.config, ApiRequest::post(self.path(rest), body)?, cancel).await
    }

    /// What the service reports.
    async fn state(&self, cancel: &Cancel) -> Result<ServiceState> {
        self.get("", cancel).await
    }

    /// Polls until the deployment is ready (or failed), reporting each new status.
    async fn wait_ready(&self, cancel: &Cancel, progress: &Progress) -> Result<()> {
        let mut last = String::new();
        for wait in PollBackoff::default() {
            match self.state(cancel).await?.readiness() {
                Readiness::Ready => return Ok(()),
                Readiness::Failed => {
                    return Err(Error::DeploymentFailed(format!("service {} reports FAILED", self.id)))
                }
                Readiness::Waiting(status) => {
                    if status != last {
                        progress.report("waiting", Some(&status));
                        last = status;
                    }
                }
            }
            cancel.sleep(wait).await?;
        }
        unreachable!("PollBackoff never ends")
    }

    /// Polls until the rollout settles (after a pause).
    async fn wait_settled(&self, cancel: &Cancel) -> Result<()> {
        for wait in PollBackoff::default() {
            if settled(self.state(cancel).await?.rollout()) {
                return Ok(());
            }
            cancel.sleep(wait).await?;
        }
        unreachable!("PollBackoff never ends")
    }

    async fn scale(&self, instances: u32, cancel: &Cancel) -> Result<()> {
        let body = crate::protocol::service::ScaleRequest {
            instances: Some(instances),
            ..Default::default()
        };
        self.post("/scale", &body, cancel).await
    }
}

/// `onProgress` reporting.
struct Progress {
    callback: Option<Function>,
    started: f64,
}

impl Progress {
    fn report(&self, step: &str, status: Option<&str>) {
        self.report_with(step, status, &[]);
    }

    /// The "starting" step, once the service exists: its id, and through an edge proxy its
    /// capability, so that a caller can destroy it even if the create never resolves (a page
    /// that goes away while it starts).
    fn report_created(&self, inner: &Inner) {
        let capability = inner.config.is_capability.then(|| inner.config.token.as_str());
        self.report_with(
            "starting",
            None,
            &[
                ("id", JsValue::from_str(&inner.id)),
                ("capability", capability.map_or(JsValue::UNDEFINED, JsValue::from_str)),
            ],
        );
    }

    fn report_with(&self, step: &str, status: Option<&str>, extra: &[(&str, JsValue)]) {
        if let Some(cb) = &self.callback {
            let mut fields = vec![
                ("step", JsValue::from_str(step)),
                ("status", status.map_or(JsValue::UNDEFINED, JsValue::from_str)),
                ("elapsedMs", JsValue::from((js_sys::Date::now() - self.started).round())),
            ];
            fields.extend(extra.iter().cloned());
            let _ = cb.call1(&JsValue::NULL, &object(&fields));
        }
    }
}
