//! The `EdgeCore` class.

use flankbox_edge::proxy::{EdgeRequest, ExecGrant, Io};
use flankbox_edge::{Edge, EdgeError, Policy};
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

/// The edge proxy's logic, configured once per Worker.
#[wasm_bindgen]
pub struct EdgeCore {
    edge: Edge,
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn string(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).and_then(|v| v.as_string())
}

fn set(obj: &Object, key: &str, value: JsValue) {
    // Setting a plain property on a fresh object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

/// An error for JavaScript: `{ status, code, message, body }`.
fn to_js(e: &EdgeError) -> JsValue {
    let obj = Object::new();
    set(&obj, "status", e.status().into());
    set(&obj, "code", e.code().into());
    set(&obj, "message", e.to_string().into());
    set(&obj, "body", e.body().into());
    obj.into()
}

/// The upstream, as the glue provides it: `{ call(method, path, body) → Promise<{status, body}>,
/// nonce() → string }`.
struct JsIo(JsValue);

impl Io for JsIo {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), String> {
        let call: Function = get(&self.0, "call").ok_or("io.call is missing")?.into();
        let body = body.map_or(JsValue::NULL, JsValue::from);
        let promise: Promise = call
            .call3(&self.0, &method.into(), &path.into(), &body)
            .map_err(|e| format!("{e:?}"))?
            .into();
        let answer = JsFuture::from(promise).await.map_err(|e| {
            e.dyn_ref::<js_sys::Error>()
                .map_or_else(|| format!("{e:?}"), |e| String::from(e.message()))
        })?;
        let status = get(&answer, "status")
            .and_then(|v| v.as_f64())
            .ok_or("io.call gave no status")? as u16;
        Ok((status, string(&answer, "body").unwrap_or_default()))
    }

    fn nonce(&self) -> String {
        get(&self.0, "nonce")
            .and_then(|f| Function::from(f).call0(&self.0).ok())
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    }
}

#[wasm_bindgen]
impl EdgeCore {
    /// `new EdgeCore(secret, token, projectId, teamId, policyJson)`; throws a configuration
    /// error (`{ status: 500, code: "CONFIG", message }`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        secret: String,
        token: String,
        project_id: String,
        team_id: Option<String>,
        policy_json: String,
    ) -> Result<EdgeCore, JsValue> {
        let policy = Policy::from_json(&policy_json).map_err(|e| to_js(&e))?;
        let edge =
            Edge::new(secret.as_bytes(), &token, &project_id, team_id.as_deref(), policy).map_err(|e| to_js(&e))?;
        Ok(Self { edge })
    }

    /// Handles a REST request `{ method, path, query, authorization, origin, ownOrigin, client,
    /// body, now }` with `io`; resolves to `{ status, headers: [[name, value]], body }`.
    pub fn handle(&self, request: JsValue, io: JsValue) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            let s = |k| string(&request, k);
            let (method, path, query, body, client) = (s("method"), s("path"), s("query"), s("body"), s("client"));
            let (authorization, origin, own_origin) = (s("authorization"), s("origin"), s("ownOrigin"));
            let now = get(&request, "now").and_then(|v| v.as_f64()).unwrap_or(0.0) as u64;
            let req = EdgeRequest {
                method: method.as_deref().unwrap_or("GET"),
                path: path.as_deref().unwrap_or("/"),
                query: query.as_deref().unwrap_or(""),
                authorization: authorization.as_deref(),
                origin: origin.as_deref(),
                own_origin: own_origin.as_deref(),
                client: client.as_deref().unwrap_or("unknown"),
                body: body.as_deref().unwrap_or(""),
                now,
            };
            let response = edge.handle(&req, &JsIo(io)).await;
            let out = Object::new();
            set(&out, "status", response.status.into());
            let headers: Array = response
                .headers
                .into_iter()
                .map(|(k, v)| JsValue::from(Array::of2(&k.into(), &v.into())))
                .collect();
            set(&out, "headers", headers.into());
            set(&out, "body", response.body.into());
            Ok(out.into())
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
        let grant = self
            .edge
            .open_exec(path, origin.as_deref(), own_origin.as_deref())
            .map_err(|e| to_js(&e))?;
        let out = Object::new();
        set(&out, "sandboxId", grant.sandbox_id.into());
        set(&out, "upstreamPath", grant.upstream_path.into());
        Ok(out.into())
    }

    /// Checks the browser's `init` and resolves to the upstream `init` (with the real token);
    /// rejects with the refusal (and destroys the sandbox of an expired capability).
    #[wasm_bindgen(js_name = execInit)]
    pub fn exec_init(&self, grant: JsValue, message: String, origin: Option<String>, now: f64, io: JsValue) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            let grant = ExecGrant {
                sandbox_id: string(&grant, "sandboxId").unwrap_or_default(),
                upstream_path: string(&grant, "upstreamPath").unwrap_or_default(),
            };
            edge.exec_init_or_reap(&grant, &message, origin.as_deref(), now as u64, &JsIo(io))
                .await
                .map(JsValue::from)
                .map_err(|e| to_js(&e))
        })
    }

    /// Throws `FRAME_TOO_LARGE` for an exec message over the policy's size.
    #[wasm_bindgen(js_name = checkFrame)]
    pub fn check_frame(&self, size: usize) -> Result<(), JsValue> {
        self.edge.check_frame(size).map_err(|e| to_js(&e))
    }

    /// The exec idle timeout, in milliseconds.
    #[wasm_bindgen(getter, js_name = execIdleTimeoutMs)]
    pub fn exec_idle_timeout_ms(&self) -> f64 {
        self.edge.policy().exec.idle_timeout_seconds as f64 * 1000.0
    }

    /// Deletes expired sandboxes (the `scheduled` handler); resolves to how many live ones are
    /// left.
    pub fn sweep(&self, now: f64, io: JsValue) -> Promise {
        let edge = self.edge.clone();
        future_to_promise(async move {
            edge.sweep(now as u64, &JsIo(io))
                .await
                .map(|n| JsValue::from(n as f64))
                .map_err(|e| to_js(&e))
        })
    }
}
