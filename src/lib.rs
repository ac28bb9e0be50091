//! flankbox: a Rust/WebAssembly client for Northflank sandboxes (grows in its own issue).
pub use flankbox_protocol as protocol;
