//! `Sandbox.exec` and `Sandbox.spawn`: running commands over an exec session.

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::{call_transport, promise, transport, Sandbox};
use crate::error::{Error, Result};
use crate::exec::{
    self, argv_for, payload_frames, session_end, stdin_end_frame, ExecEvent, ExecResult, ExecSpec, OutputBuffer,
};
use crate::flow::{self, SandboxRef};
use crate::protocol::text::Utf8Carry;
use crate::transport::{Incoming, Transport};
use crate::wasm::cancel::Cancel;
use crate::wasm::process::SandboxProcess;
use crate::wasm::socket::Socket;
use crate::wasm::transport::Web;
use crate::wasm::types::{boolean, bytes, callback, command, get, number, string, to_js};

/// Stdin of an exec.
enum Stdin {
    Closed,
    Bytes(Vec<u8>),
    Stream(web_sys::ReadableStream),
}

#[wasm_bindgen]
impl Sandbox {
    /// Runs a command to its end. A string goes to `shell` (default `bash -c`), an array runs as
    /// is. Output streams to `onStdout`/`onStderr` as it arrives and is kept up to
    /// `outputLimitBytes` per stream (head and tail). A dropped connection rejects with
    /// `STREAM_LOST`, never as an exit code.
    #[wasm_bindgen(unchecked_return_type = "Promise<ExecResult>")]
    pub fn exec(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] cmd: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ExecOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let shell = string(&options, "shell");
            let argv = argv_for(Some(command(&cmd)?), shell.as_deref())?;
            let stdin = match get(&options, "stdin") {
                None => Stdin::Closed,
                Some(v) => match v.dyn_into::<web_sys::ReadableStream>() {
                    Ok(stream) => Stdin::Stream(stream),
                    Err(v) => Stdin::Bytes(bytes(&v)?),
                },
            };
            let limit = number(&options, "outputLimitBytes").map_or(exec::DEFAULT_OUTPUT_LIMIT, |n| n as usize);
            // No timeout unless asked for: commands may run long; a signal aborts them.
            let t = transport("exec", &options, None)?;
            let run = Run {
                argv,
                stdin,
                limit,
                on_stdout: callback(&options, "onStdout"),
                on_stderr: callback(&options, "onStderr"),
            };
            run_exec(&t, &inner, run).await
        })
    }

    /// Starts a process and returns its handle at once, with byte streams for its output.
    /// With `tty`, it gets a terminal of `cols` × `rows` (stderr then arrives on stdout).
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxProcess>")]
    pub fn spawn(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[] | undefined")] cmd: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SpawnOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cmd = if cmd.is_undefined() || cmd.is_null() {
                None
            } else {
                Some(command(&cmd)?)
            };
            let argv = argv_for(cmd, string(&options, "shell").as_deref())?;
            let tty = boolean(&options, "tty").unwrap_or(false).then(|| {
                let n = |k: &str, d: u16| number(&options, k).map_or(d, |n| n.clamp(1, 1000) as u16);
                (n("cols", 80), n("rows", 24))
            });
            let t = call_transport("spawn", &options)?;
            let base64 = string(&options, "encoding").as_deref() != Some("utf8");
            let spec = ExecSpec {
                argv,
                base64,
                tty,
                instance: None,
            };
            Ok(SandboxProcess::start(&t, &inner, spec).await?.into())
        })
    }
}

/// Waits while the socket has more than 1 MiB queued, so a big upload does not pile up in memory.
async fn wait_for_room(session: &Socket, cancel: &Cancel) -> Result<()> {
    cancel.run(session.room()).await
}

struct Run {
    argv: Vec<String>,
    stdin: Stdin,
    limit: usize,
    on_stdout: Option<Function>,
    on_stderr: Option<Function>,
}

/// One stream of an exec: its text decoder, its kept output, its callback.
struct Stream {
    text: Utf8Carry,
    kept: OutputBuffer,
    callback: Option<Function>,
}

impl Stream {
    /// Output of a base64 session: bytes, which may end inside a character.
    fn push(&mut self, bytes: &[u8]) {
        self.kept.push(bytes);
        if let Some(cb) = &self.callback {
            let text = self.text.push(bytes);
            if !text.is_empty() {
                let _ = cb.call1(&JsValue::NULL, &JsValue::from_str(&text));
            }
        }
    }

    /// Output of a text session: each frame is whole UTF-8 text, handed to the callback as it is.
    fn push_text(&mut self, text: &[u8]) {
        self.kept.push(text);
        if let Some(cb) = &self.callback {
            let _ = cb.call1(&JsValue::NULL, &JsValue::from_str(&String::from_utf8_lossy(text)));
        }
    }

    fn finish(mut self) -> (String, bool) {
        if let Some(cb) = &self.callback {
            let rest = self.text.finish();
            if !rest.is_empty() {
                let _ = cb.call1(&JsValue::NULL, &JsValue::from_str(&rest));
            }
        }
        let truncated = self.kept.truncated();
        (self.kept.into_text(), truncated)
    }
}

async fn run_exec(t: &Web, inner: &SandboxRef, run: Run) -> Result<JsValue> {
    let cancel = &t.cancel;
    let started = js_sys::Date::now();
    // Binary stdin needs base64 frames to arrive intact; otherwise text frames.
    let base64 = matches!(run.stdin, Stdin::Bytes(ref b) if std::str::from_utf8(b).is_err())
        || matches!(run.stdin, Stdin::Stream(_));
    let spec = ExecSpec {
        argv: run.argv,
        base64,
        tty: None,
        instance: None,
    };
    let session = Rc::new(flow::open_session(t, inner, &spec).await?);
    match run.stdin {
        Stdin::Closed => session.send(&stdin_end_frame())?,
        Stdin::Bytes(data) => {
            for frame in payload_frames(&data, base64) {
                wait_for_room(&session, cancel).await?;
                session.send(&frame)?;
            }
            session.send(&stdin_end_frame())?;
        }
        Stdin::Stream(stream) => {
            let session = session.clone();
            wasm_bindgen_futures::spawn_local(async move {
                // A failed input stream would leave the command waiting for input forever:
                // end the session instead, which the exec reports.
                if pump_stream(stream, &session).await.is_err() {
                    session.close();
                }
            });
        }
    }
    let mut out = Stream {
        text: Utf8Carry::default(),
        kept: OutputBuffer::new(run.limit),
        callback: run.on_stdout,
    };
    let mut err = Stream {
        text: Utf8Carry::default(),
        kept: OutputBuffer::new(run.limit),
        callback: run.on_stderr,
    };
    // A cancellation closes the socket (the transport sees to it); the loop then ends on the close.
    let completion = loop {
        match session.next().await {
            Incoming::Frame(frame) => match exec::decode_frame(&frame, base64)? {
                ExecEvent::Started { .. } => {}
                ExecEvent::Stdout(b) if base64 => out.push(&b),
                ExecEvent::Stderr(b) if base64 => err.push(&b),
                ExecEvent::Stdout(text) => out.push_text(&text),
                ExecEvent::Stderr(text) => err.push_text(&text),
                ExecEvent::Completed(c) => {
                    session.close();
                    break c;
                }
            },
            Incoming::Closed { code, reason } => {
                if let Some(e) = t.cancelled() {
                    return Err(e);
                }
                break session_end(None, code, &reason)?;
            }
        }
    };
    let (stdout, out_truncated) = out.finish();
    let (stderr, err_truncated) = err.finish();
    Ok(to_js(&ExecResult {
        exit_code: completion.exit_code,
        status: completion.status,
        stdout,
        stderr,
        truncated: out_truncated || err_truncated,
        duration_ms: (js_sys::Date::now() - started).round(),
    }))
}

/// Sends a `ReadableStream` as stdin, chunk by chunk, then the end of input.
async fn pump_stream(stream: web_sys::ReadableStream, session: &Socket) -> Result<()> {
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    loop {
        let chunk = wasm_bindgen_futures::JsFuture::from(reader.read())
            .await
            .map_err(|e| Error::Invalid(crate::wasm::errors::describe(&e)))?;
        if get(&chunk, "done").and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let data = bytes(&get(&chunk, "value").unwrap_or(JsValue::from_str("")))?;
        for frame in payload_frames(&data, true) {
            session.room().await?;
            session.send(&frame)?;
        }
    }
    session.send(&stdin_end_frame())
}
