//! `flankbox/edge`'s core: [`flankbox_edge`] for JavaScript. The Worker glue
//! (`pkg-template/edge.js`) moves the bytes (fetch, `WebSocketPair`); everything it decides
//! (capabilities, policy, rewriting) happens here.
//!
//! Errors reach JavaScript as `{ status, code, message, body }` objects, `body` being the
//! Northflank-shaped JSON to answer with.

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
pub use bindings::EdgeCore;
