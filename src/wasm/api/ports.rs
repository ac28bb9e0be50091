//! `Sandbox` ports: exposePort and ports.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_cancel, promise, Sandbox};
use crate::error::Result;
use crate::protocol::service::{PortList, PortSpec};
use crate::rest::ApiRequest;
use crate::retry::PollBackoff;
use crate::sandbox::{port_spec, port_url, PortOptions, PortView};
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
            let wanted = port_spec(&asked)?;
            let (protocol, public) = (wanted.protocol, wanted.public == Some(true));
            let cancel = call_cancel("exposePort", &options)?;
            let current: PortList<PortView> = inner.get("/ports", &cancel).await?;
            let mut ports = current
                .ports
                .iter()
                .filter(|p| p.internal_port != port && p.name != wanted.name)
                .map(PortView::keep)
                .collect::<Result<Vec<PortSpec>>>()?;
            ports.push(wanted);
            inner.post("/ports", &PortList { ports }, &cancel).await?;
            for wait in PollBackoff::default() {
                let after: PortList<PortView> = inner.get("/ports", &cancel).await?;
                let dns = after
                    .ports
                    .into_iter()
                    .find(|p| p.internal_port == port)
                    .and_then(|p| p.dns);
                match dns {
                    Some(dns) => return Ok(JsValue::from_str(&port_url(&inner.config.base_url, protocol, &dns))),
                    None if !public => return Ok(JsValue::UNDEFINED),
                    None => cancel.sleep(wait).await?,
                }
            }
            unreachable!("PollBackoff never ends")
        })
    }

    /// The sandbox's ports.
    #[wasm_bindgen(unchecked_return_type = "Promise<Port[]>")]
    pub fn ports(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("ports", &options)?;
            let data = send_raw(&inner.config, ApiRequest::get(inner.path("/ports")), &cancel).await?;
            Ok(get(&get(&data, "data").unwrap_or_default(), "ports").unwrap_or_else(|| js_sys::Array::new().into()))
        })
    }
}
