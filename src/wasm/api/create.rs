//! `Sandbox` creation and connection: volume, service, capability, readiness poll, and
//! clean-up when `create` fails; the handle's getters.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_transport, on_progress, promise, transport, Northflank, Sandbox};
use crate::config::ClientConfig;
use crate::flow::{self, Reporter, SandboxRef};
use crate::sandbox::{self, SandboxOptions};
use crate::wasm::types::{self, get};

#[wasm_bindgen]
impl Sandbox {
    /// Creates a sandbox and resolves once it is ready: creates the volume first when asked,
    /// creates the service with one instance, and polls with backoff until it is `COMPLETED`,
    /// reporting each step through `onProgress`. Gives up after `timeoutMs` (default 120 s)
    /// and then deletes what it made.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn create(
        nf: &Northflank,
        #[wasm_bindgen(unchecked_param_type = "SandboxOptions")] options: JsValue,
    ) -> Promise {
        let config = nf.config.clone();
        promise(async move {
            let opts: SandboxOptions = types::options(&options, "Sandbox.create")?;
            let t = transport("Sandbox.create", &options, Some(sandbox::DEFAULT_CREATE_TIMEOUT_MS));
            let mut sink = on_progress(&options);
            let made = flow::create(&t, &config, &opts, &mut Reporter::new(&t, &mut sink)).await?;
            Ok(Sandbox { inner: Rc::new(made) }.into())
        })
    }

    /// A handle on an existing sandbox, checked to exist.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn connect(
        nf: &Northflank,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "ConnectOptions")] options: JsValue,
    ) -> Promise {
        let inner = Rc::new(handle(nf, id, &options));
        promise(async move {
            flow::connect(&call_transport("Sandbox.connect", &options), &inner).await?;
            Ok(Sandbox { inner }.into())
        })
    }

    /// A handle on a service by id, without any request (for layers built on this one, and
    /// for a page's last `destroy({ keepalive: true })`, which cannot wait for a `connect`).
    #[wasm_bindgen(js_name = forService)]
    pub fn for_service(
        nf: &Northflank,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "ForServiceOptions")] options: JsValue,
    ) -> Sandbox {
        Sandbox {
            inner: Rc::new(handle(nf, id, &options)),
        }
    }

    /// The capability this sandbox is driven with, when it came from an edge proxy: hand it
    /// to `Sandbox.connect(nf, id, { capability })` elsewhere. `undefined` with a token.
    #[wasm_bindgen(getter)]
    pub fn capability(&self) -> Option<String> {
        let config = &self.inner.config;
        config.is_capability.then(|| config.token.clone())
    }

    /// The service id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// The volume made by `create`, if any.
    #[wasm_bindgen(getter, js_name = volumeId)]
    pub fn volume_id(&self) -> Option<String> {
        self.inner.volume_id.clone()
    }
}

/// A handle on `id`, with the edge proxy's `capability` of the options in place of the token.
fn handle(nf: &Northflank, id: String, options: &JsValue) -> SandboxRef {
    let config: ClientConfig = match get(options, "capability").and_then(|c| c.as_string()) {
        Some(capability) => nf.config.with_capability(capability),
        None => (*nf.config).clone(),
    };
    SandboxRef {
        config,
        id,
        volume_id: None,
    }
}
