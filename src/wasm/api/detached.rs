//! Detached processes: `spawn(cmd, { detached: true })`, `processes()` and `attach(id)`.

use std::rc::Rc;

use js_sys::Promise;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{call_transport, promise, Sandbox};
use crate::error::{Error, Result};
use crate::flow::detached::DEFAULT_RESUME_WITHIN_MS;
use crate::flow::{self, SandboxRef};
use crate::protocol::detached::{run_command, Offsets, DEFAULT_KEEP_BYTES};
use crate::wasm::detached::{Detached, FollowOptions};
use crate::wasm::types::{get, number, string};

#[wasm_bindgen(typescript_custom_section)]
const DETACHED_TS: &'static str = r#"
/** A detached process, as `sandbox.processes()` lists it. */
export interface ProcessInfo {
  id: string;
  /** The command as its spawner gave it. */
  command: string | string[] | null;
  /** Start, ms since the epoch. */
  startedAt: number;
  running: boolean;
  /** Once it ended; absent while it runs, or if the sandbox restarted under it. */
  exitCode?: number;
}

/** How a handle of a detached process follows it after a dropped connection. */
export interface ResumeOptions {
  /** How long to keep reconnecting after a drop before rejecting with STREAM_LOST, default 60000. */
  resumeWithinMs?: number;
}

/** `spawn(cmd, { detached: true, ... })`: a process that outlives every connection. */
export interface DetachedSpawnOptions extends ResumeOptions {
  detached?: boolean;
  /** Its id (1 to 64 of a-z, 0-9, "-"); a random one by default. */
  id?: string;
  /** Output kept per stream in the sandbox, default 16 MiB; past it the oldest bytes go. */
  keepBytes?: number;
}

export interface AttachOptions extends CallOptions, ResumeOptions {
  /** Byte offset into the output to replay from, default 0 (everything still kept); a number
   * for both streams, or one per stream. */
  from?: number | { stdout?: number; stderr?: number };
  /** "bytes" (default): streams of Uint8Array. "utf8": strings, never half a character. */
  encoding?: "bytes" | "utf8";
}
"#;

/// How to follow, from an options object.
fn follow_options(options: &JsValue, from: Offsets) -> FollowOptions {
    FollowOptions {
        from,
        utf8: string(options, "encoding").as_deref() == Some("utf8"),
        resume_within_ms: number(options, "resumeWithinMs").unwrap_or(DEFAULT_RESUME_WITHIN_MS),
    }
}

/// Starts `argv` detached (the `detached: true` branch of `spawn`) and follows it live.
pub(super) async fn spawn(
    sandbox: Rc<SandboxRef>,
    cmd: &JsValue,
    argv: Vec<String>,
    options: &JsValue,
) -> Result<JsValue> {
    let t = call_transport("spawn", options);
    let id = string(options, "id").unwrap_or_else(|| flow::detached::new_id(&t));
    let described = js_sys::JSON::stringify(cmd)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "null".into());
    let keep = number(options, "keepBytes").unwrap_or(DEFAULT_KEEP_BYTES);
    // The live run always takes stdin: the handle's `write` may come at any time.
    let run_argv = run_command(&id, keep, &described, true, &argv)?;
    let process = Detached::run(sandbox, id, run_argv, follow_options(options, Offsets::default()));
    // The call's own signal and timeout bound the start.
    Ok(t.cancel.run(process).await?.into())
}

#[wasm_bindgen]
impl Sandbox {
    /// Every detached process of the sandbox, whoever started it.
    #[wasm_bindgen(unchecked_return_type = "Promise<ProcessInfo[]>")]
    pub fn processes(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let t = call_transport("processes", &options);
            let list = flow::detached::list(&t, &inner).await?;
            Ok(list
                .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
                .unwrap_or(JsValue::UNDEFINED))
        })
    }

    /// A handle of detached process `id`, started by anyone: its output replays from `from`
    /// (default 0, everything still kept) and goes on live; `wait()` gives its real exit code,
    /// even if it ended before. Rejects with `NOT_FOUND` if there is no such process.
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxProcess>")]
    pub fn attach(
        &self,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "AttachOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let from = offsets(&options)?;
            let t = call_transport("attach", &options);
            crate::protocol::detached::check_id(&id)?;
            if !flow::detached::list(&t, &inner).await?.iter().any(|p| p.id == id) {
                return Err(Error::Api {
                    status: 404,
                    message: format!("no detached process {id:?}"),
                    id: None,
                    details: None,
                });
            }
            Ok(Detached::follow(inner, id, follow_options(&options, from))?.into())
        })
    }
}

/// `from`: a number for both streams, or `{ stdout, stderr }`.
fn offsets(options: &JsValue) -> Result<Offsets> {
    let Some(from) = get(options, "from") else {
        return Ok(Offsets::default());
    };
    if let Some(n) = from.as_f64() {
        if n < 0.0 || n.fract() != 0.0 {
            return Err(Error::Invalid(format!(
                "from: a byte offset is a whole number >= 0, got {n}"
            )));
        }
        return Ok(Offsets {
            stdout: n as u64,
            stderr: n as u64,
        });
    }
    Ok(Offsets {
        stdout: number(&from, "stdout").unwrap_or(0),
        stderr: number(&from, "stderr").unwrap_or(0),
    })
}
