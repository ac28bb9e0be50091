//! One REST attempt over the global `fetch` (the core retries), and the calls whose answer goes
//! to the caller as it came.

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use super::cancel::Cancel;
use super::errors::describe;
use super::transport::Web;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::flow;
use crate::rest::{self, ApiRequest};

#[wasm_bindgen]
extern "C" {
    // The global `fetch`, not `window.fetch`: Workers and Node have no window.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> js_sys::Promise;
}

/// One attempt: the status and the body text, or a network error.
pub(crate) async fn attempt(config: &ClientConfig, req: &ApiRequest, cancel: &Cancel) -> Result<(u16, String)> {
    let init = RequestInit::new();
    init.set_method(req.method.as_str());
    let headers = Headers::new().map_err(|e| Error::Protocol(describe(&e)))?;
    if !config.token.is_empty() {
        let _ = headers.set("Authorization", &format!("Bearer {}", config.token));
    }
    let _ = headers.set("Content-Type", "application/json");
    init.set_headers(&headers);
    if let Some(body) = &req.body {
        init.set_body(&JsValue::from_str(body));
    }
    init.set_signal(Some(&cancel.signal()?));
    if req.keepalive {
        // web-sys's RequestInit has no setter for it.
        let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    }
    let url = config.url(&req.path);
    let response = JsFuture::from(global_fetch(&url, &init)).await.map_err(|e| {
        cancel
            .error()
            .unwrap_or_else(|| Error::Network(format!("{} {url}: {}", req.method.as_str(), describe(&e))))
    })?;
    let response: Response = response.unchecked_into();
    let status = response.status();
    let text = response.text().map_err(|e| Error::Network(describe(&e)))?;
    let text = JsFuture::from(text)
        .await
        .map_err(|e| cancel.error().unwrap_or_else(|| Error::Network(describe(&e))))?;
    Ok((status, text.as_string().unwrap_or_default()))
}

/// Sends `req` and hands its answer to the caller as it came (`Northflank.call`, `ports()`): the
/// runtime's `JSON.parse` makes the JS value; an error answer is read by the core.
pub(crate) async fn send_raw(t: &Web, config: &ClientConfig, req: ApiRequest) -> Result<JsValue> {
    let (status, body) = flow::exchange(t, config, &req).await?;
    rest::check(status, &body)?;
    js_sys::JSON::parse(&body)
        .ok()
        .filter(|p| p.is_object())
        .ok_or_else(|| {
            Error::Protocol(format!(
                "unexpected response body: {}",
                body.chars().take(200).collect::<String>()
            ))
        })
}
