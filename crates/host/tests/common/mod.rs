//! Shared harness: starts the real `flankbox-host` binary on a free port with its own data
//! directory, and talks to it over real HTTP and WebSockets.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub mod leaks;

pub const TOKEN: &str = "test-token";

/// Fails loudly when not root: these suites test real isolation, which needs root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this suite tests real isolation and must run as root (the README's test command does)"
    );
}

/// A running host process.
pub struct TestHost {
    pub base: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

impl TestHost {
    /// Starts a host with a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a host with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_program(&Self::program(), extra)
    }

    /// Starts another build of the host (the bench's A/B mode) with a fresh data directory.
    pub fn start_program(program: &Path, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut host = Self::spawn_program(program, &data_dir, extra);
        host._dir = Some(dir);
        host
    }

    /// The host binary: this build's, or FLANKBOX_TEST_HOST_BIN, a copy for a long run
    /// (scripts/soak) that must not pick up a rebuild half-way.
    fn program() -> PathBuf {
        std::env::var_os("FLANKBOX_TEST_HOST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_flankbox-host").into())
            .into()
    }

    fn spawn(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_program(&Self::program(), data_dir, extra)
    }

    fn spawn_program(program: &Path, data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--token", TOKEN])
            .args(extra)
            .env("RUST_LOG", "flankbox_host=debug")
            .env("HOST_ONLY_CANARY", "canary-7f3a")
            .stdout(Stdio::piped())
            // The host's log, only when asked for (FLANKBOX_TEST_LOG=1).
            .stderr(if std::env::var_os("FLANKBOX_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start flankbox-host");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let base = loop {
            let line = lines.next().expect("host exited before listening").unwrap();
            if let Some(addr) = line.strip_prefix("flankbox-host listening on ") {
                break addr.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            base,
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
            _dir: None,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the host with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Starts a new host process on the same data directory.
    pub fn restart(&mut self) {
        self.kill9();
        let fresh = Self::spawn(&self.data_dir, &[]);
        self.base = fresh.base.clone();
        self.child = fresh.into_child();
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// A REST call with the right token; returns status and JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with_token(method, path, body, TOKEN).await
    }

    pub async fn call_with_token(&self, method: &str, path: &str, body: Option<Value>, token: &str) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {text:?}"));
        (status, json)
    }

    /// Creates a service from `body`, asserting 200.
    pub async fn create(&self, project: &str, body: Value) -> Value {
        let (status, resp) = self
            .call(
                "POST",
                &format!("/v1/projects/{project}/services/deployment"),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{resp}");
        resp["data"].clone()
    }

    /// Polls a service until its rollout settles; returns the status.
    pub async fn wait_settled(&self, project: &str, service: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, resp) = self
                .call("GET", &format!("/v1/projects/{project}/services/{service}"), None)
                .await;
            assert_eq!(code, 200, "{resp}");
            let status = resp["data"]["status"]["deployment"]["status"]
                .as_str()
                .unwrap()
                .to_string();
            if status == "COMPLETED" || status == "FAILED" {
                return status;
            }
            assert!(Instant::now() < deadline, "service {service} stuck in {status}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Creates a sandbox like the guide does and waits until it runs.
    pub async fn sandbox(&self, project: &str, name: &str, extra: Value) -> String {
        let id = self.create_sandbox(project, name, extra).await;
        assert_eq!(self.wait_settled(project, &id).await, "COMPLETED");
        id
    }

    /// Creates a sandbox like the guide does, without waiting for it; returns its id.
    pub async fn create_sandbox(&self, project: &str, name: &str, extra: Value) -> String {
        let mut body = guide_body(name);
        merge(&mut body, extra);
        let created = self.create(project, body).await;
        created["id"].as_str().unwrap().to_string()
    }

    /// A sandbox whose main process is `command` (run by `/bin/sh -c`), once it runs.
    pub async fn sandbox_running(&self, project: &str, name: &str, command: &str) -> String {
        let extra = json!({ "deployment": { "docker": { "customCommand": command } } });
        self.sandbox(project, name, extra).await
    }

    /// Runs `script` with `bash -c` in a sandbox.
    pub async fn sh(&self, project: &str, service: &str, script: &str) -> ExecResult {
        self.exec(
            project,
            service,
            json!({ "command": ["bash", "-c", script], "shell": "none" }),
            &[],
        )
        .await
    }

    /// Runs an exec session: sends init with `context`, then `inputs`, then reads to the end.
    pub async fn exec(&self, project: &str, service: &str, context: Value, inputs: &[Value]) -> ExecResult {
        let mut session = self.open_exec(project, service, context, TOKEN).await;
        for m in inputs {
            session.send(m.clone()).await;
        }
        session.finish().await
    }

    pub async fn open_exec(&self, project: &str, service: &str, context: Value, token: &str) -> ExecSession {
        let url = format!(
            "{}/v1/command-exec/projects/{project}/services/{service}",
            self.ws_base()
        );
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("ws connect");
        let init = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": token }, "context": context } });
        // Binary, as the official SDK sends it.
        ws.send(Message::Binary(init.to_string().into_bytes().into()))
            .await
            .unwrap();
        ExecSession { ws, frames: Vec::new() }
    }
}

impl TestHost {
    /// Stops the host gracefully (SIGTERM), as Ctrl-C would; it ends its sandboxes first.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: SIGTERM to our own child, for a graceful stop that ends its sandboxes.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A create body as the guide writes it: one instance running `sleep infinity` on ubuntu.
pub fn guide_body(name: &str) -> Value {
    json!({
        "name": name,
        "billing": { "deploymentPlan": "nf-compute-200" },
        "deployment": {
            "instances": 1,
            "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
            "external": { "imagePath": "ubuntu:22.04" },
            "storage": { "ephemeralStorage": { "storageSize": 1024 } }
        }
    })
}

pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// An open exec session.
pub struct ExecSession {
    pub ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub frames: Vec<Value>,
}

/// What an exec produced.
#[derive(Debug, Default)]
pub struct ExecResult {
    pub frames: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
    pub status: Option<String>,
    pub error: Option<String>,
    pub close_code: Option<u16>,
    pub init: Option<Value>,
}

impl ExecSession {
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// Next frame, or None at close (the close code is recorded in `frames` as {"close": code}).
    pub async fn next(&mut self) -> Option<Value> {
        let msg = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
            .await
            .expect("exec frame within 60 s")?;
        match msg.ok()? {
            Message::Text(t) => Some(serde_json::from_str(&t).unwrap()),
            Message::Binary(b) => Some(serde_json::from_slice(&b).unwrap()),
            Message::Close(c) => Some(json!({ "close": c.map(|c| u16::from(c.code)) })),
            _ => Some(json!({ "other": true })),
        }
    }

    /// Reads until the server closes; collects output.
    pub async fn finish(mut self) -> ExecResult {
        let mut r = ExecResult::default();
        while let Some(f) = self.next().await {
            if f.get("other").is_some() {
                continue;
            }
            if let Some(code) = f.get("close") {
                r.close_code = code.as_u64().map(|c| c as u16);
                break;
            }
            match f["type"].as_str().unwrap_or("") {
                "init" => r.init = Some(f["data"].clone()),
                "stdOut" => r.stdout.push_str(f["data"].as_str().unwrap()),
                "stdErr" => r.stderr.push_str(f["data"].as_str().unwrap()),
                "completion" => {
                    r.exit_code = f["data"]["exitCode"].as_i64();
                    r.status = f["data"]["status"].as_str().map(String::from);
                }
                "error" => r.error = f["data"]["message"].as_str().map(String::from),
                other => panic!("unknown frame type {other}: {f}"),
            }
            r.frames.push(f);
        }
        let _ = self.ws.close(None).await;
        r
    }
}

/// The server the port tests and bench run in sandboxes: HTTP and a WebSocket echo on one port.
pub const PORT_SERVER: &str = include_str!("../../../../tests/fixtures/port-server.py");

/// A `customCommand` that writes [`PORT_SERVER`] into the sandbox (a new sandbox holds no
/// files of ours) and runs it on each of `ports`.
pub fn port_server_command(ports: &[u16]) -> String {
    use base64::Engine;
    let script = base64::engine::general_purpose::STANDARD.encode(PORT_SERVER);
    let servers: Vec<String> = ports
        .iter()
        .map(|p| format!("python3 /tmp/port-server.py {p}"))
        .collect();
    format!(
        "echo {script} | base64 -d > /tmp/port-server.py && {{ {}; }}",
        servers.join(" & ")
    )
}

/// A process's resident memory, in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
