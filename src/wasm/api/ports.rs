//! `Sandbox` ports: exposePort and ports.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_transport, promise, Sandbox};
use crate::flow;
use crate::rest::ApiRequest;
use crate::sandbox::PortOptions;
use crate::wasm::http::send_raw;
use crate::wasm::types::{get, options as options_of};

#[wasm_bindgen]
impl Sandbox {
    /// Exposes a port (replacing any with the same number) and resolves to the URL that
    /// reaches it: `https://{dns}` on Northflank, `http://{dns}` on a local host, `tcp://…` for
    /// TCP. A public port's name can appear a moment after the update, so it is polled for until
    /// the call's timeout. A port that gets no name (private HTTP) resolves to `undefined`.
    #[wasm_bindgen(js_name = exposePort, unchecked_return_type = "Promise<string | undefined>")]
    pub fn expose_port(
        &self,
        port: u32,
        #[wasm_bindgen(unchecked_param_type = "ExposePortOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut asked: PortOptions = options_of(&options, "exposePort")?;
            asked.port = port;
            let t = call_transport("exposePort", &options);
            let url = flow::expose_port(&t, &inner, &asked).await?;
            Ok(url.map_or(JsValue::UNDEFINED, |u| JsValue::from_str(&u)))
        })
    }

    /// The sandbox's ports.
    #[wasm_bindgen(unchecked_return_type = "Promise<Port[]>")]
    pub fn ports(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let t = call_transport("ports", &options);
            let data = send_raw(&t, &inner.config, ApiRequest::get(inner.path("/ports"))).await?;
            Ok(get(&get(&data, "data").unwrap_or_default(), "ports").unwrap_or_else(|| js_sys::Array::new().into()))
        })
    }
}
