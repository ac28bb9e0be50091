//! `Sandbox` lifecycle: status, pause, resume and destroy.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_transport, on_progress, promise, transport, Sandbox};
use crate::flow::{self, Reporter};
use crate::sandbox::{self, Readiness};
use crate::wasm::types::{boolean, object};

#[wasm_bindgen]
impl Sandbox {
    /// Where the sandbox stands.
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxStatus>")]
    pub fn status(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let state = flow::status(&call_transport("status", &options), &inner).await?;
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
            let t = transport("pause", &options, Some(sandbox::DEFAULT_CREATE_TIMEOUT_MS));
            flow::pause(&t, &inner).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Resumes: scales back to 1 and waits until the fresh sandbox is ready.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn resume(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let t = transport("resume", &options, Some(sandbox::DEFAULT_CREATE_TIMEOUT_MS));
            let mut sink = on_progress(&options);
            flow::resume(&t, &inner, &mut Reporter::new(&t, &mut sink))
                .await
                .map(|_| JsValue::UNDEFINED)
        })
    }

    /// Deletes the sandbox, and with `deleteVolume` its volumes too.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn destroy(&self, #[wasm_bindgen(unchecked_param_type = "DestroyOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let t = call_transport("destroy", &options);
            let delete_volume = boolean(&options, "deleteVolume").unwrap_or(false);
            let keepalive = boolean(&options, "keepalive").unwrap_or(false);
            flow::destroy(&t, &inner, delete_volume, keepalive)
                .await
                .map(|_| JsValue::UNDEFINED)
        })
    }
}
