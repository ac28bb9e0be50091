//! `exec`: a command run to its end over an exec session, its input sent while its output is
//! read, the output kept within a limit and handed to callbacks as text.

use std::pin::pin;

use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};

use super::files::{lost, open_session};
use super::SandboxRef;
use crate::error::Result;
use crate::exec::{
    decode_frame, decode_text_frame, payload_frames, session_end, stdin_end_frame, ExecEvent, ExecResult, ExecSpec,
    TextFrame,
};
use crate::output::OutputBuffer;
use crate::protocol::text::Utf8Carry;
use crate::transport::{Incoming, Transport};

/// Input of an exec.
pub enum Stdin<S> {
    /// None: stdin is closed at once.
    Closed,
    /// These bytes, then the end of input.
    Bytes(Vec<u8>),
    /// Chunks as they come, then the end of input; a failed stream ends the session.
    Stream(S),
}

/// One output stream of an exec: what is kept, and the callback that gets it as text.
pub struct Output<'a> {
    kept: OutputBuffer,
    text: Utf8Carry,
    callback: Option<&'a mut dyn FnMut(&str)>,
}

impl<'a> Output<'a> {
    /// Keeps up to `limit` bytes (head and tail) and hands text to `callback`.
    pub fn new(limit: usize, callback: Option<&'a mut dyn FnMut(&str)>) -> Self {
        Self {
            kept: OutputBuffer::new(limit),
            text: Utf8Carry::default(),
            callback,
        }
    }

    /// Output of a base64 session: bytes, which may end inside a character.
    fn push(&mut self, bytes: &[u8]) {
        self.kept.push(bytes);
        if let Some(cb) = &mut self.callback {
            let text = self.text.push(bytes);
            if !text.is_empty() {
                cb(&text);
            }
        }
    }

    /// Output of a text session: each frame is whole text.
    fn push_text(&mut self, text: &str) {
        self.kept.push(text.as_bytes());
        self.hand_on(text);
    }

    fn hand_on(&mut self, text: &str) {
        if let Some(cb) = &mut self.callback {
            cb(text);
        }
    }

    fn finish(mut self) -> (String, bool) {
        if let Some(cb) = &mut self.callback {
            let rest = self.text.finish();
            if !rest.is_empty() {
                cb(&rest);
            }
        }
        let truncated = self.kept.truncated();
        (self.kept.into_text(), truncated)
    }
}

/// Bytes known to be text, as text. `from_utf8` first: `from_utf8_lossy` checks a byte at a time
/// and was the largest cost of a big stdout stream (12 % of the time, against 1 %).
pub fn as_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Runs `argv` to its end. Binary input (bytes that are not UTF-8, or a stream) asks for a base64
/// session; otherwise frames are text. A session that closes before the completion is a lost
/// stream, never an exit.
pub async fn run<'a, T, S>(
    t: &T,
    sandbox: &SandboxRef,
    argv: Vec<String>,
    stdin: Stdin<S>,
    mut stdout: Output<'a>,
    mut stderr: Output<'a>,
) -> Result<ExecResult>
where
    T: Transport,
    S: Stream<Item = Result<Vec<u8>>> + Unpin,
{
    let started = t.monotonic_ms();
    let base64 = match &stdin {
        Stdin::Closed => false,
        Stdin::Bytes(b) => std::str::from_utf8(b).is_err(),
        Stdin::Stream(_) => true,
    };
    let spec = ExecSpec {
        argv,
        base64,
        tty: None,
        instance: None,
    };
    let (mut sink, mut incoming) = open_session(t, sandbox, &spec).await?.split();
    let pump = async {
        let sent: Result<()> = async {
            match stdin {
                Stdin::Closed => {}
                Stdin::Bytes(data) => {
                    for frame in payload_frames(&data, base64) {
                        sink.send(frame).await?;
                    }
                }
                Stdin::Stream(mut chunks) => {
                    while let Some(chunk) = chunks.next().await {
                        for frame in payload_frames(&chunk?, true) {
                            sink.send(frame).await?;
                        }
                    }
                }
            }
            sink.send(stdin_end_frame()).await
        }
        .await;
        if sent.is_err() {
            // A command waiting for input that never comes would wait forever: end the session,
            // which the exec reports.
            let _ = sink.close().await;
        }
    };
    let read = async {
        loop {
            let frame = match incoming.next().await {
                Some(Incoming::Frame(frame)) => frame,
                Some(Incoming::Closed { code, reason }) => {
                    return Err(t
                        .cancelled()
                        .unwrap_or_else(|| session_end(None, code, &reason).unwrap_err()))
                }
                None => return Err(lost(t, None)),
            };
            let event = if base64 {
                decode_frame(&frame, true)?
            } else {
                match decode_text_frame(&frame)? {
                    // Handed on, then kept without a copy: the frame itself, or the new text.
                    TextFrame::Literal {
                        stderr: to_stderr,
                        text,
                        at,
                    } => {
                        let output = if to_stderr { &mut stderr } else { &mut stdout };
                        output.hand_on(text);
                        output.kept.push_frame(frame, at);
                        continue;
                    }
                    TextFrame::Unescaped {
                        stderr: to_stderr,
                        text,
                    } => {
                        let output = if to_stderr { &mut stderr } else { &mut stdout };
                        output.hand_on(&text);
                        let len = text.len();
                        output.kept.push_frame(text.into_bytes(), 0..len);
                        continue;
                    }
                    TextFrame::Other(event) => event,
                }
            };
            match event {
                ExecEvent::Started { .. } => {}
                ExecEvent::Stdout(b) if base64 => stdout.push(&b),
                ExecEvent::Stderr(b) if base64 => stderr.push(&b),
                ExecEvent::Stdout(t) => stdout.push_text(&as_text(&t)),
                ExecEvent::Stderr(t) => stderr.push_text(&as_text(&t)),
                ExecEvent::Completed(c) => return Ok(c),
            }
        }
    };
    // The input goes while the output comes; the exec ends with the output, whatever is left
    // of the input.
    let completion = match select(pin!(pump), pin!(read)).await {
        Either::Left(((), read)) => read.await,
        Either::Right((completion, _)) => completion,
    }?;
    let (stdout, out_truncated) = stdout.finish();
    let (stderr, err_truncated) = stderr.finish();
    Ok(ExecResult {
        exit_code: completion.exit_code,
        status: completion.status,
        stdout,
        stderr,
        truncated: out_truncated || err_truncated,
        duration_ms: (t.monotonic_ms() - started).round(),
    })
}
