//! TypeScript shapes of the options objects, and helpers to read them.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = r#"
/** Connection settings. `token` is a Northflank API token; `baseUrl` defaults to https://api.northflank.com
 * (the local host is http://127.0.0.1:7420). */
/** `token` and `projectId` for the API itself; for an edge proxy, only `baseUrl` (the proxy's URL). */
export interface NorthflankOptions { token?: string; projectId?: string; teamId?: string; baseUrl?: string }

/** Every network call takes an AbortSignal and a timeout. `keepalive` (honoured by `destroy()` and
 * `Northflank.call()`) sends the request with fetch's `keepalive`, so that it completes after the
 * page is gone: a page's `destroy({ keepalive: true })` on `pagehide`. */
export interface CallOptions { signal?: AbortSignal; timeoutMs?: number; keepalive?: boolean }

/** A step of Sandbox.create, reported to onProgress. From "starting" on the sandbox exists:
 * that step carries its `id` and, through an edge proxy, its `capability`, so a caller can
 * destroy it even if the create never resolves. */
export interface Progress { step: "creating-volume" | "creating" | "starting" | "waiting" | "ready"; status?: string; elapsedMs: number; id?: string; capability?: string }

export interface SandboxOptions extends CallOptions {
  /** Image, default "ubuntu:22.04". */
  image?: string;
  /** Deployment plan, default "nf-compute-20" (0.2 vCPU, 512 MiB). */
  plan?: string;
  /** Main process, default "sleep infinity". */
  command?: string;
  env?: Record<string, string>;
  ephemeralStorageMb?: number;
  shmMb?: number;
  /** A volume created first and mounted at every path. */
  volume?: { sizeMb: number; mountPaths: string[]; name?: string };
  /** GPUs: the plan becomes nf-gpu-<type>-<count>g and /dev/shm the GPU host's RAM, as in the guide. */
  gpu?: { type: string; count?: number; timesliced?: boolean };
  ports?: PortOptions[];
  /** Service name; a random sandbox-xxxxxxxxxxxx otherwise. */
  name?: string;
  /** Extra tags. */
  tags?: string[];
  /** Lifetime in seconds: the local host (and the edge proxy) delete the sandbox after it. */
  ttlSeconds?: number;
  onProgress?: (progress: Progress) => void;
}

export interface PortOptions { port: number; protocol?: "HTTP" | "HTTP/2" | "TCP" | "UDP"; public?: boolean; name?: string }

export interface ExposePortOptions extends CallOptions { protocol?: "HTTP" | "HTTP/2" | "TCP" | "UDP"; public?: boolean; name?: string }

export interface Port { id: string; name: string; internalPort: number; protocol: string; public: boolean; dns?: string }

export interface ExecOptions extends CallOptions {
  /** Called with each piece of output as it arrives. */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** Input; without it stdin is closed at once. */
  stdin?: string | Uint8Array | ReadableStream<Uint8Array>;
  /** Shell for a string command, default "bash -c"; "none" splits it into argv instead. */
  shell?: string;
  /** Output kept per stream, default 16 MiB: past it the head and the tail are kept. */
  outputLimitBytes?: number;
}

export interface ExecResult { exitCode: number; status: "Success" | "Failure" | "Unknown"; stdout: string; stderr: string; truncated: boolean; durationMs: number }

export interface SpawnOptions extends CallOptions {
  tty?: boolean; cols?: number; rows?: number; shell?: string;
  /** "bytes" (default): exact bytes both ways, streams of Uint8Array. "utf8": text frames, streams
   * of strings (cheaper; for text programs). */
  encoding?: "bytes" | "utf8";
}

export interface ExitInfo { exitCode: number; status: "Success" | "Failure" | "Unknown"; message?: string }

export interface SandboxStatus { id: string; status: "PENDING" | "IN_PROGRESS" | "COMPLETED" | "FAILED" | "UNKNOWN"; reason?: string; paused: boolean; instances: number; ready: boolean }

export interface FileEntry { path: string; data: Uint8Array }

/** `capability`: drive the sandbox through an edge proxy with a capability it issued. */
export interface ForServiceOptions { capability?: string }
/** `capability`: drive the sandbox through an edge proxy with a capability it issued. */
export interface ConnectOptions extends CallOptions { capability?: string }
export interface DestroyOptions extends CallOptions { deleteVolume?: boolean }
"#;

/// A property of an options object; `undefined` and `null` read as absent.
pub(crate) fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return None;
    }
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// The `signal` of an options object.
pub(crate) fn signal(obj: &JsValue) -> Option<AbortSignal> {
    get(obj, "signal").and_then(|v| v.dyn_into().ok())
}

/// The `timeoutMs` of an options object.
pub(crate) fn timeout_ms(obj: &JsValue) -> Option<u64> {
    get(obj, "timeoutMs")
        .and_then(|v| v.as_f64())
        .filter(|ms| *ms > 0.0)
        .map(|ms| ms as u64)
}

/// A callback of an options object.
pub(crate) fn callback(obj: &JsValue, key: &str) -> Option<Function> {
    get(obj, key).and_then(|v| v.dyn_into().ok())
}

/// A string property.
pub(crate) fn string(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).and_then(|v| v.as_string())
}

/// A whole-number property.
pub(crate) fn number(obj: &JsValue, key: &str) -> Option<u64> {
    get(obj, key)
        .and_then(|v| v.as_f64())
        .filter(|n| *n >= 0.0)
        .map(|n| n as u64)
}

/// A boolean property.
pub(crate) fn boolean(obj: &JsValue, key: &str) -> Option<bool> {
    get(obj, key).and_then(|v| v.as_bool())
}

/// An options object as the core's serde type, read by serde-wasm-bindgen: the same rules
/// `cargo test` checks. Only the type's own fields are read, so `signal` and callbacks stay in JS;
/// a missing object reads as the defaults.
pub(crate) fn options<T: DeserializeOwned + Default>(obj: &JsValue, what: &str) -> Result<T> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(obj.clone()).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

/// A plain JS object written by serde (serde-wasm-bindgen), the one writer of results whose
/// fields are wire names.
pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new())
        .unwrap_or(JsValue::UNDEFINED)
}

/// A plain object from key/value pairs.
pub(crate) fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let obj = js_sys::Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&obj, &JsValue::from_str(k), v);
    }
    obj.into()
}

/// Bytes from a string (UTF-8) or a `Uint8Array`/`ArrayBuffer`.
pub(crate) fn bytes(v: &JsValue) -> Result<Vec<u8>> {
    if let Some(b) = utf8(v) {
        return Ok(b);
    }
    if let Some(a) = v.dyn_ref::<js_sys::Uint8Array>() {
        return Ok(a.to_vec());
    }
    if let Some(b) = v.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(js_sys::Uint8Array::new(b).to_vec());
    }
    Err(Error::Invalid(
        "expected a string, a Uint8Array or an ArrayBuffer".into(),
    ))
}

/// A command: a string or an array of strings.
pub(crate) fn command(v: &JsValue) -> Result<crate::protocol::exec::Command> {
    use crate::protocol::exec::Command;
    if let Some(s) = v.as_string() {
        return Ok(Command::Line(s));
    }
    if js_sys::Array::is_array(v) {
        let argv: Vec<String> = js_sys::Array::from(v)
            .iter()
            .map(|a| {
                a.as_string()
                    .ok_or_else(|| Error::Invalid("every argument must be a string".into()))
            })
            .collect::<Result<_>>()?;
        return Ok(Command::Argv(argv));
    }
    Err(Error::Invalid("a command is a string or an array of strings".into()))
}

#[wasm_bindgen]
extern "C" {
    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    // Takes the JS string itself: web-sys's binding takes a `&str`, which is the copy we avoid.
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &TextEncoder, source: &js_sys::JsString, dest: &js_sys::Uint8Array) -> EncodeIntoResult;

    type EncodeIntoResult;
    #[wasm_bindgen(method, getter)]
    fn read(this: &EncodeIntoResult) -> u32;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeIntoResult) -> u32;
}

thread_local! {
    static ENCODER: TextEncoder = TextEncoder::new();
}

/// A JS string's UTF-8 bytes, or `None` for anything else.
///
/// Output frames are copied this way, with the runtime's own `TextEncoder.encodeInto` straight
/// into wasm memory: wasm-bindgen's `as_string` walks the string a character at a time in JS,
/// which was a quarter of the client's time on a big stdout stream. Lone surrogates become
/// U+FFFD, as with `as_string`.
pub(crate) fn utf8(v: &JsValue) -> Option<Vec<u8>> {
    let text: &js_sys::JsString = v.dyn_ref()?;
    // One byte per UTF-16 unit fits ASCII exactly; anything else gets a second pass below.
    let mut out: Vec<u8> = Vec::with_capacity(text.length() as usize);
    let mut rest = text.clone();
    ENCODER.with(|encoder| loop {
        let spare = out.capacity() - out.len();
        // SAFETY: the view covers the vector's spare capacity, which nothing else uses, and it is
        // dropped before the vector is touched again; nothing allocates in wasm memory meanwhile,
        // so the memory cannot grow and detach the view.
        let done = unsafe {
            let view = js_sys::Uint8Array::view_mut_raw(out.as_mut_ptr().add(out.len()), spare);
            encoder.encode_into(&rest, &view)
        };
        let written = done.written() as usize;
        // SAFETY: encodeInto wrote `written` initialised bytes into the spare capacity.
        unsafe { out.set_len(out.len() + written) };
        let (read, length) = (done.read(), rest.length());
        if read >= length {
            return;
        }
        rest = rest.slice(read, length);
        // At most three bytes per remaining UTF-16 unit.
        out.reserve(rest.length() as usize * 3);
    });
    Some(out)
}
