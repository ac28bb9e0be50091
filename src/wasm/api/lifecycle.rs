//! `Sandbox` lifecycle: status, pause, resume and destroy.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_cancel, promise, Progress, Sandbox};
use crate::rest::ApiRequest;
use crate::sandbox::{self, Readiness};
use crate::wasm::cancel::Cancel;
use crate::wasm::http::send_unit;
use crate::wasm::types::{boolean, callback, object, signal, timeout_ms};

#[wasm_bindgen]
impl Sandbox {
    /// Where the sandbox stands.
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxStatus>")]
    pub fn status(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("status", &options)?;
            let state = inner.state(&cancel).await?;
            Ok(object(&[
                ("id", JsValue::from_str(&inner.id)),
                ("status", JsValue::from_str(state.rollout().unwrap_or("UNKNOWN"))),
                ("paused", JsValue::from(state.paused())),
                ("instances", JsValue::from(state.instances())),
                ("ready", JsValue::from(state.readiness() == Readiness::Ready)),
            ]))
        })
    }

    /// Pauses: scales to 0 (processes end, ephemeral storage goes, volumes stay) and waits
    /// until that has happened.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn pause(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = Cancel::new(
                "pause",
                signal(&options),
                Some(timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS)),
            )?;
            inner.scale(0, &cancel).await?;
            inner.wait_settled(&cancel).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Resumes: scales back to 1 and waits until the fresh sandbox is ready.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn resume(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = Cancel::new(
                "resume",
                signal(&options),
                Some(timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS)),
            )?;
            inner.scale(1, &cancel).await?;
            let progress = Progress {
                callback: callback(&options, "onProgress"),
                started: js_sys::Date::now(),
            };
            inner.wait_ready(&cancel, &progress).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Deletes the sandbox, and with `deleteVolume` its volumes too.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn destroy(&self, #[wasm_bindgen(unchecked_param_type = "DestroyOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("destroy", &options)?;
            let children = boolean(&options, "deleteVolume").unwrap_or(false);
            let query = if children { "?delete_child_objects=true" } else { "" };
            let keepalive = boolean(&options, "keepalive").unwrap_or(false);
            send_unit(
                &inner.config,
                ApiRequest::delete(inner.path(query)).keepalive(keepalive),
                &cancel,
            )
            .await
            .map(|_| JsValue::UNDEFINED)
        })
    }
}
