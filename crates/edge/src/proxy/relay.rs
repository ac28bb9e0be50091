//! The exec relay's decisions, made once for both relays (the host's `/edge` mount and the
//! Worker's glue, which only move the messages): how long a session may idle, which message
//! is too large, and how each way of ending closes both sockets.

use std::time::Duration;

use flankbox_protocol::exec::{ErrorData, ServerFrame};

use crate::error::EdgeError;

use super::Edge;

/// The close code of a session idle too long (a private-use code, 4000–4999).
pub const IDLE_CLOSE: u16 = 4000;

/// How a session ends: what the browser is told and how both sockets close.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionEnd {
    /// An exec `error` frame (JSON) for the browser, sent before its close (refusals only).
    pub frame: Option<String>,
    /// The close code for both sides.
    pub code: u16,
    /// The close reason (short: a close frame holds 123 bytes of it).
    pub reason: String,
}

impl SessionEnd {
    /// A refusal: an `error` frame saying why, then a close whose reason is the error's code.
    /// 1009 for a message too large, 1011 when upstream failed, 1008 (policy) otherwise.
    pub fn refusal(e: &EdgeError) -> Self {
        let code = match e {
            EdgeError::FrameTooLarge { .. } => 1009,
            EdgeError::Upstream(_) => 1011,
            _ => 1008,
        };
        let frame = serde_json::to_string(&ServerFrame::Error(ErrorData { message: e.to_string() })).ok();
        Self {
            frame,
            code,
            reason: e.code().into(),
        }
    }

    /// One side closed with `code` (`None` for a close frame without one): the other side
    /// closes the same way. Codes a receiver reports but no one may send (RFC 6455 §7.4.1)
    /// become ones that can be sent, or the other side's close would fail and leave it open:
    /// 1005 ("no status") a normal close, 1006 (dropped without a close) and the like an
    /// internal error.
    pub fn closed(code: Option<u16>, reason: &str) -> Self {
        let code = match code {
            None | Some(1005) => 1000,
            Some(code @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => code,
            Some(_) => 1011,
        };
        Self {
            frame: None,
            code,
            reason: reason.into(),
        }
    }

    /// No message either way for the policy's idle timeout.
    pub fn idle() -> Self {
        Self {
            frame: None,
            code: IDLE_CLOSE,
            reason: "idle timeout".into(),
        }
    }

    /// A socket failed (not a close): the other side learns of an internal error.
    pub fn lost(which: &str) -> Self {
        Self {
            frame: None,
            code: 1011,
            reason: format!("{which} lost"),
        }
    }
}

impl Edge {
    /// A session with no message either way for this long ends ([`SessionEnd::idle`]).
    pub fn exec_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.policy.exec.idle_timeout_seconds.max(1))
    }

    /// The largest message the browser's socket takes: above the policy's limit, so that a
    /// larger message is refused by the proxy with a clear error, not by the socket.
    pub fn exec_socket_limit(&self) -> usize {
        self.policy.exec.max_frame_bytes.saturating_mul(2).max(1 << 16)
    }

    /// Checks a browser message of `size` bytes before it is relayed.
    pub fn relay_from_browser(&self, size: usize) -> Result<(), SessionEnd> {
        self.check_frame(size).map_err(|e| SessionEnd::refusal(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_closes_both_sides_one_way() {
        let too_large = SessionEnd::refusal(&EdgeError::FrameTooLarge { size: 9, limit: 1 });
        assert_eq!((too_large.code, too_large.reason.as_str()), (1009, "FRAME_TOO_LARGE"));
        let frame: serde_json::Value = serde_json::from_str(too_large.frame.as_deref().unwrap()).unwrap();
        assert_eq!(frame["type"], "error");
        assert!(frame["data"]["message"].as_str().unwrap().contains("9 bytes"));
        assert_eq!(SessionEnd::refusal(&EdgeError::Upstream("x".into())).code, 1011);
        assert_eq!(SessionEnd::refusal(&EdgeError::InvalidCapability).code, 1008);
        assert_eq!(SessionEnd::closed(Some(1005), "").code, 1000);
        assert_eq!(SessionEnd::closed(None, "").code, 1000);
        assert_eq!(SessionEnd::closed(Some(1006), "").code, 1011, "a dropped browser");
        assert_eq!(SessionEnd::closed(Some(1015), "").code, 1011);
        assert_eq!(SessionEnd::closed(Some(1001), "").code, 1001);
        assert_eq!(
            SessionEnd::closed(Some(4001), "bye"),
            SessionEnd {
                frame: None,
                code: 4001,
                reason: "bye".into()
            }
        );
        assert_eq!(SessionEnd::idle().code, IDLE_CLOSE);
    }
}
