//! The JavaScript face of the client: thin `#[wasm_bindgen]` classes over the pure core, and the
//! transport they need (global `fetch`, `WebSocket`, `setTimeout`), which exists alike in
//! browsers, Cloudflare Workers and Node.

mod api;
mod cancel;
mod detached;
mod errors;
mod http;
mod process;
mod socket;
mod transport;
mod types;

pub use api::{Northflank, Sandbox};
pub use process::SandboxProcess;
