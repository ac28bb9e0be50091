//! Service logs (contract §4): the tail WebSocket and the range query, on one path.
//!
//! Both serve what the main process (`customCommand` or the image's command) printed, one entry
//! per line, stdout and stderr alike, with the time it was read. The host keeps the last
//! 5000 lines of each service; exec output is not logged, as on Northflank.
//!
//! The WebSocket carries no auth header (the SDK sends the token in its first frame), so this
//! route sits outside the token middleware and checks the token itself.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flankbox_protocol::exec::{ErrorData, InitReply};
use flankbox_protocol::logs::{TailClientFrame, TailServerFrame};
use tokio::sync::broadcast::error::RecvError;

use super::{token_matches, Nf};
use crate::error::Error;
use crate::host::{Host, LogLine, Scope};

/// Lines a tail sends first when `lineLimit` is absent (docs).
const TAIL_DEFAULT_LINES: usize = 10;
/// Lines a range query answers when `lineLimit` is absent. Northflank does not document it; this
/// is a page a person can read.
const RANGE_DEFAULT_LINES: usize = 100;
/// How long the client has to send `init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// A batch is sent when it reaches this size (the service batches at about 32.7 KB).
const BATCH_BYTES: usize = 32 << 10;

#[derive(Debug, serde::Deserialize)]
pub(super) struct LogsPath {
    team_id: Option<String>,
    project_id: String,
    service_id: String,
}

/// The query parameters the SDK sends (`type` and ids of builds or runs mean nothing here and
/// are ignored).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogsQuery {
    query_type: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    line_limit: Option<String>,
    container_name: Option<String>,
    text_includes: Option<String>,
    text_not_includes: Option<String>,
    regex_includes: Option<String>,
    regex_not_includes: Option<String>,
    direction: Option<String>,
    duration: Option<String>,
}

/// Which lines a query wants.
#[derive(Debug)]
struct Filter {
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    limit: usize,
    container: Option<String>,
    text: Option<(String, bool)>,
    regex: Option<(regex::Regex, bool)>,
    backward: bool,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid(flankbox_protocol::ValidationError::new(field, reason))
}

fn parse_time(field: &str, value: &str) -> Result<u64, Error> {
    let at = humantime::parse_rfc3339_weak(value).map_err(|e| {
        invalid(
            field,
            format!("must be an ISO-8601 time such as 2026-01-01T00:00:00Z ({e})"),
        )
    })?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

impl Filter {
    fn new(q: &LogsQuery, default_limit: usize) -> Result<Self, Error> {
        let limit = match &q.line_limit {
            None => default_limit,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=crate::host::LOG_LINES).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "lineLimit",
                        format!("must be a whole number from 1 to {}", crate::host::LOG_LINES),
                    )
                })?,
        };
        let mut start_ms = q
            .start_time
            .as_deref()
            .map(|v| parse_time("startTime", v))
            .transpose()?;
        let end_ms = q.end_time.as_deref().map(|v| parse_time("endTime", v)).transpose()?;
        if let Some(d) = &q.duration {
            let seconds: u64 = d
                .parse()
                .map_err(|_| invalid("duration", "must be a whole number of seconds"))?;
            let end = end_ms.unwrap_or_else(|| crate::model::now_unix() * 1000);
            // Any number of seconds is a start before every line (found by fuzzing: it overflowed).
            start_ms = start_ms.or(Some(end.saturating_sub(seconds.saturating_mul(1000))));
        }
        let filters = [
            q.text_includes.is_some(),
            q.text_not_includes.is_some(),
            q.regex_includes.is_some(),
            q.regex_not_includes.is_some(),
        ];
        if filters.iter().filter(|set| **set).count() > 1 {
            return Err(invalid(
                "textIncludes",
                "use at most one of textIncludes, textNotIncludes, regexIncludes and regexNotIncludes",
            ));
        }
        let text =
            (q.text_includes.clone().map(|t| (t, true))).or_else(|| q.text_not_includes.clone().map(|t| (t, false)));
        let regex = match (&q.regex_includes, &q.regex_not_includes) {
            (Some(r), _) => Some((r, true, "regexIncludes")),
            (_, Some(r)) => Some((r, false, "regexNotIncludes")),
            _ => None,
        }
        .map(|(r, keep, field)| {
            regex::RegexBuilder::new(r)
                .size_limit(1 << 20)
                .build()
                .map(|re| (re, keep))
                .map_err(|e| invalid(field, format!("is not a valid regular expression: {e}")))
        })
        .transpose()?;
        let backward = match q.direction.as_deref() {
            None | Some("backward") => true,
            Some("forward") => false,
            Some(other) => {
                return Err(invalid(
                    "direction",
                    format!("must be forward or backward, not {other}"),
                ))
            }
        };
        Ok(Self {
            start_ms,
            end_ms,
            limit,
            container: q.container_name.clone(),
            text,
            regex,
            backward,
        })
    }

    fn matches(&self, line: &LogLine) -> bool {
        self.start_ms.is_none_or(|s| line.at_ms >= s)
            && self.end_ms.is_none_or(|e| line.at_ms <= e)
            // Every instance runs the one container, so any container name but another's matches.
            && self.container.as_deref().is_none_or(|c| c == crate::model::CONTAINER_NAME || c == line.wire.container_id)
            && self.text.as_ref().is_none_or(|(t, keep)| line.wire.log.contains(t.as_str()) == *keep)
            && self.regex.as_ref().is_none_or(|(r, keep)| r.is_match(&line.wire.log) == *keep)
    }

    /// The lines a range query answers. `backward` (the default, as in Loki, which Northflank's
    /// log API resembles) keeps the newest and lists them newest first; `forward` keeps the
    /// oldest, oldest first.
    fn range(&self, lines: Vec<LogLine>) -> Vec<flankbox_protocol::logs::LogLine> {
        let matching = lines.into_iter().filter(|l| self.matches(l)).map(|l| l.wire);
        if self.backward {
            let mut newest: Vec<_> = matching
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .take(self.limit)
                .collect();
            newest.shrink_to_fit();
            newest
        } else {
            matching.take(self.limit).collect()
        }
    }

    /// The lines a tail sends first: the latest `limit`, oldest first.
    fn backlog(&self, lines: Vec<LogLine>) -> Vec<flankbox_protocol::logs::LogLine> {
        let matching: Vec<_> = lines.into_iter().filter(|l| self.matches(l)).map(|l| l.wire).collect();
        let skip = matching.len().saturating_sub(self.limit);
        matching.into_iter().skip(skip).collect()
    }
}

/// `GET …/services/{id}/logs`: a WebSocket upgrade is a tail, anything else a range query.
pub(super) async fn logs(
    State(host): State<Arc<Host>>,
    Nf(Path(path)): Nf<Path<LogsPath>>,
    Nf(Query(query)): Nf<Query<LogsQuery>>,
    request: Request,
) -> Response {
    let scope = Scope {
        team_id: path.team_id.clone(),
        project_id: path.project_id.clone(),
    };
    let (mut parts, _) = request.into_parts();
    let is_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        let ws = match Nf::<WebSocketUpgrade>::from_request_parts(&mut parts, &()).await {
            Ok(Nf(ws)) => ws,
            Err(refusal) => return refusal,
        };
        return ws.on_upgrade(move |socket| tail(host, scope, path.service_id, query, socket));
    }
    if !super::bearer_matches(&host, &parts.headers) {
        return Error::Unauthorized.into_response();
    }
    match range(&host, &scope, &path.service_id, &query) {
        Ok(lines) => super::ok(lines),
        Err(e) => e.into_response(),
    }
}

fn range(
    host: &Host,
    scope: &Scope,
    service: &str,
    query: &LogsQuery,
) -> Result<Vec<flankbox_protocol::logs::LogLine>, Error> {
    match query.query_type.as_deref() {
        None | Some("range") => {}
        Some("tail") => {
            return Err(invalid(
                "queryType",
                "tail is a WebSocket; open it with an Upgrade request",
            ))
        }
        Some(other) => return Err(invalid("queryType", format!("must be range or tail, not {other}"))),
    }
    let filter = Filter::new(query, RANGE_DEFAULT_LINES)?;
    Ok(filter.range(host.logs(scope, service)?))
}

fn text(frame: &TailServerFrame) -> Message {
    super::json_message(frame)
}

async fn fail(mut socket: WebSocket, frame: TailServerFrame) {
    let _ = socket.send(text(&frame)).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn tail(host: Arc<Host>, scope: Scope, service: String, query: LogsQuery, mut socket: WebSocket) {
    let init = tokio::time::timeout(INIT_TIMEOUT, async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str::<TailClientFrame>(&t).ok(),
                Some(Ok(Message::Binary(b))) => return serde_json::from_slice::<TailClientFrame>(&b).ok(),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let Ok(Some(TailClientFrame::Init(init))) = init else {
        let message = "the first message must be init with an API token".to_string();
        return fail(socket, TailServerFrame::Error(ErrorData { message })).await;
    };
    if !token_matches(&host, &init.auth.api_token) {
        let reply = InitReply {
            auth: "failed".into(),
            context: None,
            message: Some("Unauthenticated: invalid API token".into()),
        };
        return fail(socket, TailServerFrame::Init(reply)).await;
    }
    let filter = match Filter::new(&query, TAIL_DEFAULT_LINES) {
        Ok(f) => f,
        Err(e) => return fail(socket, TailServerFrame::Error(ErrorData { message: e.to_string() })).await,
    };
    let (kept, mut rx) = match host.tail_logs(&scope, &service) {
        Ok(v) => v,
        Err(e) => return fail(socket, TailServerFrame::Error(ErrorData { message: e.to_string() })).await,
    };
    let reply = InitReply {
        auth: InitReply::SUCCESSFUL.into(),
        context: None,
        message: None,
    };
    if socket.send(text(&TailServerFrame::Init(reply))).await.is_err() {
        return;
    }
    let backlog = filter.backlog(kept);
    if !backlog.is_empty() && socket.send(text(&TailServerFrame::LogLines(backlog))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            line = rx.recv() => {
                let mut batch = Vec::new();
                let mut bytes = 0;
                let mut next = line;
                loop {
                    match next {
                        Ok(line) => {
                            if filter.matches(&line) {
                                bytes += line.wire.log.len() + 64;
                                batch.push(line.wire);
                            }
                        }
                        // A tail that fell too far behind skips ahead rather than hold memory.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => {
                            let _ = socket.send(Message::Close(None)).await;
                            return;
                        }
                    }
                    if bytes >= BATCH_BYTES {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(line) => next = Ok(line),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => next = Err(RecvError::Lagged(n)),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() && socket.send(text(&TailServerFrame::LogLines(batch))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// For the fuzz targets: how many of `lines` (time in ms, text) a range query and a tail's
/// backlog send for `query`.
pub(super) fn fuzz_filter(query: &LogsQuery, lines: &[(u64, String)]) -> Result<(usize, usize), Error> {
    let lines: Vec<LogLine> = lines
        .iter()
        .map(|(at_ms, log)| LogLine {
            wire: flankbox_protocol::logs::LogLine {
                container_id: crate::model::CONTAINER_NAME.into(),
                log: log.clone(),
                ts: String::new(),
            },
            at_ms: *at_ms,
        })
        .collect();
    let range = Filter::new(query, RANGE_DEFAULT_LINES)?.range(lines.clone()).len();
    let backlog = Filter::new(query, TAIL_DEFAULT_LINES)?.backlog(lines).len();
    Ok((range, backlog))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at_ms: u64, log: &str) -> LogLine {
        LogLine {
            wire: flankbox_protocol::logs::LogLine {
                container_id: "svc-abc".into(),
                log: log.into(),
                ts: String::new(),
            },
            at_ms,
        }
    }

    fn query(pairs: &str) -> LogsQuery {
        let uri: axum::http::Uri = format!("/?{pairs}").parse().unwrap();
        Query::<LogsQuery>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn range_keeps_the_chosen_end() {
        let lines = || {
            (1..=5)
                .map(|i| line(i * 1000, &format!("line {i}")))
                .collect::<Vec<_>>()
        };
        let logs = |q: &str| -> Vec<String> {
            Filter::new(&query(q), 100)
                .unwrap()
                .range(lines())
                .into_iter()
                .map(|l| l.log)
                .collect()
        };
        assert_eq!(logs("lineLimit=2"), ["line 5", "line 4"]);
        assert_eq!(logs("lineLimit=2&direction=forward"), ["line 1", "line 2"]);
        assert_eq!(
            logs("direction=forward&startTime=1970-01-01T00:00:03Z"),
            ["line 3", "line 4", "line 5"]
        );
        assert_eq!(
            logs("endTime=1970-01-01T00:00:02Z&direction=forward"),
            ["line 1", "line 2"]
        );
        assert_eq!(logs("textIncludes=3"), ["line 3"]);
        assert_eq!(logs("regexNotIncludes=[1-4]"), ["line 5"]);
        let backlog: Vec<_> = Filter::new(&query(""), 2)
            .unwrap()
            .backlog(lines())
            .into_iter()
            .map(|l| l.log)
            .collect();
        assert_eq!(backlog, ["line 4", "line 5"]);
    }

    #[test]
    fn bad_queries_name_the_field() {
        for (q, field) in [
            ("lineLimit=0", "lineLimit"),
            ("lineLimit=many", "lineLimit"),
            ("startTime=yesterday", "startTime"),
            ("direction=sideways", "direction"),
            ("regexIncludes=(", "regexIncludes"),
            ("textIncludes=a&regexIncludes=b", "textIncludes"),
            ("duration=-1", "duration"),
        ] {
            let err = Filter::new(&query(q), 10).unwrap_err().to_string();
            assert!(err.contains(field), "{q}: {err}");
        }
    }
}
