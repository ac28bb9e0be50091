//! Log tailing and range queries (contract §4).
//!
//! The tail is a WebSocket at `…/services/{id}/logs?queryType=tail`: the client sends `init` with
//! its token, the server answers `init`, then `log-lines` batches as lines are printed. The
//! range query is a REST `GET` of the same path with `queryType=range`, whose `data` is a bare
//! array of lines.

use serde::{Deserialize, Serialize};

use crate::exec::{InitAuth, InitReply};

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// The instance that printed it.
    pub container_id: String,
    /// The text, without its newline.
    pub log: String,
    /// When it was printed, ISO-8601.
    pub ts: String,
}

/// A client → server tail frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "camelCase")]
pub enum TailClientFrame {
    /// The only one: authentication.
    Init(TailInit),
}

/// `data` of the client's `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailInit {
    /// The API token.
    pub auth: InitAuth,
}

/// A server → client tail frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum TailServerFrame {
    /// The answer to `init`.
    Init(InitReply),
    /// A batch of lines, oldest first.
    LogLines(Vec<LogLine>),
    /// The tail cannot go on.
    Error(crate::exec::ErrorData),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_the_contract() {
        let line = LogLine {
            container_id: "svc-0".into(),
            log: "hello".into(),
            ts: "2026-11-29T10:00:00.000Z".into(),
        };
        let text = serde_json::to_string(&TailServerFrame::LogLines(vec![line])).unwrap();
        assert_eq!(
            text,
            r#"{"type":"log-lines","data":[{"containerId":"svc-0","log":"hello","ts":"2026-11-29T10:00:00.000Z"}]}"#
        );
        let init: TailClientFrame =
            serde_json::from_str(r#"{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"t"}}}"#).unwrap();
        assert_eq!(
            init,
            TailClientFrame::Init(TailInit {
                auth: InitAuth::api_token("t")
            })
        );
    }
}
