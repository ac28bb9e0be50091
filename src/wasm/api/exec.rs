//! `Sandbox.exec` and `Sandbox.spawn`: running commands over an exec session.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::{call_transport, promise, transport, Sandbox};
use crate::error::{Error, Result};
use crate::exec::{self, argv_for, ExecSpec};
use crate::flow::exec::{Output, Stdin};
use crate::flow::{self};
use crate::protocol::detached::DetachedError;
use crate::wasm::process::SandboxProcess;
use crate::wasm::types::{boolean, bytes, callback, command, get, number, string, to_js};

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
                    Ok(stream) => Stdin::Stream(chunks(stream)),
                    Err(v) => Stdin::Bytes(bytes(&v)?),
                },
            };
            let limit = number(&options, "outputLimitBytes").map_or(exec::DEFAULT_OUTPUT_LIMIT, |n| n as usize);
            // No timeout unless asked for: commands may run long; a signal aborts them.
            let t = transport("exec", &options, None);
            let mut on_stdout = text_sink(callback(&options, "onStdout"));
            let mut on_stderr = text_sink(callback(&options, "onStderr"));
            let stdout = Output::new(limit, on_stdout.as_mut().map(|f| f as &mut dyn FnMut(&str)));
            let stderr = Output::new(limit, on_stderr.as_mut().map(|f| f as &mut dyn FnMut(&str)));
            let result = flow::exec(&t, &inner, argv, stdin, stdout, stderr).await?;
            Ok(to_js(&result))
        })
    }

    /// Starts a process and returns its handle at once, with byte streams for its output.
    /// With `tty`, it gets a terminal of `cols` × `rows` (stderr then arrives on stdout). With
    /// `detached`, it outlives every connection (see `attach`); its handle has an `id`.
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxProcess>")]
    pub fn spawn(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[] | undefined")] cmd: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SpawnOptions & DetachedSpawnOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cmd_js = cmd.clone();
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
            if boolean(&options, "detached").unwrap_or(false) {
                if tty.is_some() {
                    return Err(DetachedError::Tty.into());
                }
                return super::detached::spawn(inner, &cmd_js, argv, &options).await;
            }
            let t = call_transport("spawn", &options);
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

/// A `ReadableStream`'s chunks as bytes; a failed read ends it with the error.
fn chunks(stream: web_sys::ReadableStream) -> impl futures_core::Stream<Item = Result<Vec<u8>>> + Unpin {
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    Box::pin(futures_util::stream::unfold(Some(reader), |reader| async move {
        let reader = reader?;
        let chunk = match wasm_bindgen_futures::JsFuture::from(reader.read()).await {
            Ok(chunk) => chunk,
            Err(e) => return Some((Err(Error::Invalid(crate::wasm::errors::describe(&e))), None)),
        };
        if get(&chunk, "done").and_then(|d| d.as_bool()).unwrap_or(true) {
            return None;
        }
        let data = bytes(&get(&chunk, "value").unwrap_or(JsValue::from_str("")));
        Some((data, Some(reader)))
    }))
}

/// A JS callback as the core's text sink.
fn text_sink(callback: Option<Function>) -> Option<impl FnMut(&str)> {
    callback.map(|cb| {
        move |text: &str| {
            let _ = cb.call1(&JsValue::NULL, &JsValue::from_str(text));
        }
    })
}
