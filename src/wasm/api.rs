//! `Northflank` and `Sandbox`: the JS classes.
//!
//! Every async method clones what it needs and returns a `Promise` (so calls may overlap), takes
//! an options object with `signal` and `timeoutMs`, and rejects with the errors of
//! [`super::errors`].

use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::cancel::Cancel;
use super::http::{data, send};
use super::process::{decode, frame_parts, raw_frame};
use super::process::{open_session, SandboxProcess};
use super::socket::SocketEvent;
use super::types::{
    self, boolean, bytes, callback, command, get, number, object, path, port_options, signal, string, timeout_ms,
};
use crate::config::{encode_component, ClientConfig};
use crate::error::{Error, Result};
use crate::exec::{
    self, argv_for, interpret, payload_frames, session_end, stdin_end_frame, ExecEvent, ExecSpec, OutputBuffer,
};
use crate::protocol::service::{PortList, PortSpec};
use crate::protocol::text::Utf8Carry;
use crate::rest::ApiRequest;
use crate::retry::PollBackoff;
use crate::sandbox::{self, plan_create, port_spec, port_url, readiness, settled, Readiness};
use crate::tar;

/// Runs `fut` as a Promise, turning errors into JS errors.
fn promise<F>(fut: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    future_to_promise(async move { fut.await.map_err(JsValue::from) })
}

/// Default timeout of one REST call, ms.
const CALL_TIMEOUT_MS: u64 = 30_000;

fn call_cancel(what: &str, opts: &JsValue) -> Result<Cancel> {
    Cancel::new(what, signal(opts), Some(timeout_ms(opts).unwrap_or(CALL_TIMEOUT_MS)))
}

/// A Northflank API connection: a token, a project and a base URL.
#[wasm_bindgen]
pub struct Northflank {
    config: Rc<ClientConfig>,
}

#[wasm_bindgen]
impl Northflank {
    /// `new Northflank({ token, projectId, teamId?, baseUrl? })`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "NorthflankOptions")] options: JsValue,
    ) -> Result<Northflank, JsValue> {
        let s = |k: &str| get(&options, k).and_then(|v| v.as_string());
        let token = s("token").unwrap_or_default();
        // Through an edge proxy there is no token and the proxy picks the project.
        let project = s("projectId").or_else(|| token.is_empty().then(|| "edge".into()));
        let config = ClientConfig::new(token, project.unwrap_or_default(), s("teamId"), s("baseUrl"))?;
        Ok(Self {
            config: Rc::new(config),
        })
    }

    /// The project.
    #[wasm_bindgen(getter, js_name = projectId)]
    pub fn project_id(&self) -> String {
        self.config.project_id.clone()
    }

    /// The API base URL.
    #[wasm_bindgen(getter, js_name = baseUrl)]
    pub fn base_url(&self) -> String {
        self.config.base_url.clone()
    }

    /// One REST call to `path` (below the base URL, e.g. `/v1/projects/p/services`). Resolves to
    /// `{ data, pagination? }`; rejects on any status but 200. Reads are retried.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ data: any; pagination?: { hasNextPage: boolean; cursor?: string; count: number } }>"
    )]
    pub fn call(
        &self,
        method: String,
        path: String,
        body: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        let config = self.config.clone();
        promise(async move {
            let cancel = call_cancel(&format!("{method} {path}"), &options)?;
            let req = match method.to_ascii_uppercase().as_str() {
                "GET" => ApiRequest::get(path),
                "DELETE" => ApiRequest::delete(path),
                "POST" if body.is_undefined() || body.is_null() => ApiRequest::post_empty(path),
                "POST" => {
                    let json = js_sys::JSON::stringify(&body)
                        .map_err(|_| Error::Invalid("the body cannot be turned into JSON".into()))?;
                    ApiRequest::post_json(path, json.into())
                }
                other => return Err(Error::Invalid(format!("unsupported method {other}"))),
            };
            send(&config, req, &cancel).await
        })
    }
}

/// A sandbox: one Northflank deployment service.
#[wasm_bindgen]
pub struct Sandbox {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Rc<ClientConfig>,
    pub(crate) id: String,
    volume_id: Option<String>,
}

impl Inner {
    fn path(&self, rest: &str) -> String {
        self.config
            .project_path(&format!("/services/{}{rest}", encode_component(&self.id)))
    }

    /// `data` of a GET below the service.
    async fn get(&self, rest: &str, cancel: &Cancel) -> Result<JsValue> {
        Ok(data(
            &send(&self.config, ApiRequest::get(self.path(rest)), cancel).await?,
        ))
    }

    async fn post<B: Serialize>(&self, rest: &str, body: &B, cancel: &Cancel) -> Result<()> {
        send(&self.config, ApiRequest::post(self.path(rest), body)?, cancel)
            .await
            .map(drop)
    }

    /// The rollout status, paused and instances of the service.
    async fn state(&self, cancel: &Cancel) -> Result<(Option<String>, bool, u32)> {
        let s = self.get("", cancel).await?;
        let status = path(&s, &["status", "deployment", "status"]).and_then(|v| v.as_string());
        let paused = boolean(&s, "servicePaused").unwrap_or(false);
        let instances = path(&s, &["deployment", "instances"])
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as u32;
        Ok((status, paused, instances))
    }

    /// Polls until the deployment is ready (or failed), reporting each new status.
    async fn wait_ready(&self, cancel: &Cancel, progress: &Progress) -> Result<()> {
        let mut last = String::new();
        for wait in PollBackoff::default() {
            let (status, paused, instances) = self.state(cancel).await?;
            match readiness(status.as_deref(), paused, instances) {
                Readiness::Ready => return Ok(()),
                Readiness::Failed => {
                    return Err(Error::DeploymentFailed(format!("service {} reports FAILED", self.id)))
                }
                Readiness::Waiting(status) => {
                    if status != last {
                        progress.report("waiting", Some(&status));
                        last = status;
                    }
                }
            }
            cancel.sleep(wait).await?;
        }
        unreachable!("PollBackoff never ends")
    }

    /// Polls until the rollout settles (after a pause).
    async fn wait_settled(&self, cancel: &Cancel) -> Result<()> {
        for wait in PollBackoff::default() {
            if settled(self.state(cancel).await?.0.as_deref()) {
                return Ok(());
            }
            cancel.sleep(wait).await?;
        }
        unreachable!("PollBackoff never ends")
    }

    async fn scale(&self, instances: u32, cancel: &Cancel) -> Result<()> {
        let body = crate::protocol::service::ScaleRequest {
            instances: Some(instances),
            ..Default::default()
        };
        self.post("/scale", &body, cancel).await
    }
}

/// `onProgress` reporting.
struct Progress {
    callback: Option<Function>,
    started: f64,
}

impl Progress {
    fn report(&self, step: &str, status: Option<&str>) {
        self.report_with(step, status, &[]);
    }

    /// The "starting" step, once the service exists: its id, and through an edge proxy its
    /// capability, so that a caller can destroy it even if the create never resolves (a page
    /// that goes away while it starts).
    fn report_created(&self, inner: &Inner) {
        let capability = inner.config.is_capability.then(|| inner.config.token.as_str());
        self.report_with(
            "starting",
            None,
            &[
                ("id", JsValue::from_str(&inner.id)),
                ("capability", capability.map_or(JsValue::UNDEFINED, JsValue::from_str)),
            ],
        );
    }

    fn report_with(&self, step: &str, status: Option<&str>, extra: &[(&str, JsValue)]) {
        if let Some(cb) = &self.callback {
            let mut fields = vec![
                ("step", JsValue::from_str(step)),
                ("status", status.map_or(JsValue::UNDEFINED, JsValue::from_str)),
                ("elapsedMs", JsValue::from((js_sys::Date::now() - self.started).round())),
            ];
            fields.extend(extra.iter().cloned());
            let _ = cb.call1(&JsValue::NULL, &object(&fields));
        }
    }
}

fn random_suffix() -> String {
    (0..12)
        .map(|_| char::from(b"0123456789abcdef"[(js_sys::Math::random() * 16.0) as usize % 16]))
        .collect()
}

/// Stdin of an exec.
enum Stdin {
    Closed,
    Bytes(Vec<u8>),
    Stream(web_sys::ReadableStream),
}

#[wasm_bindgen]
impl Sandbox {
    /// Creates a sandbox and resolves once it is ready: creates the volume first when asked,
    /// creates the service, scales it to 1, and polls with backoff until it is `COMPLETED`,
    /// reporting each step through `onProgress`. Gives up after `timeoutMs` (default 120 s)
    /// and then deletes what it made.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn create(
        nf: &Northflank,
        #[wasm_bindgen(unchecked_param_type = "SandboxOptions")] options: JsValue,
    ) -> Promise {
        let config = nf.config.clone();
        promise(async move {
            let opts = types::sandbox_options(&options)?;
            let timeout = timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS);
            let cancel = Cancel::new("Sandbox.create", signal(&options), Some(timeout))?;
            let progress = Progress {
                callback: callback(&options, "onProgress"),
                started: js_sys::Date::now(),
            };
            let mut plan = plan_create(&opts, &random_suffix(), (js_sys::Date::now() / 1000.0) as u64)?;
            let mut volume_id = plan.volume_id();
            if let Some(volume) = &plan.volume {
                progress.report("creating-volume", None);
                let made = send(
                    &config,
                    ApiRequest::post(config.project_path("/volumes"), volume)?,
                    &cancel,
                )
                .await?;
                if let Some(id) = string(&data(&made), "id") {
                    plan.attach_volume(&id);
                    volume_id = Some(id);
                }
            }
            let inner = Rc::new(Inner {
                config: config.clone(),
                id: plan.service_id.clone(),
                volume_id: volume_id.clone(),
            });
            progress.report("creating", None);
            let created = send(
                &config,
                ApiRequest::post(config.project_path("/services/deployment"), &plan.service)?,
                &cancel,
            )
            .await;
            let created = match created {
                Ok(created) => data(&created),
                Err(e) => {
                    cleanup(&inner, false).await;
                    return Err(e);
                }
            };
            // Through an edge proxy, the answer names the sandbox (the proxy chooses the name)
            // and carries the capability that stands in for a token from here on.
            let inner = match string(&created, "capability") {
                Some(capability) => Rc::new(Inner {
                    config: Rc::new(config.with_capability(capability)),
                    id: string(&created, "id").unwrap_or_else(|| plan.service_id.clone()),
                    volume_id,
                }),
                None => inner,
            };
            let started = async {
                progress.report_created(&inner);
                inner.scale(1, &cancel).await?;
                inner.wait_ready(&cancel, &progress).await
            };
            if let Err(e) = started.await {
                // No handle reaches the caller, so nothing would ever delete it.
                cleanup(&inner, true).await;
                return Err(e);
            }
            progress.report("ready", None);
            Ok(Sandbox { inner }.into())
        })
    }

    /// A handle on an existing sandbox, checked to exist.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sandbox>")]
    pub fn connect(
        nf: &Northflank,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "ConnectOptions")] options: JsValue,
    ) -> Promise {
        let config = match get(&options, "capability").and_then(|c| c.as_string()) {
            Some(capability) => Rc::new(nf.config.with_capability(capability)),
            None => nf.config.clone(),
        };
        let inner = Rc::new(Inner {
            config,
            id,
            volume_id: None,
        });
        promise(async move {
            let cancel = call_cancel("Sandbox.connect", &options)?;
            inner.get("", &cancel).await?;
            Ok(Sandbox { inner }.into())
        })
    }

    /// A handle on a service by id, without any request (for layers built on this one).
    #[wasm_bindgen(js_name = forService)]
    pub fn for_service(nf: &Northflank, id: String) -> Sandbox {
        Sandbox {
            inner: Rc::new(Inner {
                config: nf.config.clone(),
                id,
                volume_id: None,
            }),
        }
    }

    /// The capability this sandbox is driven with, when it came from an edge proxy: hand it
    /// to `Sandbox.connect(nf, id, { capability })` elsewhere. `undefined` with a token.
    #[wasm_bindgen(getter)]
    pub fn capability(&self) -> Option<String> {
        let config = &self.inner.config;
        config.is_capability.then(|| config.token.clone())
    }

    /// The service id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// The volume made by `create`, if any.
    #[wasm_bindgen(getter, js_name = volumeId)]
    pub fn volume_id(&self) -> Option<String> {
        self.inner.volume_id.clone()
    }

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
            let argv = argv_for(command(&cmd)?, shell.as_deref())?;
            let stdin = match get(&options, "stdin") {
                None => Stdin::Closed,
                Some(v) => match v.dyn_into::<web_sys::ReadableStream>() {
                    Ok(stream) => Stdin::Stream(stream),
                    Err(v) => Stdin::Bytes(bytes(&v)?),
                },
            };
            let limit = number(&options, "outputLimitBytes").map_or(exec::DEFAULT_OUTPUT_LIMIT, |n| n as usize);
            // No timeout unless asked for: commands may run long; a signal aborts them.
            let cancel = Cancel::new("exec", signal(&options), timeout_ms(&options))?;
            let run = Run {
                argv,
                stdin,
                limit,
                on_stdout: callback(&options, "onStdout"),
                on_stderr: callback(&options, "onStderr"),
            };
            run_exec(&inner, run, &cancel).await
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
            let argv = if cmd.is_undefined() || cmd.is_null() {
                vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi".into(),
                ]
            } else {
                argv_for(command(&cmd)?, string(&options, "shell").as_deref())?
            };
            let tty = boolean(&options, "tty").unwrap_or(false).then(|| {
                let n = |k: &str, d: u16| number(&options, k).map_or(d, |n| n.clamp(1, 1000) as u16);
                (n("cols", 80), n("rows", 24))
            });
            let cancel = call_cancel("spawn", &options)?;
            let base64 = string(&options, "encoding").as_deref() != Some("utf8");
            let spec = ExecSpec {
                argv,
                base64,
                tty,
                instance: None,
            };
            Ok(SandboxProcess::start(&inner, spec, &cancel).await?.into())
        })
    }

    /// Writes a file (its directory is made), byte for byte.
    #[wasm_bindgen(js_name = writeFile, unchecked_return_type = "Promise<void>")]
    pub fn write_file(
        &self,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] data: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call("writeFile", exec::files::write(&path), bytes(&data), options, |_| {
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Reads a file, byte for byte.
    #[wasm_bindgen(js_name = readFile, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn read_file(
        &self,
        path: String,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call("readFile", exec::files::read(&path), Ok(Vec::new()), options, |out| {
            Ok(Uint8Array::from(&out[..]).into())
        })
    }

    /// Uploads files into `dir` as one tar stream: `{ "a.txt": "…", "sub/b.bin": Uint8Array }`
    /// or `[{ path, data }]`.
    #[wasm_bindgen(js_name = uploadDir, unchecked_return_type = "Promise<void>")]
    pub fn upload_dir(
        &self,
        dir: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string | Uint8Array> | FileEntry[]")] files: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        let archive = file_entries(&files).and_then(|entries| tar::write(&entries));
        self.file_call("uploadDir", exec::files::untar(&dir), archive, options, |_| {
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Downloads every file under `dir`, with paths relative to it.
    #[wasm_bindgen(js_name = downloadDir, unchecked_return_type = "Promise<FileEntry[]>")]
    pub fn download_dir(
        &self,
        dir: String,
        #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue,
    ) -> Promise {
        self.file_call(
            "downloadDir",
            exec::files::tar(&dir),
            Ok(Vec::new()),
            options,
            |archive| {
                let out = js_sys::Array::new();
                for e in tar::read(&archive)? {
                    if let Some(data) = e.data {
                        out.push(&object(&[
                            ("path", e.path.into()),
                            ("data", Uint8Array::from(&data[..]).into()),
                        ]));
                    }
                }
                Ok(out.into())
            },
        )
    }

    /// Exposes a port (replacing any with the same number) and resolves to the URL that
    /// reaches it: `https://{dns}` on Northflank, `http://{dns}` on a local host, `tcp://…` for
    /// TCP. A public port's name can appear a moment after the update, so it is polled for until
    /// the call's timeout. A port that gets no name (private HTTP) resolves to `undefined`.
    #[wasm_bindgen(js_name = exposePort, unchecked_return_type = "Promise<string | undefined>")]
    pub fn expose_port(
        &self,
        port: u32,
        #[wasm_bindgen(unchecked_param_type = "ExposePortOptions")] options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let wanted = port_spec(&port_options(&options, port))?;
            let (protocol, public) = (wanted.protocol, wanted.public == Some(true));
            let cancel = call_cancel("exposePort", &options)?;
            let mut ports: Vec<PortSpec> = Vec::new();
            for p in port_list(&inner.get("/ports", &cancel).await?) {
                let (number, name) = (
                    number(&p, "internalPort").unwrap_or(0) as u32,
                    string(&p, "name").unwrap_or_default(),
                );
                if number == port || name == wanted.name {
                    continue;
                }
                let mut spec = port_spec(&port_options(&p, number))?;
                spec.id = string(&p, "id");
                ports.push(spec);
            }
            ports.push(wanted);
            inner.post("/ports", &PortList { ports }, &cancel).await?;
            for wait in PollBackoff::default() {
                let after = port_list(&inner.get("/ports", &cancel).await?);
                let dns = after
                    .iter()
                    .find(|p| number(p, "internalPort") == Some(u64::from(port)))
                    .and_then(|p| string(p, "dns"));
                match dns {
                    Some(dns) => return Ok(JsValue::from_str(&port_url(&inner.config.base_url, protocol, &dns))),
                    None if !public => return Ok(JsValue::UNDEFINED),
                    None => cancel.sleep(wait).await?,
                }
            }
            unreachable!("PollBackoff never ends")
        })
    }

    /// The sandbox's ports.
    #[wasm_bindgen(unchecked_return_type = "Promise<Port[]>")]
    pub fn ports(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("ports", &options)?;
            Ok(get(&inner.get("/ports", &cancel).await?, "ports").unwrap_or_else(|| js_sys::Array::new().into()))
        })
    }

    /// Where the sandbox stands.
    #[wasm_bindgen(unchecked_return_type = "Promise<SandboxStatus>")]
    pub fn status(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("status", &options)?;
            let (status, paused, instances) = inner.state(&cancel).await?;
            let ready = readiness(status.as_deref(), paused, instances) == Readiness::Ready;
            Ok(object(&[
                ("id", JsValue::from_str(&inner.id)),
                ("status", JsValue::from_str(status.as_deref().unwrap_or("UNKNOWN"))),
                ("paused", JsValue::from(paused)),
                ("instances", JsValue::from(instances)),
                ("ready", JsValue::from(ready)),
            ]))
        })
    }

    /// Pauses: scales to 0 (processes end, ephemeral storage goes, volumes stay) and waits
    /// until that has happened.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn pause(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = Cancel::new(
                "pause",
                signal(&options),
                Some(timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS)),
            )?;
            inner.scale(0, &cancel).await?;
            inner.wait_settled(&cancel).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Resumes: scales back to 1 and waits until the fresh sandbox is ready.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn resume(&self, #[wasm_bindgen(unchecked_param_type = "CallOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = Cancel::new(
                "resume",
                signal(&options),
                Some(timeout_ms(&options).unwrap_or(sandbox::DEFAULT_CREATE_TIMEOUT_MS)),
            )?;
            inner.scale(1, &cancel).await?;
            let progress = Progress {
                callback: callback(&options, "onProgress"),
                started: js_sys::Date::now(),
            };
            inner.wait_ready(&cancel, &progress).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Deletes the sandbox, and with `deleteVolume` its volumes too.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn destroy(&self, #[wasm_bindgen(unchecked_param_type = "DestroyOptions")] options: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = call_cancel("destroy", &options)?;
            let children = boolean(&options, "deleteVolume").unwrap_or(false);
            let query = if children { "?delete_child_objects=true" } else { "" };
            send(&inner.config, ApiRequest::delete(inner.path(query)), &cancel)
                .await
                .map(|_| JsValue::UNDEFINED)
        })
    }
}

/// The `ports` array of a ports answer.
fn port_list(data: &JsValue) -> Vec<JsValue> {
    get(data, "ports")
        .map(|p| js_sys::Array::from(&p).iter().collect())
        .unwrap_or_default()
}

impl Sandbox {
    /// A file operation: `argv` over a base64 session with `input` as stdin, its stdout turned
    /// into the result by `finish`.
    fn file_call(
        &self,
        what: &'static str,
        argv: Vec<String>,
        input: Result<Vec<u8>>,
        options: JsValue,
        finish: fn(Vec<u8>) -> Result<JsValue>,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let cancel = Cancel::new(what, signal(&options), timeout_ms(&options))?;
            finish(file_op(&inner, argv, input?, &cancel).await?)
        })
    }
}

/// Best-effort deletion of a sandbox `create` could not finish.
async fn cleanup(inner: &Inner, service: bool) {
    let Ok(cancel) = Cancel::new("cleanup", None, Some(10_000)) else {
        return;
    };
    if service {
        let _ = send(
            &inner.config,
            ApiRequest::delete(inner.path("?delete_child_objects=true")),
            &cancel,
        )
        .await;
    } else if let Some(volume) = &inner.volume_id {
        let _ = send(
            &inner.config,
            ApiRequest::delete(
                inner
                    .config
                    .project_path(&format!("/volumes/{}", encode_component(volume))),
            ),
            &cancel,
        )
        .await;
    }
}

fn file_entries(files: &JsValue) -> Result<Vec<tar::Entry>> {
    let mut entries = Vec::new();
    if js_sys::Array::is_array(files) {
        for item in js_sys::Array::from(files).iter() {
            let path = get(&item, "path")
                .and_then(|p| p.as_string())
                .ok_or_else(|| Error::Invalid("each file needs a path".into()))?;
            let data = bytes(&get(&item, "data").unwrap_or(JsValue::from_str("")))?;
            entries.push(tar::Entry {
                path,
                data: Some(data),
                mode: 0o644,
            });
        }
    } else {
        let obj: &js_sys::Object = files
            .dyn_ref()
            .ok_or_else(|| Error::Invalid("files must be an object or an array".into()))?;
        for pair in js_sys::Object::entries(obj).iter() {
            let pair = js_sys::Array::from(&pair);
            let path = pair.get(0).as_string().unwrap_or_default();
            entries.push(tar::Entry {
                path,
                data: Some(bytes(&pair.get(1))?),
                mode: 0o644,
            });
        }
    }
    Ok(entries)
}

/// Runs a file command over a base64 session: `input` as stdin, stdout back as bytes. A failed
/// command rejects with its stderr.
async fn file_op(inner: &Inner, argv: Vec<String>, input: Vec<u8>, cancel: &Cancel) -> Result<Vec<u8>> {
    let spec = ExecSpec {
        argv,
        base64: true,
        tty: None,
        instance: None,
    };
    let session = open_session(inner, &spec, cancel).await?;
    for frame in payload_frames(&input, true) {
        wait_for_room(&session, cancel).await?;
        session.send(&frame)?;
    }
    session.send(&stdin_end_frame())?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    cancel.on_cancel(session.closer());
    loop {
        match session.next().await {
            SocketEvent::Message(frame) => match decode(&frame, true)? {
                ExecEvent::Stdout(b) => out.extend(b),
                ExecEvent::Stderr(b) => err.extend(b),
                ExecEvent::Started { .. } => {}
                ExecEvent::Completed(c) => {
                    session.close();
                    if exec::succeeded(&c) {
                        return Ok(out);
                    }
                    let stderr = String::from_utf8_lossy(&err).trim().to_string();
                    return Err(Error::Exec(if stderr.is_empty() {
                        format!("exit code {}", c.exit_code)
                    } else {
                        stderr
                    }));
                }
            },
            SocketEvent::Closed { code, reason } => {
                return Err(cancel
                    .error()
                    .unwrap_or_else(|| session_end(None, code, &reason).unwrap_err()))
            }
        }
    }
}

/// Waits while the socket has more than 1 MiB queued, so a big upload does not pile up in memory.
async fn wait_for_room(session: &super::socket::Socket, cancel: &Cancel) -> Result<()> {
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
    fn push(&mut self, bytes: &[u8]) {
        self.kept.push(bytes);
        if let Some(cb) = &self.callback {
            let text = self.text.push(bytes);
            if !text.is_empty() {
                let _ = cb.call1(&JsValue::NULL, &JsValue::from_str(&text));
            }
        }
    }

    /// Text output as a JS string: handed to the callback as is.
    fn push_text(&mut self, data: &JsValue) -> Result<()> {
        let text = super::types::utf8(data).ok_or_else(|| Error::Protocol("an output frame without text".into()))?;
        self.kept.push(&text);
        if let Some(cb) = &self.callback {
            let _ = cb.call1(&JsValue::NULL, data);
        }
        Ok(())
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

async fn run_exec(inner: &Inner, run: Run, cancel: &Cancel) -> Result<JsValue> {
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
    let session = Rc::new(open_session(inner, &spec, cancel).await?);
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
    // The cancellation closes the socket; the loop then ends on the close.
    cancel.on_cancel(session.closer());
    let completion = loop {
        match session.next().await {
            SocketEvent::Message(frame) => {
                let (kind, data) = frame_parts(&frame)?;
                match kind.as_str() {
                    // Text output: the callback gets the frame's own JS string, and only the kept
                    // output is copied into wasm.
                    "stdOut" if !base64 => out.push_text(&data)?,
                    "stdErr" if !base64 => err.push_text(&data)?,
                    _ => match interpret(raw_frame(&kind, &data)?, base64)? {
                        ExecEvent::Started { .. } => {}
                        ExecEvent::Stdout(b) => out.push(&b),
                        ExecEvent::Stderr(b) => err.push(&b),
                        ExecEvent::Completed(c) => {
                            session.close();
                            break c;
                        }
                    },
                }
            }
            SocketEvent::Closed { code, reason } => {
                if let Some(e) = cancel.error() {
                    return Err(e);
                }
                break session_end(None, code, &reason)?;
            }
        }
    };
    let (stdout, out_truncated) = out.finish();
    let (stderr, err_truncated) = err.finish();
    Ok(object(&[
        ("exitCode", JsValue::from(completion.exit_code)),
        ("status", JsValue::from_str(exec::status_name(completion.status))),
        ("stdout", JsValue::from(stdout)),
        ("stderr", JsValue::from(stderr)),
        ("truncated", JsValue::from(out_truncated || err_truncated)),
        ("durationMs", JsValue::from((js_sys::Date::now() - started).round())),
    ]))
}

/// Sends a `ReadableStream` as stdin, chunk by chunk, then the end of input.
async fn pump_stream(stream: web_sys::ReadableStream, session: &super::socket::Socket) -> Result<()> {
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    loop {
        let chunk = wasm_bindgen_futures::JsFuture::from(reader.read())
            .await
            .map_err(|e| Error::Invalid(super::errors::describe(&e)))?;
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
