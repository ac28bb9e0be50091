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
mod detached;
mod exec;
mod files;
mod lifecycle;
mod ports;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::cancel::Cancel;
use super::http::send_raw;
use super::transport::Web;
use super::types::{callback, get, signal, timeout_ms, to_js};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::flow::{Progress, SandboxRef};
use crate::rest::ApiRequest;

/// Runs `fut` as a Promise, turning errors into JS errors.
pub(crate) fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue>> + 'static,
{
    boxed_promise(Box::pin(fut))
}

/// The one `future_to_promise` of the exported methods: boxed, so that its promise plumbing is
/// compiled once rather than once per method (size; README "The client").
#[inline(never)]
fn boxed_promise(fut: Pin<Box<dyn Future<Output = Result<JsValue>>>>) -> Promise {
    future_to_promise(async move { fut.await.map_err(JsValue::from) })
}

/// Default timeout of one REST call, ms.
const CALL_TIMEOUT_MS: u64 = 30_000;

/// The transport of one call: its `signal`, and its `timeoutMs` or `default_ms`.
fn transport(what: &str, opts: &JsValue, default_ms: Option<u64>) -> Web {
    Web::new(Cancel::new(what, signal(opts), timeout_ms(opts).or(default_ms)))
}

/// The transport of a one-request call (default timeout 30 s).
fn call_transport(what: &str, opts: &JsValue) -> Web {
    transport(what, opts, Some(CALL_TIMEOUT_MS))
}

/// `onProgress` of an options object, as the core's progress sink.
fn on_progress(opts: &JsValue) -> impl FnMut(Progress) {
    let callback: Option<Function> = callback(opts, "onProgress");
    move |p: Progress| {
        if let Some(cb) = &callback {
            let _ = cb.call1(&JsValue::NULL, &to_js(&p));
        }
    }
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
            let t = call_transport(&format!("{method} {path}"), &options);
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
            send_raw(&t, &config, req.keepalive(keepalive)).await
        })
    }
}

/// A sandbox: one Northflank deployment service.
#[wasm_bindgen]
pub struct Sandbox {
    inner: Rc<SandboxRef>,
}
