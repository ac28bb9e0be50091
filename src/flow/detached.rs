//! Detached processes over the exec channel alone (`flankbox_protocol::detached`): list, signal,
//! and a follower that starts a process and follows it live (or attaches to one), hands output
//! on, and after a dropped connection attaches again with backoff from the last byte it
//! delivered, within a window.

use std::pin::pin;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::Serialize;

use super::exec::{run, Output, Stdin};
use super::files::{open_session, send};
use super::SandboxRef;
use crate::error::{Error, Result};
use crate::exec::{decode_frame, payload_frames, stdin_end_frame, ExecEvent, ExecSpec};
use crate::protocol::detached::{
    close_stdin_command, list_command, parse_list, signal_command, Delivery, DetachedError, FollowError, Follower,
    RunHeader, Stream, RUN_CODE_UNKNOWN,
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

/// A piece of a follower's input, and who hears once it went out on a connection with room for
/// it (a writer that waits for that is held back while the connection is slow or gone).
pub struct Written {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Told once the bytes are sent.
    pub sent: Option<oneshot::Sender<()>>,
}

impl From<Vec<u8>> for Written {
    fn from(bytes: Vec<u8>) -> Self {
        Self { bytes, sent: None }
    }
}

/// The input of a follower: chunks to send as they come; the stream's end closes the process's
/// stdin.
struct Input<S> {
    chunks: Option<S>,
    /// A chunk taken from `chunks` that no session has taken yet.
    pending: Option<Written>,
    /// `chunks` ended: the next session sends the end (or, after a drop, a close command).
    ended: bool,
    end_sent: bool,
}

/// How a follower begins.
pub enum Start<'a> {
    /// By attaching to a process that exists.
    Attach,
    /// By starting one with this `run` command (`flankbox_protocol::detached::run_command`) and
    /// following it live; `started` hears once whether it started (a failure also ends
    /// `follow` with that error).
    Run {
        /// The exec command.
        argv: Vec<String>,
        /// Told once: `Ok` when the process is starting, or why it could not.
        started: &'a mut dyn FnMut(Result<()>),
    },
}

/// How one attach ended.
enum Attach {
    /// The process ended, with its code (`None` if its supervisor vanished).
    Exited(Option<i32>),
    /// The connection dropped (or never came): why.
    Dropped(String),
    /// A run ended without the code; an attach asks for it (not a drop: no backoff).
    AskExit,
}

/// A run's session: its output is the process's own, after the header. Whether the process
/// started is whether the header came whole.
struct Live<'a> {
    header: RunHeader,
    /// What the run said on stderr before its header: why it could not start.
    said: Vec<u8>,
    /// Told `Ok` as the header completes; told the error by `follow` if it never does.
    started: &'a mut dyn FnMut(Result<()>),
}

/// Follows a process through its `follower` until it ends, handing each delivery to
/// `deliver`, after starting it as `start` says; with `stdin`, its chunks go to the process and
/// its end closes the process's stdin. A dropped connection is resumed from the last byte delivered, with backoff, for up to
/// `resume_within_ms` after the drop; past that, or when the output to resume from is no longer
/// kept, it fails with `STREAM_LOST` saying which.
pub async fn follow<T, S>(
    t: &T,
    sandbox: &SandboxRef,
    follower: &mut Follower,
    resume_within_ms: u64,
    start: Start<'_>,
    stdin: Option<S>,
    deliver: &mut dyn FnMut(Delivery),
) -> Result<Option<i32>>
where
    T: Transport,
    S: futures_core::Stream + Unpin,
    S::Item: Into<Written>,
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
    let mut run = match start {
        Start::Run { argv, started } => Some((argv, started)),
        Start::Attach => None,
    };
    loop {
        let mut started_at = None;
        let resuming = dropped_at.is_some();
        let outcome = match run.take() {
            Some((argv, started)) => {
                let mut live = Live {
                    header: RunHeader::default(),
                    said: Vec::new(),
                    started,
                };
                let outcome = run_once(
                    t,
                    sandbox,
                    argv,
                    follower,
                    &mut input,
                    deliver,
                    &mut live,
                    &mut started_at,
                )
                .await;
                // It never said it started: the start failed, and `follow` with it.
                if !live.header.complete() {
                    let e = match outcome {
                        Err(e) => e,
                        Ok(Attach::Dropped(why)) => {
                            Error::StreamLost(format!("the connection dropped while starting: {why}"))
                        }
                        Ok(_) => Error::Protocol("a run ended before it started".into()),
                    };
                    (live.started)(Err(e.clone()));
                    return Err(e);
                }
                outcome?
            }
            None => {
                attach_once(
                    t,
                    sandbox,
                    follower,
                    with_stdin,
                    &mut input,
                    deliver,
                    resuming,
                    &mut started_at,
                )
                .await?
            }
        };
        match outcome {
            Attach::Exited(code) => return Ok(code),
            Attach::AskExit => {}
            Attach::Dropped(why) => {
                if let Some(e) = t.cancelled() {
                    return Err(e);
                }
                follower.dropped();
                let now = t.monotonic_ms();
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

/// The run: starts the process and follows it live until it ends or the connection drops.
#[allow(clippy::too_many_arguments)]
async fn run_once<T, S>(
    t: &T,
    sandbox: &SandboxRef,
    argv: Vec<String>,
    follower: &mut Follower,
    input: &mut Input<S>,
    deliver: &mut dyn FnMut(Delivery),
    live: &mut Live<'_>,
    started_at: &mut Option<f64>,
) -> Result<Attach>
where
    T: Transport,
    S: futures_core::Stream + Unpin,
    S::Item: Into<Written>,
{
    let spec = ExecSpec::bytes(argv);
    let mut session = open_session(t, sandbox, &spec).await?;
    let outcome = read_attach(t, &mut session, follower, input, deliver, started_at, Some(live)).await;
    session.end();
    outcome
}

/// One attach: until the process ends or the connection drops.
#[allow(clippy::too_many_arguments)]
async fn attach_once<T, S>(
    t: &T,
    sandbox: &SandboxRef,
    follower: &mut Follower,
    with_stdin: bool,
    input: &mut Input<S>,
    deliver: &mut dyn FnMut(Delivery),
    resuming: bool,
    started_at: &mut Option<f64>,
) -> Result<Attach>
where
    T: Transport,
    S: futures_core::Stream + Unpin,
    S::Item: Into<Written>,
{
    // Stdin ended while its end may not have reached the process: close it by command, since
    // this attach carries no stdin.
    if input.ended && !input.end_sent && resuming {
        match script(t, sandbox, close_stdin_command(follower.id())?).await {
            Ok(_) => input.end_sent = true,
            Err(e @ (Error::Network(_) | Error::StreamLost(_))) => return Ok(Attach::Dropped(e.to_string())),
            Err(e) => return Err(e),
        }
    }
    let spec = ExecSpec::bytes(follower.attach_command(with_stdin && !input.ended));
    let mut session = match open_session(t, sandbox, &spec).await {
        Ok(session) => session,
        Err(e @ Error::Network(_)) => return Ok(Attach::Dropped(e.to_string())),
        Err(e) => return Err(e),
    };
    let outcome = read_attach(t, &mut session, follower, input, deliver, started_at, None).await;
    session.end();
    outcome
}

/// Reads a session (an attach's frames, or with `live` a run's own output) until the process
/// ends or the connection drops, sending input as it comes.
async fn read_attach<T, Sess, S>(
    t: &T,
    session: &mut Sess,
    follower: &mut Follower,
    input: &mut Input<S>,
    deliver: &mut dyn FnMut(Delivery),
    started_at: &mut Option<f64>,
    mut live: Option<&mut Live<'_>>,
) -> Result<Attach>
where
    T: Transport,
    Sess: Session,
    S: futures_core::Stream + Unpin,
    S::Item: Into<Written>,
{
    loop {
        // Input first when some waits; otherwise whichever comes: a frame or a chunk to send.
        if let Some(mut chunk) = input.pending.take() {
            for frame in payload_frames(&chunk.bytes, true) {
                if let Err(e) = send(t, session, frame).await {
                    input.pending = Some(chunk);
                    return dropped(t, e);
                }
            }
            if let Some(sent) = chunk.sent.take() {
                let _ = sent.send(());
            }
            continue;
        }
        let incoming = match input.chunks.as_mut().filter(|_| !input.ended) {
            // Input before output, so that a flood of output never holds a write back.
            Some(chunks) => match select(pin!(chunks.next()), pin!(session.next())).await {
                Either::Right((incoming, _)) => incoming,
                Either::Left((Some(chunk), _)) => {
                    input.pending = Some(chunk.into());
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
        let event = decode_frame(&frame, true)?;
        if let ExecEvent::Started { .. } = event {
            *started_at = Some(t.monotonic_ms());
            continue;
        }
        let deliveries = match live.as_deref_mut() {
            Some(live) => match read_live(live, follower, event)? {
                LiveStep::Deliver(deliveries) => deliveries,
                LiveStep::Ended(end) => return Ok(end),
            },
            None => match event {
                ExecEvent::Stdout(bytes) => follower.push(&bytes)?,
                // The supervisor's own complaints; its frames say what matters.
                ExecEvent::Stderr(_) | ExecEvent::Started { .. } => continue,
                ExecEvent::Completed(c) => {
                    return Ok(Attach::Dropped(format!(
                        "the attach ended with code {} before the process did",
                        c.exit_code
                    )))
                }
            },
        };
        for delivery in deliveries {
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
}

/// What a run's event comes to.
enum LiveStep {
    Deliver(Vec<Delivery>),
    Ended(Attach),
}

/// Most of what a run may say on stderr before its header that is kept for the error.
const SAID_LIMIT: usize = 4096;

fn read_live(live: &mut Live<'_>, follower: &mut Follower, event: ExecEvent) -> Result<LiveStep> {
    let started = live.header.complete();
    Ok(LiveStep::Deliver(match event {
        ExecEvent::Stdout(bytes) => {
            let own = live.header.strip(&bytes)?;
            if !started && live.header.complete() {
                (live.started)(Ok(()));
            }
            follower.push_live(Stream::Stdout, own)
        }
        ExecEvent::Stderr(bytes) if started => follower.push_live(Stream::Stderr, &bytes),
        ExecEvent::Stderr(bytes) => {
            let room = SAID_LIMIT.saturating_sub(live.said.len());
            live.said.extend_from_slice(&bytes[..room.min(bytes.len())]);
            Vec::new()
        }
        ExecEvent::Completed(c) if !started => {
            return Err(failed(c.exit_code, &String::from_utf8_lossy(&live.said)));
        }
        ExecEvent::Completed(c) if c.exit_code == RUN_CODE_UNKNOWN => return Ok(LiveStep::Ended(Attach::AskExit)),
        ExecEvent::Completed(c) => follower.live_exit(c.exit_code),
        ExecEvent::Started { .. } => Vec::new(),
    }))
}

/// A drop, unless the call itself was cancelled.
fn dropped<T: Transport>(t: &T, e: Error) -> Result<Attach> {
    match t.cancelled() {
        Some(cancelled) => Err(cancelled),
        None => Ok(Attach::Dropped(e.to_string())),
    }
}
