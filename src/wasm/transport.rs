//! The core's [`Transport`] over the runtime: `fetch`, `WebSocket` and `setTimeout`, bound to one
//! call's [`Cancel`] (its signal and timeout).

use super::cancel::Cancel;
use super::http::attempt;
use super::socket::Socket;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::rest::ApiRequest;
use crate::transport::Transport;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    // Browsers, Node and workerd all have it; `catch` covers a runtime that does not.
    #[wasm_bindgen(js_namespace = performance, js_name = now, catch)]
    fn performance_now() -> Result<f64, JsValue>;
}

/// Time a clean-up after a failed call may take, ms.
const CLEANUP_TIMEOUT_MS: u64 = 10_000;

/// One call's transport.
pub(crate) struct Web {
    pub(crate) cancel: Cancel,
}

impl Web {
    /// A transport cancelled by `cancel`.
    pub(crate) fn new(cancel: Cancel) -> Self {
        Self { cancel }
    }
}

impl Transport for Web {
    type Session = Socket;

    async fn fetch(&self, config: &ClientConfig, req: &ApiRequest) -> Result<(u16, String)> {
        self.cancel.run(attempt(config, req, &self.cancel)).await
    }

    async fn open(&self, url: &str) -> Result<Socket> {
        let socket = Socket::open(url, &self.cancel).await?;
        // The cancellation closes the socket; whatever reads it then ends on the close.
        self.cancel.on_cancel(socket.closer());
        Ok(socket)
    }

    async fn sleep(&self, ms: u64) -> Result<()> {
        self.cancel.sleep(ms).await
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn monotonic_ms(&self) -> f64 {
        // `performance.now()`, or `Date.now()` where there is no `performance`.
        performance_now().unwrap_or_else(|_| js_sys::Date::now())
    }

    fn cancelled(&self) -> Option<Error> {
        self.cancel.error()
    }

    fn for_cleanup(&self) -> Result<Self> {
        Ok(Self::new(Cancel::new("cleanup", None, Some(CLEANUP_TIMEOUT_MS))))
    }
}
