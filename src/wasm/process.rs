//! Exec sessions, and `SandboxProcess`: a running command with byte streams.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{ReadableStream, ReadableStreamDefaultController};

use super::api::Inner;
use super::cancel::Cancel;
use super::socket::{Socket, SocketEvent};
use super::types::bytes;
use super::types::{get, object, string};
use crate::error::{Error, Result};
use crate::exec::{
    self, init_frame, interpret, payload_frames, resize_frame, session_end, stdin_end_frame, ExecEvent, ExecSpec,
    RawFrame,
};
use crate::protocol::exec::Completion;

/// Opens the exec WebSocket of a sandbox and sends `init`.
pub(crate) async fn open_session(inner: &Inner, spec: &ExecSpec, cancel: &Cancel) -> Result<Socket> {
    let socket = Socket::open(&inner.config.exec_url(&inner.id), cancel).await?;
    socket.send(&init_frame(&inner.config.token, spec))?;
    Ok(socket)
}

#[wasm_bindgen]
extern "C" {
    // JSON.parse on the JS string itself: no copy through wasm memory.
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;
}

/// A server frame's `type` and `data`, parsed by the runtime where the frame lies.
pub(crate) fn frame_parts(frame: &JsValue) -> Result<(String, JsValue)> {
    let parsed = if frame.is_string() {
        json_parse(frame)
    } else {
        // A binary frame: its bytes are UTF-8 JSON too.
        let bytes = super::types::bytes(frame)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Protocol("an exec frame is not UTF-8".into()))?;
        json_parse(&JsValue::from_str(&text))
    }
    .map_err(|_| Error::Protocol("unable to parse an exec frame".into()))?;
    Ok((
        string(&parsed, "type").unwrap_or_default(),
        get(&parsed, "data").unwrap_or(JsValue::UNDEFINED),
    ))
}

/// Turns a frame's parts into what the core interprets.
pub(crate) fn raw_frame(kind: &str, data: &JsValue) -> Result<RawFrame> {
    let text = || super::types::text(data).ok_or_else(|| Error::Protocol("an output frame without text".into()));
    Ok(match kind {
        "init" => RawFrame::Init {
            auth: string(data, "auth").unwrap_or_default(),
            instance: get(data, "context").and_then(|c| string(&c, "instanceName")),
            message: string(data, "message"),
        },
        "stdOut" => RawFrame::StdOut(text()?),
        "stdErr" => RawFrame::StdErr(text()?),
        "completion" => RawFrame::Completion(Completion {
            exit_code: get(data, "exitCode").and_then(|v| v.as_f64()).unwrap_or(-1.0) as i32,
            status: exec::completion_status(&string(data, "status").unwrap_or_default()),
            message: string(data, "message"),
        }),
        "error" => RawFrame::Error(string(data, "message").unwrap_or_default()),
        other => return Err(Error::Protocol(format!("unknown exec frame type {other:?}"))),
    })
}

/// Decodes a server frame: parsed by the runtime, interpreted by the core.
pub(crate) fn decode(frame: &JsValue, base64: bool) -> Result<ExecEvent> {
    let (kind, data) = frame_parts(frame)?;
    interpret(raw_frame(&kind, &data)?, base64)
}

fn exit_info(code: i32, status: &str, message: Option<&str>) -> JsValue {
    object(&[
        ("exitCode", JsValue::from(code)),
        ("status", JsValue::from_str(status)),
        ("message", message.map_or(JsValue::UNDEFINED, JsValue::from_str)),
    ])
}

/// A readable byte stream fed from Rust.
struct Feed {
    stream: ReadableStream,
    controller: ReadableStreamDefaultController,
}

impl Feed {
    fn new() -> Result<Self> {
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
    shared: Rc<Shared>,
    exit: Promise,
}

impl SandboxProcess {
    /// Opens the session, waits for the server to accept it, and starts forwarding output.
    pub(crate) async fn start(inner: &Inner, spec: ExecSpec, cancel: &Cancel) -> Result<Self> {
        let socket = open_session(inner, &spec, cancel).await?;
        // The init reply first: a refused token or a stopped sandbox rejects `spawn` itself.
        match cancel.run(async { Ok(socket.next().await) }).await? {
            SocketEvent::Message(frame) => match decode(&frame, true)? {
                ExecEvent::Started { .. } => {}
                _ => return Err(Error::Protocol("expected the init reply first".into())),
            },
            SocketEvent::Closed { code, reason } => return Err(session_end(None, code, &reason).unwrap_err()),
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
        Ok(Self { shared, exit })
    }
}

/// The command ended: closes the session and reads the completion as `wait()` resolves it.
fn completed(shared: &Shared, c: &Completion) -> JsValue {
    shared.socket.close();
    exit_info(c.exit_code, exec::status_name(c.status), c.message.as_deref())
}

/// Moves output into the streams until the command ends, then settles `wait()`.
async fn forward(shared: Rc<Shared>, resolve: Function, reject: Function) {
    let outcome = loop {
        match shared.socket.next().await {
            // Text output goes into the stream as the frame's own JS string.
            SocketEvent::Message(frame) if !shared.base64 => match frame_parts(&frame) {
                Ok((kind, data)) if kind == "stdOut" => {
                    let _ = shared.stdout.controller.enqueue_with_chunk(&data);
                }
                Ok((kind, data)) if kind == "stdErr" => {
                    let _ = shared.stderr.controller.enqueue_with_chunk(&data);
                }
                Ok((kind, data)) => match raw_frame(&kind, &data).and_then(|raw| interpret(raw, false)) {
                    Ok(ExecEvent::Completed(c)) => break Ok(completed(&shared, &c)),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            },
            SocketEvent::Message(frame) => match decode(&frame, true) {
                Ok(ExecEvent::Stdout(b)) => {
                    let _ = shared.stdout.controller.enqueue_with_chunk(&Uint8Array::from(&b[..]));
                }
                Ok(ExecEvent::Stderr(b)) => {
                    let _ = shared.stderr.controller.enqueue_with_chunk(&Uint8Array::from(&b[..]));
                }
                Ok(ExecEvent::Completed(c)) => break Ok(completed(&shared, &c)),
                Ok(ExecEvent::Started { .. }) => {}
                Err(e) => break Err(e),
            },
            SocketEvent::Closed { .. } if shared.killed.get() => {
                break Ok(exit_info(-1, "Unknown", Some("killed by the client")));
            }
            SocketEvent::Closed { code, reason } => break Err(session_end(None, code, &reason).unwrap_err()),
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
        self.shared.stdout.stream.clone()
    }

    /// Error output, like `stdout` (empty with a terminal).
    #[wasm_bindgen(getter, unchecked_return_type = "ReadableStream<Uint8Array | string>")]
    pub fn stderr(&self) -> ReadableStream {
        self.shared.stderr.stream.clone()
    }

    /// Sends input; resolves once it is on its way (waiting while more than 1 MiB is queued).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn write(&self, #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue) -> Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
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
        Ok(self.shared.socket.send(&stdin_end_frame())?)
    }

    /// Resizes the terminal.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), JsValue> {
        Ok(self.shared.socket.send(&resize_frame(cols, rows))?)
    }

    /// Ends the command: the connection closes and the server kills it.
    pub fn kill(&self) {
        if !self.shared.done.get() {
            self.shared.killed.set(true);
            self.shared.socket.close();
        }
    }

    /// Resolves to the exit when the command ends; rejects with `STREAM_LOST` if the connection
    /// drops first.
    #[wasm_bindgen(unchecked_return_type = "Promise<ExitInfo>")]
    pub fn wait(&self) -> Promise {
        self.exit.clone()
    }
}
