//! What the core needs of the world, as a trait: REST calls, exec sessions, waiting, time and
//! chance. `src/wasm/` implements it over `fetch`, `WebSocket` and `setTimeout`, bound to one
//! call's cancellation; the core's tests implement it in memory.

use futures_core::Stream;
use futures_sink::Sink;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::rest::ApiRequest;

/// What arrives on an exec session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A frame's bytes (a text frame's UTF-8, or a binary frame as it came): JSON either way.
    Frame(Vec<u8>),
    /// The socket closed (1006 when the connection just dropped).
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

/// An exec session: frames in as a `Stream`, frames out as a `Sink` whose readiness is the
/// backpressure on input (it waits while the socket has too much queued).
pub trait Session: Stream<Item = Incoming> + Sink<String, Error = Error> + Unpin {
    /// Closes the session with 1000 (after a completion, or to end a command).
    fn end(&mut self);
}

/// REST calls, exec sessions, waits, time and chance, for one call. Everything here fails with
/// the call's own cancellation ([`Transport::cancelled`]) once it is cancelled.
#[allow(async_fn_in_trait)] // single-threaded, statically dispatched: no Send bound wanted
pub trait Transport: Sized {
    /// An exec session.
    type Session: Session;

    /// One attempt of a REST call: the answer's status and body. A failure to get any answer is
    /// [`Error::Network`] (retried for reads) unless the call was cancelled.
    async fn fetch(&self, config: &ClientConfig, req: &ApiRequest) -> Result<(u16, String)>;

    /// Opens an exec WebSocket; a cancellation of the call closes it.
    async fn open(&self, url: &str) -> Result<Self::Session>;

    /// Waits `ms` milliseconds.
    async fn sleep(&self, ms: u64) -> Result<()>;

    /// Uniform in `[0, 1)`: retry jitter and sandbox names.
    fn random(&self) -> f64;

    /// Unix time in milliseconds: for dates only (expiry tags), since the wall clock can jump.
    fn now_ms(&self) -> f64;

    /// A monotonic clock in milliseconds, for durations and windows: a wall clock set forward
    /// (NTP, a laptop waking) must not end a resume window early.
    fn monotonic_ms(&self) -> f64;

    /// The call's cancellation (timeout or abort), once it happened.
    fn cancelled(&self) -> Option<Error>;

    /// A transport for best-effort clean-up after this call failed: not cancelled with it, with
    /// a short timeout of its own.
    fn for_cleanup(&self) -> Result<Self>;
}
