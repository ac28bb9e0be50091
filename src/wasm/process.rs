//! Exec sessions, and `SandboxProcess`: a running command with byte streams.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{ReadableStream, ReadableStreamDefaultController};

use super::detached::Detached;
use super::socket::Socket;
use super::transport::Web;
use super::types::bytes;
use crate::error::{Error, Result};
use crate::exec::{
    self, decode_frame, decode_text_frame, payload_frames, resize_frame, session_end, stdin_end_frame, ExecEvent,
    ExecSpec, TextFrame,
};
use crate::flow::{self, SandboxRef};
use crate::protocol::detached::DetachedError;
use crate::protocol::exec::Completion;
use crate::transport::Incoming;

/// A readable byte stream fed from Rust.
pub(crate) struct Feed {
    stream: ReadableStream,
    controller: ReadableStreamDefaultController,
}

impl Feed {
    pub(crate) fn new() -> Result<Self> {
        let slot: Rc<RefCell<Option<ReadableStreamDefaultController>>> = Rc::default();
        let start = {
            let slot = slot.clone();
            Closure::<dyn FnMut(ReadableStreamDefaultController)>::new(move |c| *slot.borrow_mut() = Some(c))
        };
        let source = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&source, &"start".into(), start.as_ref());
        // `start` runs inside the constructor, so the controller is there right after.
        let stream = ReadableStream::new_with_underlying_source(&source)
            .map_err(|e| Error::Protocol(super::errors::describe(&e)))?;
        let controller = slot
            .borrow_mut()
            .take()
            .ok_or_else(|| Error::Protocol("ReadableStream did not start".into()))?;
        Ok(Self { stream, controller })
    }

    /// Output into the stream: a `Uint8Array` of bytes, or a string in a text session (whose
    /// frames are whole UTF-8 text).
    fn push(&self, output: &[u8], bytes: bool) {
        if bytes {
            self.enqueue(&Uint8Array::from(output).into());
        } else {
            self.push_text(&crate::flow::exec::as_text(output));
        }
    }

    /// Text output into the stream, as a string.
    fn push_text(&self, text: &str) {
        self.enqueue(&JsValue::from_str(text));
    }

    /// A chunk as it is: a `Uint8Array` or a string.
    pub(crate) fn enqueue(&self, chunk: &JsValue) {
        let _ = self.controller.enqueue_with_chunk(chunk);
    }

    /// Ends the stream.
    pub(crate) fn close(&self) {
        let _ = self.controller.close();
    }
}

struct Shared {
    socket: Socket,
    /// Bytes (base64 frames) or text.
    base64: bool,
    stdout: Feed,
    stderr: Feed,
    killed: Cell<bool>,
    done: Cell<bool>,
}

/// A running command: `stdout` and `stderr` are streams of `Uint8Array`; `wait()` resolves to
/// its exit. Closing the handle's connection (`kill()`) ends the command.
#[wasm_bindgen]
pub struct SandboxProcess {
    backend: Backend,
    exit: Promise,
}

/// What a handle drives: its own exec session, or a detached process followed across attaches.
enum Backend {
    Exec(Rc<Shared>),
    Detached(Rc<Detached>),
}

impl SandboxProcess {
    /// Opens the session, waits for the server to accept it, and starts forwarding output.
    pub(crate) async fn start(t: &Web, sandbox: &SandboxRef, spec: ExecSpec) -> Result<Self> {
        let socket = flow::open_session(t, sandbox, &spec).await?;
        // The init reply first: a refused token or a stopped sandbox rejects `spawn` itself.
        match t.cancel.run(async { Ok(socket.next().await) }).await? {
            Incoming::Frame(frame) => match decode_frame(&frame, true)? {
                ExecEvent::Started { .. } => {}
                _ => return Err(Error::Protocol("expected the init reply first".into())),
            },
            Incoming::Closed { code, reason } => return Err(session_end(None, code, &reason).unwrap_err()),
        }
        let shared = Rc::new(Shared {
            socket,
            base64: spec.base64,
            stdout: Feed::new()?,
            stderr: Feed::new()?,
            killed: Cell::new(false),
            done: Cell::new(false),
        });
        let mut settle: Option<(Function, Function)> = None;
        let exit = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let (resolve, reject) = settle.ok_or_else(|| Error::Protocol("Promise did not start".into()))?;
        wasm_bindgen_futures::spawn_local(forward(shared.clone(), resolve, reject));
        Ok(Self {
            backend: Backend::Exec(shared),
            exit,
        })
    }

    /// A handle of a detached process, settled by `exit`.
    pub(crate) fn detached(process: Rc<Detached>, exit: Promise) -> Self {
        Self {
            backend: Backend::Detached(process),
            exit,
        }
    }
}

/// The command ended: closes the session and reads the completion as `wait()` resolves it.
fn completed(shared: &Shared, c: &Completion) -> JsValue {
    shared.socket.close();
    super::types::to_js(c)
}

/// Reads a frame; text output read without JSON ([`decode_text_frame`]) goes straight into its
/// stream (then there is no event).
fn decode(shared: &Shared, frame: &[u8]) -> Result<Option<ExecEvent>> {
    if shared.base64 {
        return decode_frame(frame, true).map(Some);
    }
    let feed = |stderr| if stderr { &shared.stderr } else { &shared.stdout };
    match decode_text_frame(frame)? {
        TextFrame::Literal { stderr, text, .. } => feed(stderr).push_text(text),
        TextFrame::Unescaped { stderr, text } => feed(stderr).push_text(&text),
        TextFrame::Other(event) => return Ok(Some(event)),
    }
    Ok(None)
}

/// Moves output into the streams until the command ends, then settles `wait()`.
async fn forward(shared: Rc<Shared>, resolve: Function, reject: Function) {
    let outcome = loop {
        match shared.socket.next().await {
            Incoming::Frame(frame) => match decode(&shared, &frame) {
                Ok(None) => {}
                Ok(Some(ExecEvent::Stdout(b))) => shared.stdout.push(&b, shared.base64),
                Ok(Some(ExecEvent::Stderr(b))) => shared.stderr.push(&b, shared.base64),
                Ok(Some(ExecEvent::Completed(c))) => break Ok(completed(&shared, &c)),
                Ok(Some(ExecEvent::Started { .. })) => {}
                Err(e) => break Err(e),
            },
            Incoming::Closed { .. } if shared.killed.get() => {
                break Ok(super::types::to_js(&exec::killed()));
            }
            Incoming::Closed { code, reason } => break Err(session_end(None, code, &reason).unwrap_err()),
        }
    };
    shared.done.set(true);
    let _ = shared.stdout.controller.close();
    let _ = shared.stderr.controller.close();
    let _ = match outcome {
        Ok(v) => resolve.call1(&JsValue::NULL, &v),
        Err(e) => reject.call1(&JsValue::NULL, &JsValue::from(e)),
    };
}

#[wasm_bindgen]
impl SandboxProcess {
    /// Output (everything, with a terminal): `Uint8Array` chunks, or strings with `encoding: "utf8"`.
    #[wasm_bindgen(getter, unchecked_return_type = "ReadableStream<Uint8Array | string>")]
    pub fn stdout(&self) -> ReadableStream {
        match &self.backend {
            Backend::Exec(shared) => shared.stdout.stream.clone(),
            Backend::Detached(process) => process.stdout.stream.clone(),
        }
    }

    /// Error output, like `stdout` (empty with a terminal).
    #[wasm_bindgen(getter, unchecked_return_type = "ReadableStream<Uint8Array | string>")]
    pub fn stderr(&self) -> ReadableStream {
        match &self.backend {
            Backend::Exec(shared) => shared.stderr.stream.clone(),
            Backend::Detached(process) => process.stderr.stream.clone(),
        }
    }

    /// A detached process's id (`undefined` for a process tied to its connection).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> Option<String> {
        match &self.backend {
            Backend::Exec(_) => None,
            Backend::Detached(process) => Some(process.id.clone()),
        }
    }

    /// Sends input; resolves once it is on its way (waiting while more than 1 MiB is queued).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn write(&self, #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue) -> Promise {
        let shared = match &self.backend {
            Backend::Exec(shared) => shared.clone(),
            Backend::Detached(process) => {
                let sent = bytes(&data).map(|data| process.write(data));
                return super::api::promise(async move {
                    sent?.await?;
                    Ok(JsValue::UNDEFINED)
                });
            }
        };
        super::api::promise(async move {
            let data = bytes(&data)?;
            for frame in payload_frames(&data, shared.base64) {
                shared.socket.room().await?;
                shared.socket.send(&frame)?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Ends the input (a terminal gets ^D).
    #[wasm_bindgen(js_name = closeStdin)]
    pub fn close_stdin(&self) -> Result<(), JsValue> {
        match &self.backend {
            Backend::Exec(shared) => Ok(shared.socket.send(&stdin_end_frame())?),
            Backend::Detached(process) => {
                process.close_stdin();
                Ok(())
            }
        }
    }

    /// Resizes the terminal.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), JsValue> {
        match &self.backend {
            Backend::Exec(shared) => Ok(shared.socket.send(&resize_frame(cols, rows))?),
            Backend::Detached(_) => Err(Error::from(DetachedError::Tty).into()),
        }
    }

    /// Ends the command: its connection closes and the server kills it; a detached process gets
    /// `SIGKILL` (from whichever client holds the handle), and `wait()` then gives its exit.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn kill(&self) -> Promise {
        match &self.backend {
            Backend::Exec(shared) => {
                if !shared.done.get() {
                    shared.killed.set(true);
                    shared.socket.close();
                }
                Promise::resolve(&JsValue::UNDEFINED)
            }
            Backend::Detached(process) => process.kill(),
        }
    }

    /// Resolves to the exit when the command ends; rejects with `STREAM_LOST` if the connection
    /// drops first.
    #[wasm_bindgen(unchecked_return_type = "Promise<ExitInfo>")]
    pub fn wait(&self) -> Promise {
        self.exit.clone()
    }
}
