//! `flankbox/edge`'s core: [`flankbox_edge`] for JavaScript. The Worker glue
//! (`pkg-template/edge.js`) moves the bytes (fetch, `WebSocketPair`); everything it decides
//! (capabilities, policy, rewriting, and the exec relay's limits and closes) happens here.
//!
//! Refusals reach JavaScript as `{ status, code, message, body }` objects, `body` being the
//! Northflank-shaped JSON to answer with.

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
pub use bindings::EdgeCore;
