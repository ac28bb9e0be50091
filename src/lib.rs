//! flankbox: Northflank sandboxes from browsers, Cloudflare Workers and Node.
//!
//! A pure-Rust core, covered by plain `cargo test`, under thin `#[wasm_bindgen]` bindings:
//! - [`config`]: base URL, token, project and team, and the paths and URLs they make;
//! - [`rest`]: REST calls as data, and answers parsed into results;
//! - [`retry`]: when a call is tried again, and poll intervals;
//! - [`sandbox`]: what `Sandbox.create` sends, and what a status means;
//! - [`exec`]: exec frames and how a session ends;
//! - [`output`]: output kept within a limit, its head and its tail;
//! - [`tar`]: archives for directory upload and download;
//! - [`transport`]: what the core needs of the world (REST calls, exec sessions, waits), as a
//!   trait the wasm layer implements over `fetch` and `WebSocket`;
//! - [`flow`]: the calls' steps over a transport (create, lifecycle, ports, files, detached
//!   processes);
//! - [`base64`]: the frames' base64 (the protocol's, shared with the edge proxy and the host);
//! - [`error`]: the one error type, which becomes a JS `Error` with a `code`.
//!
//! The wire types come from [`flankbox_protocol`], shared with the local host.

pub use flankbox_protocol::base64;
pub mod config;
pub mod error;
pub mod exec;
pub mod flow;
pub mod output;
pub mod rest;
pub mod retry;
pub mod sandbox;
pub mod tar;
pub mod transport;

pub use error::{Error, Result};
pub use flankbox_protocol as protocol;

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use wasm::{Northflank, Sandbox, SandboxProcess};
