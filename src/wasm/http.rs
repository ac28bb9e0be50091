//! REST over the global `fetch`, with the retry policy for reads.

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use super::cancel::Cancel;
use super::errors::describe;
use super::types::{get, string};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::rest::{api_error, ApiRequest, ErrorParts};
use crate::retry::{Outcome, RetryPolicy};

#[wasm_bindgen]
extern "C" {
    // The global `fetch`, not `window.fetch`: Workers and Node have no window.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> js_sys::Promise;
}

/// One attempt: the status and the body text, or a network error.
async fn attempt(config: &ClientConfig, req: &ApiRequest, cancel: &Cancel) -> Result<(u16, String)> {
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
    init.set_signal(Some(&cancel.signal()));
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

/// Sends `req` and resolves to the parsed envelope (`{ data, pagination? }`); reads are retried
/// with backoff on network errors, 429 and 5xx. JSON is read by the runtime's `JSON.parse`:
/// serde's readers would more than double the package.
pub(crate) async fn send(config: &ClientConfig, req: ApiRequest, cancel: &Cancel) -> Result<JsValue> {
    let policy = RetryPolicy::default();
    let mut tried = 0;
    loop {
        let result = cancel.run(attempt(config, &req, cancel)).await;
        let outcome = match &result {
            Ok((status, _)) => Outcome::Status(*status),
            Err(Error::Network(_)) => Outcome::NetworkError,
            Err(e) => return Err(e.clone()),
        };
        match policy.retry_after(req.idempotent(), tried, outcome, js_sys::Math::random()) {
            Some(wait) => {
                tried += 1;
                cancel.sleep(wait).await?;
            }
            None => {
                let (status, body) = result?;
                let parsed = js_sys::JSON::parse(&body).ok();
                if status == 200 {
                    return parsed.filter(|p| p.is_object()).ok_or_else(|| {
                        Error::Protocol(format!(
                            "unexpected response body: {}",
                            body.chars().take(200).collect::<String>()
                        ))
                    });
                }
                let parts = parsed.as_ref().and_then(|p| get(p, "error")).map(|e| ErrorParts {
                    message: string(&e, "message").unwrap_or_default(),
                    id: string(&e, "id"),
                    details: get(&e, "details")
                        .and_then(|d| js_sys::JSON::stringify(&d).ok())
                        .map(String::from),
                });
                return Err(api_error(status, parts, &body));
            }
        }
    }
}

/// `data` of an envelope.
pub(crate) fn data(envelope: &JsValue) -> JsValue {
    get(envelope, "data").unwrap_or(JsValue::UNDEFINED)
}
