//! The command-exec WebSocket (contract §3).
//!
//! `init` (token and command) → `init` reply → `stdOut`/`stdErr` as output arrives → exactly
//! one `completion` → close 1000. Nothing is ever sent after `completion`. A client that goes
//! away kills its command. Output is read only as fast as the client takes it, so a flood
//! backs up into the process instead of into memory.
//!
//! A session runs in steps: [`accept`] (the `init`), [`prepare`] (argv, identity, sandbox),
//! [`start`] (spawn and the `init` reply), [`relay`] (stdin in, output out, until the process
//! ends or the client goes), then the `completion`.
//!
//! - `command`: the argv and identity of an exec;
//! - `output`: output frames, built without serde_json on the hot path;
//! - `streams`: output and stdin pumps, and the completion.

mod command;
mod output;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use flankbox_protocol::exec::{
    ClientFrame, Completion, CompletionStatus, ErrorData, ExecContext, InitContext, InitReply, InitRequest, ServerFrame,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

pub(crate) use command::{command_argv, identity};
pub use command::{Identity, SetupError};
pub(super) use streams::decode_payload;

use super::{token_matches, Nf};
use crate::host::{ExecTarget, Host, Scope};
use crate::model::CONTAINER_NAME;
use crate::runtime::sandbox::Process;
use crate::runtime::{ExitStatus, ProcessSpec, RuntimeError};

/// Largest client message (the SDK's own limit is 100 MiB; stdin chunks are ~22 kB).
const MAX_MESSAGE: usize = 16 << 20;
/// Stdin the client may send before its `init` is answered.
const MAX_EARLY_STDIN: usize = 16 << 20;
/// How long the client has to send `init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// After the command exits, output still in flight is forwarded until the pipe is closed or
/// stays quiet this long (a background child may hold it open forever).
const DRAIN_IDLE: Duration = Duration::from_millis(100);
/// How long the client has to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Output read in one go, and so the most data one frame carries.
const READ_CHUNK: usize = 64 << 10;

#[derive(Debug, serde::Deserialize)]
pub(super) struct ExecPath {
    team_id: Option<String>,
    project_id: String,
    entity: String,
    entity_id: String,
}

pub(super) async fn upgrade(
    State(host): State<Arc<Host>>,
    Nf(Path(path)): Nf<Path<ExecPath>>,
    Nf(ws): Nf<WebSocketUpgrade>,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(host, path, socket))
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

fn frame(f: &ServerFrame) -> Message {
    super::json_message(f)
}

/// How a session ends before its command runs.
enum Refusal {
    /// An `error` frame, then a close with `code`.
    Error { message: String, code: u16 },
    /// A failed `init` reply, then a policy close.
    Unauthenticated,
}

impl Refusal {
    fn error(message: impl ToString, code: u16) -> Self {
        Self::Error {
            message: message.to_string(),
            code,
        }
    }

    async fn send(self, mut tx: Sink, rx: Stream) {
        match self {
            Self::Error { message, code } => {
                let _ = tx.send(frame(&ServerFrame::Error(ErrorData { message }))).await;
                finish(tx, rx, code, "").await;
            }
            Self::Unauthenticated => {
                let reply = InitReply {
                    auth: "failed".into(),
                    context: None,
                    message: Some("Unauthenticated: invalid API token".into()),
                };
                let _ = tx.send(frame(&ServerFrame::Init(reply))).await;
                finish(tx, rx, close_code::POLICY, "unauthenticated").await;
            }
        }
    }
}

/// Closes, then waits briefly for the client's close so its side resolves promptly.
async fn finish(mut tx: Sink, mut rx: Stream, code: u16, reason: &str) {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }));
    let _ = tx.send(close).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = rx.next().await {} }).await;
}

async fn session(host: Arc<Host>, path: ExecPath, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let (init, early) = match accept(&host, &path, &mut rx).await {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.send(tx, rx).await,
    };
    let ctx = init.context.unwrap_or_default();
    let base64 = ctx.is_base64();
    let prepared = match prepare(&host, &path, &ctx) {
        Ok(p) => p,
        Err(e) => return Refusal::error(e, close_code::NORMAL).send(tx, rx).await,
    };
    let started = match start(prepared, &path, base64, &mut tx).await {
        Ok(Some(started)) => started,
        Ok(None) => return finish(tx, rx, close_code::NORMAL, "").await,
        Err(refusal) => return refusal.send(tx, rx).await,
    };
    relay(started, base64, early, tx, rx).await;
}

/// Step 1: the client's `init`, checked (token and entity), with any stdin sent ahead of it.
async fn accept(host: &Host, path: &ExecPath, rx: &mut Stream) -> Result<(InitRequest, Vec<String>), Refusal> {
    let (init, early) = match tokio::time::timeout(INIT_TIMEOUT, wait_init(rx)).await {
        Ok(Ok(got)) => got,
        Ok(Err(message)) => return Err(Refusal::error(message, close_code::PROTOCOL)),
        Err(_) => return Err(Refusal::error("no init message within 30 s", close_code::POLICY)),
    };
    if !token_matches(host, &init.auth.api_token) {
        return Err(Refusal::Unauthenticated);
    }
    if path.entity != "services" {
        let message = format!("exec into {} is not supported by this host; only services", path.entity);
        return Err(Refusal::error(message, close_code::NORMAL));
    }
    Ok((init, early))
}

/// Reads client messages until `init`, keeping any stdin sent ahead of it.
async fn wait_init(rx: &mut Stream) -> Result<(InitRequest, Vec<String>), String> {
    let mut early = Vec::new();
    let mut early_bytes = 0;
    while let Some(msg) = rx.next().await {
        let bytes = match msg {
            Ok(Message::Text(t)) => t.as_bytes().to_vec(),
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        match serde_json::from_slice::<ClientFrame>(&bytes) {
            Ok(ClientFrame::Init(init)) => return Ok((*init, early)),
            Ok(ClientFrame::Payload(data)) => {
                early_bytes += data.len();
                if early_bytes > MAX_EARLY_STDIN {
                    return Err("too much stdin before init".into());
                }
                early.push(data);
            }
            Ok(_) => {}
            Err(e) => return Err(format!("unable to parse message: {e}")),
        }
    }
    Err("the connection closed before init".into())
}

/// What a session runs, and where.
struct Prepared {
    spec: ProcessSpec,
    target: ExecTarget,
}

/// Step 2: the argv, the identity and the sandbox of the exec.
fn prepare(host: &Host, path: &ExecPath, ctx: &ExecContext) -> Result<Prepared, SetupError> {
    let argv = command_argv(ctx)?;
    let who = identity(ctx.user.as_ref(), ctx.group.as_ref())?;
    let scope = Scope {
        team_id: path.team_id.clone(),
        project_id: path.project_id.clone(),
    };
    let target = host.exec_target(&scope, &path.entity_id, ctx.instance_name.as_deref())?;
    let tty = ctx.tty.unwrap_or(false).then(|| {
        (
            ctx.tty_columns.filter(|c| *c > 0).unwrap_or(80),
            ctx.tty_rows.filter(|r| *r > 0).unwrap_or(24),
        )
    });
    let mut env = target.env.clone();
    env.retain(|e| !e.starts_with("HOME="));
    env.push(format!("HOME={}", who.home));
    env.push(format!("USER={}", who.name));
    if tty.is_some() {
        env.push("TERM=xterm-256color".into());
    }
    let spec = ProcessSpec {
        argv,
        env,
        cwd: who.home,
        uid: who.uid,
        gid: who.gid,
        tty,
    };
    Ok(Prepared { spec, target })
}

/// A running process, and what its end is measured against.
struct Started {
    target: ExecTarget,
    process: Process,
    tty: bool,
    /// The sandbox's OOM kills before the process started.
    oom_before: Option<u64>,
}

/// Step 3: spawns the process and answers the `init`. `Ok(None)` when the session is over
/// already: a program that could not start "ran" and failed with 126 or 127, like
/// `docker exec`'s, or the client went away.
async fn start(prepared: Prepared, path: &ExecPath, base64: bool, tx: &mut Sink) -> Result<Option<Started>, Refusal> {
    let Prepared { spec, target } = prepared;
    let tty = spec.tty.is_some();
    let oom_before = target.sandbox.oom_kills();
    let spawned = target.sandbox.spawn(spec).await;
    let reply = ServerFrame::Init(InitReply {
        auth: InitReply::SUCCESSFUL.into(),
        context: Some(InitContext {
            instance_name: target.instance.clone(),
            container_name: CONTAINER_NAME.into(),
        }),
        message: None,
    });
    let process = match spawned {
        Ok(p) => p,
        Err(RuntimeError::Spawn { errno, message }) => {
            let code = if errno == libc::ENOENT { 127 } else { 126 };
            let text = format!("{message}\n");
            let data = if base64 {
                flankbox_protocol::base64::encode(text.as_bytes())
            } else {
                text
            };
            let completion = Completion {
                exit_code: code,
                status: CompletionStatus::Failure,
                message: Some(message),
            };
            for f in [reply, ServerFrame::StdErr(data), ServerFrame::Completion(completion)] {
                let _ = tx.send(frame(&f)).await;
            }
            return Ok(None);
        }
        Err(RuntimeError::Gone) => {
            let message = format!("Service {} stopped before the command could start", path.entity_id);
            return Err(Refusal::error(message, close_code::NORMAL));
        }
        Err(e) => {
            return Err(Refusal::error(
                format!("the command could not start: {e}"),
                close_code::ERROR,
            ))
        }
    };
    if tx.send(frame(&reply)).await.is_err() {
        target.sandbox.signal(process.id, libc::SIGKILL);
        return Ok(None);
    }
    Ok(Some(Started {
        target,
        process,
        tty,
        oom_before,
    }))
}

/// Step 4: stdin in and output out until the process ends (then its `completion`) or the
/// client goes (then the process is killed).
async fn relay(started: Started, base64: bool, early: Vec<String>, tx: Sink, mut rx: Stream) {
    let Started {
        target,
        process,
        tty,
        oom_before,
    } = started;
    // A short queue: while it is full, output gathers into larger frames (streams::fill_while_busy).
    let (frames_tx, frames_rx) = mpsc::channel::<Message>(2);
    let writer = tokio::spawn(streams::forward(tx, frames_rx));
    let (exited_tx, exited_rx) = watch::channel(false);
    let mut readers = vec![tokio::spawn(streams::pump_output(
        process.stdout,
        false,
        base64,
        frames_tx.clone(),
        exited_rx.clone(),
    ))];
    if let Some(stderr) = process.stderr {
        readers.push(tokio::spawn(streams::pump_output(
            stderr,
            true,
            base64,
            frames_tx.clone(),
            exited_rx.clone(),
        )));
    }
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(streams::pump_stdin(process.stdin, stdin_rx, tty));
    let mut stdin = Some(stdin_tx);
    for data in early {
        if let (Some(s), Some(bytes)) = (&stdin, decode_payload(&data, base64)) {
            let _ = s.send(bytes).await;
        }
    }

    let mut exit = process.exit;
    let status = loop {
        tokio::select! {
            status = &mut exit => break Some(status.unwrap_or(ExitStatus::Lost)),
            msg = rx.next() => {
                let bytes = match msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                };
                match serde_json::from_slice::<ClientFrame>(&bytes) {
                    Ok(ClientFrame::Payload(data)) => match (&stdin, decode_payload(&data, base64)) {
                        (Some(s), Some(bytes)) => { let _ = s.send(bytes).await; }
                        (_, None) => tracing::debug!("dropping a payload that is not base64"),
                        (None, _) => {}
                    },
                    Ok(ClientFrame::StdInEnd) => stdin = None,
                    Ok(ClientFrame::Resize(size)) => {
                        if let Some(pty) = &process.pty {
                            let _ = pty.resize(size.tty_columns, size.tty_rows);
                        }
                    }
                    Ok(ClientFrame::Init(_)) => {}
                    Err(e) => {
                        let _ = frames_tx.send(frame(&ServerFrame::Error(ErrorData { message: format!("unable to parse message: {e}") }))).await;
                        break None;
                    }
                }
            }
        }
    };
    drop(stdin);
    let _ = exited_tx.send(true);
    match status {
        Some(status) => {
            for r in readers {
                let _ = r.await;
            }
            let oom = matches!(status, ExitStatus::Signal(9)) && target.sandbox.oom_kills() > oom_before;
            let _ = frames_tx
                .send(frame(&ServerFrame::Completion(streams::completion(status, oom))))
                .await;
        }
        None => {
            // The client is gone (or broke the protocol): its command goes too.
            target.sandbox.signal(process.id, libc::SIGKILL);
            for r in readers {
                r.abort();
            }
        }
    }
    drop(frames_tx);
    if let Ok(tx) = writer.await {
        finish(tx, rx, close_code::NORMAL, "").await;
    }
}
