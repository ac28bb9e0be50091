//! Detached processes over the exec channel alone (`flankbox_protocol::detached`): spawn, list,
//! signal, and a follower that attaches, hands output on, and after a dropped connection
//! attaches again with backoff from the last byte it delivered, within a window.

use std::pin::pin;

use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::Serialize;

use super::exec::{run, Output, Stdin};
use super::files::{open_session, send};
use super::SandboxRef;
use crate::error::{Error, Result};
use crate::exec::{decode_frame, payload_frames, stdin_end_frame, ExecEvent, ExecSpec};
use crate::protocol::detached::{
    close_stdin_command, list_command, parse_list, signal_command, spawn_command, Delivery, DetachedError, FollowError,
    Follower,
};
use crate::transport::{Incoming, Session, Transport};

/// How long a follower keeps trying to reconnect after a drop, unless told: 60 s.
pub const DEFAULT_RESUME_WITHIN_MS: u64 = 60_000;
/// Wait before the second reconnect, ms (the first is at once); it doubles up to
/// [`MAX_BACKOFF_MS`], each with jitter.
const FIRST_BACKOFF_MS: f64 = 100.0;
const MAX_BACKOFF_MS: f64 = 2_000.0;
/// A connection that held this long, ms, ends a run of drops: the next drop starts a fresh
/// window and backoff. One that drops sooner (a server that accepts and cuts) does not.
const STABLE_MS: f64 = 1_000.0;
/// Output a supervisor command may print (ids, listings, messages).
const SCRIPT_OUTPUT_LIMIT: usize = 1 << 20;

/// One detached process, as `sandbox.processes()` resolves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// Its id.
    pub id: String,
    /// The command as its spawner gave it.
    pub command: serde_json::Value,
    /// Start, ms since the epoch.
    pub started_at: f64,
    /// Still running.
    pub running: bool,
    /// Its exit code once it ended (absent while it runs, or if the sandbox restarted under it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl From<DetachedError> for Error {
    fn from(e: DetachedError) -> Self {
        match e {
            DetachedError::BadId(_) | DetachedError::Tty => Error::Invalid(e.to_string()),
            DetachedError::Malformed(_) => Error::Protocol(e.to_string()),
        }
    }
}

impl From<FollowError> for Error {
    fn from(e: FollowError) -> Self {
        match e {
            FollowError::NoSuchProcess(_) => not_found(e.to_string()),
            FollowError::OffsetGone { .. } | FollowError::OutputLost { .. } => {
                Error::StreamLost(format!("output no longer kept: {e}"))
            }
            FollowError::Detached(e) => e.into(),
        }
    }
}

fn not_found(message: String) -> Error {
    Error::Api {
        status: 404,
        message,
        id: None,
        details: None,
    }
}

/// A fresh process id: `p-` and 16 characters of `[a-z0-9]`.
pub fn new_id<T: Transport>(t: &T) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let chars = (0..16).map(|_| ALPHABET[(t.random() * ALPHABET.len() as f64) as usize % ALPHABET.len()] as char);
    format!("p-{}", chars.collect::<String>())
}

/// Runs a supervisor command to its end: its exit code, stdout and stderr.
async fn script<T: Transport>(t: &T, sandbox: &SandboxRef, argv: Vec<String>) -> Result<(i32, String, String)> {
    let out = Output::new(SCRIPT_OUTPUT_LIMIT, None);
    let err = Output::new(SCRIPT_OUTPUT_LIMIT, None);
    let result = run(
        t,
        sandbox,
        argv,
        Stdin::<futures_util::stream::Empty<_>>::Closed,
        out,
        err,
    )
    .await?;
    Ok((result.exit_code, result.stdout, result.stderr))
}

/// The failure of a supervisor command, from what it said.
fn failed(code: i32, stderr: &str) -> Error {
    let said = stderr.trim();
    Error::Exec(if said.is_empty() {
        format!("the detached-process supervisor exited with code {code}")
    } else {
        said.to_string()
    })
}

/// Starts `argv` detached as `id`, keeping the last `keep_bytes` of each stream; resolves once
/// it runs. `described` is the command as the caller gave it (JSON), for listings.
pub async fn spawn<T: Transport>(
    t: &T,
    sandbox: &SandboxRef,
    id: &str,
    keep_bytes: u64,
    described: &str,
    argv: &[String],
) -> Result<()> {
    let (code, stdout, stderr) = script(t, sandbox, spawn_command(id, keep_bytes, described, argv)?).await?;
    if code == 0 && stdout.trim() == id {
        Ok(())
    } else {
        Err(failed(code, &stderr))
    }
}

/// Every detached process of the sandbox, whoever started it.
pub async fn list<T: Transport>(t: &T, sandbox: &SandboxRef) -> Result<Vec<ProcessInfo>> {
    let (code, stdout, stderr) = script(t, sandbox, list_command()).await?;
    if code != 0 {
        return Err(failed(code, &stderr));
    }
    Ok(parse_list(&stdout)
        .into_iter()
        .map(|p| ProcessInfo {
            id: p.id,
            command: p.command,
            started_at: p.started_at as f64 * 1000.0,
            running: p.running,
            exit_code: p.exit_code,
        })
        .collect())
}

/// Sends `signal` (`TERM`, `KILL`, …) to process `id`'s group.
pub async fn signal<T: Transport>(t: &T, sandbox: &SandboxRef, id: &str, signal: &str) -> Result<()> {
    let (code, _, stderr) = script(t, sandbox, signal_command(id, signal)?).await?;
    match code {
        0 => Ok(()),
        3 => Err(not_found(format!("no detached process {id:?}"))),
        _ => Err(failed(code, &stderr)),
    }
}

/// The input of a follower: chunks to send as they come; the stream's end closes the process's
/// stdin.
struct Input<S> {
    chunks: Option<S>,
    /// A chunk taken from `chunks` that no session has taken yet.
    pending: Option<Vec<u8>>,
    /// `chunks` ended: the next session sends the end (or, after a drop, a close command).
    ended: bool,
    end_sent: bool,
}

/// How one attach ended.
enum Attach {
    /// The process ended, with its code (`None` if its supervisor vanished).
    Exited(Option<i32>),
    /// The connection dropped (or never came): why.
    Dropped(String),
}

/// Follows process `id` (through its `follower`) until it ends, handing each delivery to
/// `deliver`; with `stdin`, its chunks go to the process and its end closes the process's
/// stdin. A dropped connection is resumed from the last byte delivered, with backoff, for up to
/// `resume_within_ms` after the drop; past that, or when the output to resume from is no longer
/// kept, it fails with `STREAM_LOST` saying which.
pub async fn follow<T, S>(
    t: &T,
    sandbox: &SandboxRef,
    id: &str,
    follower: &mut Follower,
    resume_within_ms: u64,
    stdin: Option<S>,
    deliver: &mut dyn FnMut(Delivery),
) -> Result<Option<i32>>
where
    T: Transport,
    S: Stream<Item = Vec<u8>> + Unpin,
{
    let mut input = Input {
        ended: stdin.is_none(),
        end_sent: stdin.is_none(),
        chunks: stdin,
        pending: None,
    };
    let with_stdin = !input.ended;
    let mut dropped_at: Option<f64> = None;
    let mut tries = 0;
    loop {
        let mut started_at = None;
        let resuming = dropped_at.is_some();
        match attach_once(
            t,
            sandbox,
            id,
            follower,
            with_stdin,
            &mut input,
            deliver,
            resuming,
            &mut started_at,
        )
        .await?
        {
            Attach::Exited(code) => return Ok(code),
            Attach::Dropped(why) => {
                if let Some(e) = t.cancelled() {
                    return Err(e);
                }
                follower.dropped();
                let now = t.now_ms();
                if started_at.is_some_and(|at| now - at >= STABLE_MS) {
                    dropped_at = None;
                }
                if dropped_at.is_none() {
                    dropped_at = Some(now);
                    tries = 0;
                }
                let left = resume_within_ms as f64 - (now - dropped_at.unwrap_or(now));
                if left <= 0.0 {
                    return Err(Error::StreamLost(format!(
                        "could not reconnect within the resume window of {resume_within_ms} ms ({why})"
                    )));
                }
                // The first try at once (a drop is often one cut), then with growing waits.
                let backoff = match tries {
                    0 => 0.0,
                    n => (FIRST_BACKOFF_MS * 2f64.powi(n - 1)).min(MAX_BACKOFF_MS) * (0.5 + t.random()),
                };
                tries += 1;
                t.sleep(backoff.min(left).ceil() as u64).await?;
            }
        }
    }
}

/// One attach: until the process ends or the connection drops.
#[allow(clippy::too_many_arguments)]
async fn attach_once<T, S>(
    t: &T,
    sandbox: &SandboxRef,
    id: &str,
    follower: &mut Follower,
    with_stdin: bool,
    input: &mut Input<S>,
    deliver: &mut dyn FnMut(Delivery),
    resuming: bool,
    started_at: &mut Option<f64>,
) -> Result<Attach>
where
    T: Transport,
    S: Stream<Item = Vec<u8>> + Unpin,
{
    // Stdin ended while its end may not have reached the process: close it by command, since
    // this attach carries no stdin.
    if input.ended && !input.end_sent && resuming {
        match script(t, sandbox, close_stdin_command(id)?).await {
            Ok(_) => input.end_sent = true,
            Err(e @ (Error::Network(_) | Error::StreamLost(_))) => return Ok(Attach::Dropped(e.to_string())),
            Err(e) => return Err(e),
        }
    }
    let spec = ExecSpec {
        argv: follower.attach_command(with_stdin && !input.ended),
        base64: true,
        tty: None,
        instance: None,
    };
    let mut session = match open_session(t, sandbox, &spec).await {
        Ok(session) => session,
        Err(e @ Error::Network(_)) => return Ok(Attach::Dropped(e.to_string())),
        Err(e) => return Err(e),
    };
    let outcome = read_attach(t, &mut session, follower, input, deliver, started_at).await;
    session.end();
    outcome
}

async fn read_attach<T, Sess, S>(
    t: &T,
    session: &mut Sess,
    follower: &mut Follower,
    input: &mut Input<S>,
    deliver: &mut dyn FnMut(Delivery),
    started_at: &mut Option<f64>,
) -> Result<Attach>
where
    T: Transport,
    Sess: Session,
    S: Stream<Item = Vec<u8>> + Unpin,
{
    loop {
        // Input first when some waits; otherwise whichever comes: a frame or a chunk to send.
        if let Some(chunk) = input.pending.take() {
            for frame in payload_frames(&chunk, true) {
                if let Err(e) = send(t, session, frame).await {
                    input.pending = Some(chunk);
                    return dropped(t, e);
                }
            }
            continue;
        }
        let incoming = match input.chunks.as_mut().filter(|_| !input.ended) {
            // Input before output, so that a flood of output never holds a write back.
            Some(chunks) => match select(pin!(chunks.next()), pin!(session.next())).await {
                Either::Right((incoming, _)) => incoming,
                Either::Left((Some(chunk), _)) => {
                    input.pending = Some(chunk);
                    continue;
                }
                Either::Left((None, _)) => {
                    input.ended = true;
                    if let Err(e) = send(t, session, stdin_end_frame()).await {
                        return dropped(t, e);
                    }
                    input.end_sent = true;
                    continue;
                }
            },
            None => session.next().await,
        };
        let frame = match incoming {
            Some(Incoming::Frame(frame)) => frame,
            Some(Incoming::Closed { code, reason }) => {
                return dropped(
                    t,
                    Error::StreamLost(format!("connection closed with code {code} {reason}")),
                )
            }
            None => return dropped(t, Error::StreamLost("connection closed".into())),
        };
        match decode_frame(&frame, true)? {
            ExecEvent::Started { .. } => *started_at = Some(t.now_ms()),
            ExecEvent::Stdout(bytes) => {
                for delivery in follower.push(&bytes)? {
                    let exit = match delivery {
                        Delivery::Exit(code) => Some(code),
                        _ => None,
                    };
                    deliver(delivery);
                    if let Some(code) = exit {
                        return Ok(Attach::Exited(code));
                    }
                }
            }
            // The supervisor's own complaints; its frames say what matters.
            ExecEvent::Stderr(_) => {}
            ExecEvent::Completed(c) => {
                return Ok(Attach::Dropped(format!(
                    "the attach ended with code {} before the process did",
                    c.exit_code
                )))
            }
        }
    }
}

/// A drop, unless the call itself was cancelled.
fn dropped<T: Transport>(t: &T, e: Error) -> Result<Attach> {
    match t.cancelled() {
        Some(cancelled) => Err(cancelled),
        None => Ok(Attach::Dropped(e.to_string())),
    }
}
