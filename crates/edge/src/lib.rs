//! The edge proxy's logic, shared by the Cloudflare Worker entry of the npm package
//! (`flankbox/edge`, through `crates/edge-wasm`) and the local host's native mount (`/edge`).
//!
//! A browser never holds the Northflank token. It talks to the proxy with the same REST paths
//! and exec WebSocket as Northflank's API, presenting a **capability** instead of a token: an
//! HMAC-SHA256-signed grant of some operations on one sandbox until an expiry, optionally for one
//! origin. The proxy checks it, checks the request against its **policy**, rewrites it (the real
//! token in, the owner and expiry into the sandbox's name) and forwards it upstream.
//!
//! This crate does no I/O: the callers move the bytes.
//! - [`capability`]: minting and checking capabilities;
//! - [`policy`]: what browsers may do;
//! - [`proxy`]: routing, authorisation and rewriting of each request and exec `init`;
//! - [`error`]: refusals, each with its HTTP status and a Northflank-shaped body.

pub mod capability;
pub mod error;
pub mod policy;
pub mod proxy;

pub use capability::{Capability, Op, Ops};
pub use error::EdgeError;
pub use policy::Policy;
pub use proxy::{Edge, EdgeRequest, EdgeResponse, ExecGrant, Io, OwnedRequest, Route, SessionEnd};
