//! `Sandbox` ports: exposePort and ports.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::{call_cancel, promise, Sandbox};
use crate::protocol::service::{PortList, PortSpec};
use crate::retry::PollBackoff;
use crate::sandbox::{port_spec, port_url};
use crate::wasm::types::{get, number, port_options, string};

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
            let wanted = port_spec(&port_options(&options, port))?;
            let (protocol, public) = (wanted.protocol, wanted.public == Some(true));
            let cancel = call_cancel("exposePort", &options)?;
            let mut ports: Vec<PortSpec> = Vec::new();
            for p in port_list(&inner.get("/ports", &cancel).await?) {
                let (number, name) = (
                    number(&p, "internalPort").unwrap_or(0) as u32,
                    string(&p, "name").unwrap_or_default(),
                );
                if number == port || name == wanted.name {
                    continue;
                }
                let mut spec = port_spec(&port_options(&p, number))?;
                spec.id = string(&p, "id");
                ports.push(spec);
            }
            ports.push(wanted);
            inner.post("/ports", &PortList { ports }, &cancel).await?;
            for wait in PollBackoff::default() {
                let after = port_list(&inner.get("/ports", &cancel).await?);
                let dns = after
                    .iter()
                    .find(|p| number(p, "internalPort") == Some(u64::from(port)))
                    .and_then(|p| string(p, "dns"));
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
            Ok(get(&inner.get("/ports", &cancel).await?, "ports").unwrap_or_else(|| js_sys::Array::new().into()))
        })
    }
}

/// The `ports` array of a ports answer.
fn port_list(data: &JsValue) -> Vec<JsValue> {
    get(data, "ports")
        .map(|p| js_sys::Array::from(&p).iter().collect())
        .unwrap_or_default()
}
