//! The command-exec WebSocket (contract §3).
//!
//! `init` (token and command) → `init` reply → `stdOut`/`stdErr` as output arrives → exactly
//! one `completion` → close 1000. Nothing is ever sent after `completion`. A client that goes
//! away kills its command. Output is read only as fast as the client takes it, so a flood
//! backs up into the process instead of into memory.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine;
use flankbox_protocol::exec::{
    ClientFrame, Command, Completion, CompletionStatus, ErrorData, ExecContext, IdOrName, InitContext, InitReply,
    InitRequest, ServerFrame,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::{token_matches, Nf};
use crate::host::{Host, Scope};
use crate::model::CONTAINER_NAME;
use crate::runtime::images::{GROUPS, USERS};
use crate::runtime::sandbox::{Input, Output};
use crate::runtime::{ExitStatus, ProcessSpec, RuntimeError};
use flankbox_protocol::text::Utf8Carry;

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

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Accepts payloads with or without padding: each message is decoded on its own.
const B64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

/// Sends an `error` frame and closes.
async fn fail(mut tx: Sink, rx: Stream, message: String, code: u16) {
    let _ = tx.send(frame(&ServerFrame::Error(ErrorData { message }))).await;
    finish(tx, rx, code, "").await;
}

/// Closes, then waits briefly for the client's close so its side resolves promptly.
async fn finish(mut tx: Sink, mut rx: Stream, code: u16, reason: &str) {
    let _ = tx.send(close_frame(code, reason)).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = rx.next().await {} }).await;
}

/// Reads client messages until `init`, keeping any stdin sent ahead of it.
async fn wait_init(rx: &mut Stream, base64: &mut Option<bool>) -> Result<(InitRequest, Vec<String>), String> {
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
            Ok(ClientFrame::Init(init)) => {
                *base64 = Some(init.context.as_ref().is_some_and(ExecContext::is_base64));
                return Ok((*init, early));
            }
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

async fn session(host: Arc<Host>, path: ExecPath, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut base64 = None;
    let (init, early) = match tokio::time::timeout(INIT_TIMEOUT, wait_init(&mut rx, &mut base64)).await {
        Ok(Ok(got)) => got,
        Ok(Err(message)) => return fail(tx, rx, message, 1002).await,
        Err(_) => return fail(tx, rx, "no init message within 30 s".into(), 1008).await,
    };
    if !token_matches(&host, &init.auth.api_token) {
        let reply = InitReply {
            auth: "failed".into(),
            context: None,
            message: Some("Unauthenticated: invalid API token".into()),
        };
        let _ = tx.send(frame(&ServerFrame::Init(reply))).await;
        return finish(tx, rx, 1008, "unauthenticated").await;
    }
    if path.entity != "services" {
        return fail(
            tx,
            rx,
            format!("exec into {} is not supported by this host; only services", path.entity),
            1000,
        )
        .await;
    }
    let ctx = init.context.unwrap_or_default();
    let prepared = (|| {
        let argv = command_argv(&ctx)?;
        let (uid, gid, home, user) = identity(ctx.user.as_ref(), ctx.group.as_ref())?;
        let scope = Scope {
            team_id: path.team_id.clone(),
            project_id: path.project_id.clone(),
        };
        let target = host.exec_target(&scope, &path.entity_id, ctx.instance_name.as_deref())?;
        Ok::<_, String>((argv, uid, gid, home, user, target))
    })();
    let (argv, uid, gid, home, user, target) = match prepared {
        Ok(p) => p,
        Err(message) => return fail(tx, rx, message, 1000).await,
    };
    let tty = ctx.tty.unwrap_or(false).then(|| {
        (
            ctx.tty_columns.filter(|c| *c > 0).unwrap_or(80),
            ctx.tty_rows.filter(|r| *r > 0).unwrap_or(24),
        )
    });
    let mut env = target.env.clone();
    env.retain(|e| !e.starts_with("HOME="));
    env.push(format!("HOME={home}"));
    env.push(format!("USER={user}"));
    if tty.is_some() {
        env.push("TERM=xterm-256color".into());
    }
    let oom_before = target.sandbox.oom_kills();
    let spawned = target
        .sandbox
        .spawn(ProcessSpec {
            argv,
            env,
            cwd: home,
            uid,
            gid,
            tty,
        })
        .await;
    let reply = InitReply {
        auth: InitReply::SUCCESSFUL.into(),
        context: Some(InitContext {
            instance_name: target.instance.clone(),
            container_name: CONTAINER_NAME.into(),
        }),
        message: None,
    };
    let process = match spawned {
        Ok(p) => p,
        Err(RuntimeError::Spawn { errno, message }) => {
            // Like `docker exec`: the command "ran" and failed with 126/127.
            let code = if errno == libc::ENOENT { 127 } else { 126 };
            let base64 = base64 == Some(true);
            let text = format!("{message}\n");
            let data = if base64 { B64.encode(text.as_bytes()) } else { text };
            for f in [
                ServerFrame::Init(reply),
                ServerFrame::StdErr(data),
                ServerFrame::Completion(Completion {
                    exit_code: code,
                    status: CompletionStatus::Failure,
                    message: Some(message),
                }),
            ] {
                let _ = tx.send(frame(&f)).await;
            }
            return finish(tx, rx, 1000, "").await;
        }
        Err(RuntimeError::Gone) => {
            return fail(
                tx,
                rx,
                format!("Service {} stopped before the command could start", path.entity_id),
                1000,
            )
            .await
        }
        Err(e) => return fail(tx, rx, format!("the command could not start: {e}"), 1011).await,
    };
    if tx.send(frame(&ServerFrame::Init(reply))).await.is_err() {
        target.sandbox.signal(process.id, libc::SIGKILL);
        return;
    }
    let base64 = base64 == Some(true);
    let (frames_tx, frames_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(forward(tx, frames_rx));
    let (exited_tx, exited_rx) = watch::channel(false);
    let mut readers = Vec::new();
    readers.push(tokio::spawn(pump_output(
        process.stdout,
        false,
        base64,
        frames_tx.clone(),
        exited_rx.clone(),
    )));
    if let Some(stderr) = process.stderr {
        readers.push(tokio::spawn(pump_output(
            stderr,
            true,
            base64,
            frames_tx.clone(),
            exited_rx.clone(),
        )));
    }
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(pump_stdin(process.stdin, stdin_rx, tty.is_some()));
    let mut stdin = Some(stdin_tx);
    for data in early {
        if let (Some(s), Ok(bytes)) = (&stdin, decode_payload(&data, base64)) {
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
                        (Some(s), Ok(bytes)) => { let _ = s.send(bytes).await; }
                        (_, Err(e)) => tracing::debug!("dropping a bad payload: {e}"),
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
    let Some(status) = status else {
        // The client is gone (or broke the protocol): its command goes too.
        target.sandbox.signal(process.id, libc::SIGKILL);
        let _ = exited_tx.send(true);
        for r in readers {
            r.abort();
        }
        drop(frames_tx);
        if let Ok(tx) = writer.await {
            finish(tx, rx, 1000, "").await;
        }
        return;
    };
    let _ = exited_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    let oom = matches!(status, ExitStatus::Signal(9)) && target.sandbox.oom_kills() > oom_before;
    let _ = frames_tx
        .send(frame(&ServerFrame::Completion(completion(status, oom))))
        .await;
    drop(frames_tx);
    if let Ok(tx) = writer.await {
        finish(tx, rx, 1000, "").await;
    }
}

/// Sends queued frames in order; gives the sink back when the queue closes.
async fn forward(mut tx: Sink, mut frames: mpsc::Receiver<Message>) -> Sink {
    while let Some(m) = frames.recv().await {
        if tx.send(m).await.is_err() {
            break;
        }
    }
    tx
}

async fn pump_stdin(mut input: Input, mut data: mpsc::Receiver<Vec<u8>>, tty: bool) {
    while let Some(bytes) = data.recv().await {
        if input.write_all(&bytes).await.is_err() {
            return;
        }
    }
    // End of input: a pipe closes when `input` drops; a terminal gets ^D, which is what typing
    // the end of input means there.
    if tty {
        let _ = input.write_all(&[4]).await;
    }
}

async fn pump_output(
    mut output: Output,
    stderr: bool,
    base64: bool,
    frames: mpsc::Sender<Message>,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut text = Utf8Carry::default();
    let mut draining = *exited.borrow();
    loop {
        let read = if draining {
            match tokio::time::timeout(DRAIN_IDLE, output.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                r = output.read(&mut buf) => r,
                _ = exited.changed() => { draining = true; continue; }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = if base64 {
            B64.encode(&buf[..n])
        } else {
            text.push(&buf[..n])
        };
        if data.is_empty() {
            continue;
        }
        let f = if stderr {
            ServerFrame::StdErr(data)
        } else {
            ServerFrame::StdOut(data)
        };
        if frames.send(frame(&f)).await.is_err() {
            return;
        }
    }
    let rest = text.finish();
    if !rest.is_empty() {
        let f = if stderr {
            ServerFrame::StdErr(rest)
        } else {
            ServerFrame::StdOut(rest)
        };
        let _ = frames.send(frame(&f)).await;
    }
}

pub(super) fn decode_payload(data: &str, base64: bool) -> Result<Vec<u8>, base64::DecodeError> {
    if base64 {
        B64_LENIENT.decode(data.trim_end())
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

/// The completion a process's end maps to: `Success` iff the exit code is 0.
pub(crate) fn completion(status: ExitStatus, oom: bool) -> Completion {
    match status {
        ExitStatus::Code(0) => Completion {
            exit_code: 0,
            status: CompletionStatus::Success,
            message: None,
        },
        ExitStatus::Code(c) => Completion {
            exit_code: c,
            status: CompletionStatus::Failure,
            message: None,
        },
        ExitStatus::Signal(s) => Completion {
            exit_code: 128 + s,
            status: CompletionStatus::Failure,
            message: Some(if oom {
                format!("killed by signal {s}: out of memory (the plan's memory limit)")
            } else {
                format!("killed by signal {s}")
            }),
        },
        ExitStatus::Lost => Completion {
            exit_code: -1,
            status: CompletionStatus::Unknown,
            message: Some("the sandbox stopped while the command ran".into()),
        },
    }
}

/// The argv for an exec context (contract §3.6):
/// - no command: an interactive login shell, bash if the image has it, else sh;
/// - `shell: "none"` or no shell: an argv array as is, a string split like a shell would;
/// - any other shell: its words, then the command as one argument (`bash -c "<cmd>"`).
pub(crate) fn command_argv(ctx: &ExecContext) -> Result<Vec<String>, String> {
    let shell = ctx
        .shell
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "none");
    let argv = match (&ctx.command, shell) {
        (None, _) => vec![
            "/bin/sh".into(),
            "-c".into(),
            "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi".into(),
        ],
        (Some(Command::Argv(a)), None) => a.clone(),
        (Some(Command::Line(l)), None) => {
            shlex::split(l).ok_or_else(|| format!("the command {l:?} has unbalanced quotes"))?
        }
        (Some(command), Some(shell)) => {
            let mut argv = shlex::split(shell).ok_or_else(|| format!("the shell {shell:?} has unbalanced quotes"))?;
            argv.push(match command {
                Command::Line(l) => l.clone(),
                Command::Argv(a) => shlex::try_join(a.iter().map(String::as_str))
                    .map_err(|e| format!("the command cannot be quoted: {e}"))?,
            });
            argv
        }
    };
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err("the command is empty".into());
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("the command contains a NUL byte".into());
    }
    Ok(argv)
}

/// uid, gid, home and name for the exec's `user`/`group`: names from the sandbox's
/// `/etc/passwd` and `/etc/group`, or numbers inside the sandbox's range.
pub(crate) fn identity(
    user: Option<&IdOrName>,
    group: Option<&IdOrName>,
) -> Result<(u32, u32, String, String), String> {
    let (uid, default_gid, home, name) = match user {
        None => (0, 0, "/root".to_string(), "root".to_string()),
        Some(IdOrName::Id(id)) => match USERS.iter().find(|u| u.1 == *id) {
            Some(u) => (u.1, u.2, u.3.to_string(), u.0.to_string()),
            None => (*id, *id, "/".into(), id.to_string()),
        },
        Some(IdOrName::Name(n)) => {
            if let Ok(id) = n.parse::<u32>() {
                return identity(Some(&IdOrName::Id(id)), group);
            }
            let u = USERS
                .iter()
                .find(|u| u.0 == n)
                .ok_or_else(|| format!("unable to find user {n}: no matching entries in passwd file"))?;
            (u.1, u.2, u.3.to_string(), u.0.to_string())
        }
    };
    let gid = match group {
        None => default_gid,
        Some(IdOrName::Id(g)) => *g,
        Some(IdOrName::Name(n)) => match n.parse::<u32>() {
            Ok(g) => g,
            Err(_) => GROUPS
                .iter()
                .find(|g| g.0 == n)
                .map(|g| g.1)
                .ok_or_else(|| format!("unable to find group {n}: no matching entries in group file"))?,
        },
    };
    if uid >= 65536 || gid >= 65536 {
        return Err(format!("user {uid}:{gid} is outside the sandbox's id range (0-65535)"));
    }
    Ok((uid, gid, home, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(command: Option<Command>, shell: Option<&str>) -> ExecContext {
        ExecContext {
            command,
            shell: shell.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn shells_wrap_the_command_as_one_argument() {
        let argv = command_argv(&ctx(Some(Command::Line("echo hi && ls /".into())), Some("bash -c"))).unwrap();
        assert_eq!(argv, ["bash", "-c", "echo hi && ls /"]);
        let argv = command_argv(&ctx(
            Some(Command::Argv(vec!["echo".into(), "a b".into()])),
            Some("sh -c"),
        ))
        .unwrap();
        assert_eq!(argv, ["sh", "-c", "echo 'a b'"]);
    }

    #[test]
    fn no_shell_runs_argv_directly() {
        let argv = command_argv(&ctx(
            Some(Command::Argv(vec!["tar".into(), "--version".into()])),
            Some("none"),
        ))
        .unwrap();
        assert_eq!(argv, ["tar", "--version"]);
        let argv = command_argv(&ctx(Some(Command::Line("ls -lah 'my dir'".into())), None)).unwrap();
        assert_eq!(argv, ["ls", "-lah", "my dir"]);
    }

    #[test]
    fn no_command_is_an_interactive_shell() {
        let argv = command_argv(&ctx(None, None)).unwrap();
        assert_eq!(argv[0], "/bin/sh");
        assert!(argv[2].contains("bash -l"));
    }

    #[test]
    fn bad_commands_are_refused() {
        assert!(command_argv(&ctx(Some(Command::Argv(vec![])), Some("none"))).is_err());
        assert!(command_argv(&ctx(Some(Command::Line("echo 'oops".into())), None)).is_err());
        assert!(command_argv(&ctx(Some(Command::Line(String::new())), None)).is_err());
        assert!(command_argv(&ctx(Some(Command::Argv(vec!["a\0b".into()])), None)).is_err());
    }

    #[test]
    fn identities_resolve_names_and_ranges() {
        assert_eq!(identity(None, None).unwrap(), (0, 0, "/root".into(), "root".into()));
        assert_eq!(identity(Some(&IdOrName::Name("sandbox".into())), None).unwrap().0, 1000);
        assert_eq!(
            identity(Some(&IdOrName::Id(1000)), Some(&IdOrName::Name("users".into())))
                .unwrap()
                .1,
            100
        );
        assert!(identity(Some(&IdOrName::Name("mallory".into())), None).is_err());
        assert!(identity(Some(&IdOrName::Id(70000)), None).is_err());
        assert_eq!(identity(Some(&IdOrName::Name("0".into())), None).unwrap().0, 0);
    }

    #[test]
    fn completions_say_success_only_for_zero() {
        assert_eq!(completion(ExitStatus::Code(0), false).status, CompletionStatus::Success);
        let c = completion(ExitStatus::Code(3), false);
        assert_eq!((c.exit_code, c.status), (3, CompletionStatus::Failure));
        let c = completion(ExitStatus::Signal(9), true);
        assert_eq!(c.exit_code, 137);
        assert!(c.message.unwrap().contains("out of memory"));
        assert_eq!(completion(ExitStatus::Lost, false).status, CompletionStatus::Unknown);
    }

    #[test]
    fn payloads_decode_each_message_on_its_own() {
        assert_eq!(decode_payload("aGk=", true).unwrap(), b"hi");
        assert_eq!(decode_payload("aGk", true).unwrap(), b"hi");
        assert_eq!(decode_payload("plain", false).unwrap(), b"plain");
        assert!(decode_payload("!!", true).is_err());
    }
}
