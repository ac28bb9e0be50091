//! Wire types of the Northflank API subset that flankbox speaks.
//!
//! Both the wasm client (root crate) and the local host (`crates/host`) build on these types, so
//! the two cannot drift apart. The source of truth is `shared/northflank-api.md`, read from
//! `@northflank/js-client` 0.9.5; the section numbers in the docs below point into it.
//!
//! The crate does no I/O. Its parts:
//! - [`envelope`]: the `{data, pagination}` success envelope and the `{error}` body;
//! - [`auth`]: the bearer token of a request;
//! - [`base64`]: base64 as exec payloads and capabilities use it;
//! - [`service`]: deployment services, their status, scaling and ports;
//! - [`volume`]: volumes and attachments;
//! - [`exec`]: the command-exec WebSocket frames;
//! - [`output_frame`]: output frames as the host writes them, and read without a JSON parse;
//! - [`detached`]: processes that outlive their connection, over exec alone;
//! - [`logs`]: log tail frames and log lines;
//! - [`lifetime`]: a sandbox's expiry tag;
//! - [`plans`]: deployment plan ids and sizes;
//! - [`names`]: name rules and the id derived from a name;
//! - [`validate`]: request checks with errors that name the field;
//! - [`text`]: output bytes as valid UTF-8 text.

pub mod auth;
pub mod base64;
pub mod detached;
pub mod envelope;
pub mod exec;
pub mod lifetime;
pub mod logs;
pub mod names;
pub mod output_frame;
pub mod plans;
pub mod service;
pub mod text;
pub mod validate;
pub mod volume;

pub use envelope::{ApiError, Envelope, ErrorBody, Pagination};
pub use validate::ValidationError;
