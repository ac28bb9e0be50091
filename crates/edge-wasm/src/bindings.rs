//! The `EdgeCore` class. Values cross the boundary through serde (serde-wasm-bindgen), with the
//! same types and rules as the native side.

use flankbox_edge::proxy::{ExecGrant, Io, OwnedRequest};
use flankbox_edge::{Edge, EdgeError, Policy, SessionEnd};
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

/// The edge proxy's logic, configured once per Worker.
#[wasm_bindgen]
pub struct EdgeCore {
    edge: Edge,
}

/// A value for JavaScript: plain objects and arrays.
fn to_js<T: Serialize>(value: &T) -> JsValue {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    // Our own plain types always serialise.
    value.serialize(&serializer).unwrap_or(JsValue::UNDEFINED)
}

/// A refusal for JavaScript: an `Error` named `FlankboxEdgeError` with `code`, `status`,
/// `details` (the Northflank-shaped error body, parsed) and `body` (that body as sent, which the
/// glue answers with).
fn refusal(e: &EdgeError) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    error.set_name("FlankboxEdgeError");
    let body = e.body();
    let set = |key: &str, value: JsValue| {
        let _ = js_sys::Reflect::set(&error, &JsValue::from_str(key), &value);
    };
    set("code", JsValue::from_str(e.code()));
    set("status", JsValue::from(e.status()));
    set("details", js_sys::JSON::parse(&body).unwrap_or(JsValue::UNDEFINED));
    set("body", JsValue::from_str(&body));
    error.into()
}

fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, EdgeError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| EdgeError::BadRequest(format!("{what}: {e}")))
}

#[wasm_bindgen]
extern "C" {
    /// The upstream, as the glue provides it: `{ call(method, path, body) → Promise<{status,
    /// body}>, nonce() → string }`.
    pub type Upstream;

    #[wasm_bindgen(method, catch)]
    fn call(this: &Upstream, method: &str, path: &str, body: Option<String>) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method)]
    fn nonce(this: &Upstream) -> String;
}

/// `io.call`'s answer.
#[derive(Deserialize)]
struct Answer {
    status: u16,
    #[serde(default)]
    body: String,
}

struct JsIo(Upstream);

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map_or_else(|| format!("{e:?}"), |e| String::from(e.message()))
}

impl Io for JsIo {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), EdgeError> {
        let failed = |e: &JsValue| EdgeError::Upstream(js_message(e));
        let promise = self.0.call(method, path, body).map_err(|e| failed(&e))?;
        let answer = JsFuture::from(promise).await.map_err(|e| failed(&e))?;
        let answer: Answer =
            serde_wasm_bindgen::from_value(answer).map_err(|e| EdgeError::Upstream(format!("io.call answered {e}")))?;
        Ok((answer.status, answer.body))
    }

    fn nonce(&self) -> String {
        self.0.nonce()
    }
}

#[wasm_bindgen]
impl EdgeCore {
    /// `new EdgeCore(secret, token, projectId, teamId, policyJson)`; throws a configuration
    /// error (a `FlankboxEdgeError` with `status` 500 and `code` "CONFIG").
    #[wasm_bindgen(constructor)]
    pub fn new(
        secret: String,
        token: String,
        project_id: String,
        team_id: Option<String>,
        policy_json: String,
    ) -> Result<EdgeCore, JsValue> {
        let policy = Policy::from_json(&policy_json).map_err(|e| refusal(&e))?;
        let edge =
            Edge::new(secret.as_bytes(), &token, &project_id, team_id.as_deref(), policy).map_err(|e| refusal(&e))?;
        Ok(Self { edge })
    }

    /// Handles a REST request `{ method, path, query, authorization, origin, ownOrigin, client,
    /// body, now }` with `io`; resolves to `{ status, headers: [[name, value]], body }`.
    pub fn handle(&self, request: JsValue, io: Upstream) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            let request: OwnedRequest = from_js(request, "request").map_err(|e| refusal(&e))?;
            let response = edge.handle(&request.borrow(), &JsIo(io)).await;
            Ok(to_js(&response))
        })
    }

    /// Checks an exec upgrade; returns `{ sandboxId, upstreamPath }` or throws the refusal.
    #[wasm_bindgen(js_name = openExec)]
    pub fn open_exec(
        &self,
        path: &str,
        origin: Option<String>,
        own_origin: Option<String>,
    ) -> Result<JsValue, JsValue> {
        self.edge
            .open_exec(path, origin.as_deref(), own_origin.as_deref())
            .map(|grant| to_js(&grant))
            .map_err(|e| refusal(&e))
    }

    /// Checks the browser's first exec message (its `init`) and resolves to the upstream `init`
    /// (with the real token); rejects with how the session ends ([`Self::exec_message`]'s
    /// shape), and destroys the sandbox of an expired capability.
    #[wasm_bindgen(js_name = execInit)]
    pub fn exec_init(
        &self,
        grant: JsValue,
        message: String,
        origin: Option<String>,
        now: f64,
        io: Upstream,
    ) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            let end = |e: &EdgeError| to_js(&SessionEnd::refusal(e));
            let grant: ExecGrant = from_js(grant, "grant").map_err(|e| end(&e))?;
            edge.exec_init_or_reap(&grant, &message, origin.as_deref(), now as u64, &JsIo(io))
                .await
                .map(JsValue::from)
                .map_err(|e| end(&e))
        })
    }

    /// Checks a browser exec message of `size` bytes: `undefined` to relay it, or how the
    /// session ends, `{ frame?, code, reason }`: send `frame` (an exec `error` frame) to the
    /// browser, then close both sockets with `code` and `reason`.
    #[wasm_bindgen(js_name = execMessage)]
    pub fn exec_message(&self, size: usize) -> JsValue {
        match self.edge.relay_from_browser(size) {
            Ok(()) => JsValue::UNDEFINED,
            Err(end) => to_js(&end),
        }
    }

    /// How the session ends when upstream could not be opened (it answered `status`).
    #[wasm_bindgen(js_name = execUpstreamFailed)]
    pub fn exec_upstream_failed(&self, status: u16) -> JsValue {
        let e = EdgeError::Upstream(format!("the upstream exec answered {status}"));
        to_js(&SessionEnd::refusal(&e))
    }

    /// How the session ends when one side closed with `code` and `reason`.
    #[wasm_bindgen(js_name = execClosed)]
    pub fn exec_closed(&self, code: Option<u16>, reason: String) -> JsValue {
        to_js(&SessionEnd::closed(code, &reason))
    }

    /// How the session ends when a socket failed (`which`: `client` or `upstream`).
    #[wasm_bindgen(js_name = execLost)]
    pub fn exec_lost(&self, which: &str) -> JsValue {
        to_js(&SessionEnd::lost(which))
    }

    /// How the session ends when it was idle for [`Self::exec_idle_timeout_ms`].
    #[wasm_bindgen(js_name = execIdle)]
    pub fn exec_idle(&self) -> JsValue {
        to_js(&SessionEnd::idle())
    }

    /// The exec idle timeout, in milliseconds.
    #[wasm_bindgen(getter, js_name = execIdleTimeoutMs)]
    pub fn exec_idle_timeout_ms(&self) -> f64 {
        self.edge.exec_idle_timeout().as_millis() as f64
    }

    /// Deletes expired sandboxes (the `scheduled` handler); resolves to how many live ones are
    /// left.
    pub fn sweep(&self, now: f64, io: Upstream) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            edge.sweep(now as u64, &JsIo(io))
                .await
                .map(|n| JsValue::from(n as f64))
                .map_err(|e| refusal(&e))
        })
    }
}
