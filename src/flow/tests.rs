//! The flows against an in-memory transport: a script of answers, taken in order, and a record
//! of every request. Every failure path of create, resume, files and exposePort.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use serde_json::{json, Value};

use super::*;
use crate::sandbox::PortOptions;
use crate::transport::{Incoming, Session};

#[path = "detached_tests.rs"]
mod detached;

/// Runs a future that never waits on anything outside memory.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory flow waited"),
    }
}

/// One request as the transport saw it.
#[derive(Debug, Clone)]
struct Seen {
    token: String,
    method: &'static str,
    path: String,
    body: Option<Value>,
    cleanup: bool,
    keepalive: bool,
}

#[derive(Default)]
struct State {
    answers: VecDeque<(u16, Value)>,
    seen: Vec<Seen>,
    sessions: VecDeque<Vec<Incoming>>,
    sent: Vec<Value>,
    /// Sleeps allowed before the call times out.
    sleeps_left: Option<usize>,
    /// With a running clock, ms slept so far (otherwise time stands still).
    clock: Option<f64>,
}

#[derive(Clone)]
struct Memory {
    state: Rc<RefCell<State>>,
    cleanup: bool,
    timed_out: Rc<RefCell<bool>>,
}

impl Memory {
    fn new() -> Self {
        Self {
            state: Rc::default(),
            cleanup: false,
            timed_out: Rc::default(),
        }
    }

    /// Answers the next request with `status` and `body`.
    fn answer(self, status: u16, body: Value) -> Self {
        self.state.borrow_mut().answers.push_back((status, body));
        self
    }

    /// Answers the next request with `{"data": data}`.
    fn ok(self, data: Value) -> Self {
        self.answer(200, json!({ "data": data }))
    }

    fn service(self, status: &str, instances: u32) -> Self {
        self.ok(
            json!({ "id": "s", "servicePaused": false, "deployment": { "instances": instances },
            "status": { "deployment": { "status": status } } }),
        )
    }

    /// The next exec session receives these frames, then a close.
    fn session(self, frames: &[Value], close: u16) -> Self {
        let mut incoming: Vec<Incoming> = frames
            .iter()
            .map(|f| Incoming::Frame(f.to_string().into_bytes()))
            .collect();
        incoming.push(Incoming::Closed {
            code: close,
            reason: String::new(),
        });
        self.state.borrow_mut().sessions.push_back(incoming);
        self
    }

    fn time_out_after_sleeps(self, n: usize) -> Self {
        self.state.borrow_mut().sleeps_left = Some(n);
        self
    }

    /// Time moves on by what is slept.
    fn clock_runs(self) -> Self {
        self.state.borrow_mut().clock = Some(0.0);
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.borrow().seen.clone()
    }

    fn calls(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{}{} {}", if s.cleanup { "cleanup " } else { "" }, s.method, s.path))
            .collect()
    }
}

struct MemorySession {
    incoming: VecDeque<Incoming>,
    state: Rc<RefCell<State>>,
}

impl Stream for MemorySession {
    type Item = Incoming;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Incoming>> {
        Poll::Ready(self.incoming.pop_front())
    }
}

impl Sink<String> for MemorySession {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, frame: String) -> Result<()> {
        self.state.borrow_mut().sent.push(serde_json::from_str(&frame).unwrap());
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Session for MemorySession {
    fn end(&mut self) {}
}

impl Transport for Memory {
    type Session = MemorySession;

    async fn fetch(&self, config: &ClientConfig, req: &ApiRequest) -> Result<(u16, String)> {
        let mut state = self.state.borrow_mut();
        state.seen.push(Seen {
            token: config.token.clone(),
            method: req.method.as_str(),
            path: req.path.clone(),
            body: req.body.as_deref().map(|b| serde_json::from_str(b).unwrap()),
            cleanup: self.cleanup,
            keepalive: req.keepalive,
        });
        let (status, body) = state
            .answers
            .pop_front()
            .unwrap_or_else(|| panic!("no answer scripted for {} {}", req.method.as_str(), req.path));
        Ok((status, body.to_string()))
    }

    async fn open(&self, _url: &str) -> Result<MemorySession> {
        let frames = self.state.borrow_mut().sessions.pop_front();
        match frames {
            Some(frames) => Ok(MemorySession {
                incoming: frames.into(),
                state: self.state.clone(),
            }),
            None => Err(Error::Network("cannot connect".into())),
        }
    }

    async fn sleep(&self, ms: u64) -> Result<()> {
        let mut state = self.state.borrow_mut();
        if let Some(clock) = &mut state.clock {
            *clock += ms as f64;
        }
        match &mut state.sleeps_left {
            Some(0) => {
                *self.timed_out.borrow_mut() = true;
                Err(self.cancelled().unwrap())
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn random(&self) -> f64 {
        0.5
    }

    fn now_ms(&self) -> f64 {
        1_000_000.0 + self.state.borrow().clock.unwrap_or(0.0)
    }

    fn cancelled(&self) -> Option<Error> {
        self.timed_out.borrow().then(|| Error::Timeout {
            what: "test".into(),
            ms: 1,
        })
    }

    fn for_cleanup(&self) -> Result<Self> {
        Ok(Self {
            state: self.state.clone(),
            cleanup: true,
            timed_out: Rc::default(),
        })
    }
}

fn config() -> ClientConfig {
    ClientConfig::new("tok".into(), "p".into(), None, Some("http://127.0.0.1:7420".into())).unwrap()
}

fn options(v: Value) -> SandboxOptions {
    serde_json::from_value(v).unwrap()
}

/// Runs `create`, returning its outcome and the steps it reported.
fn create_with(t: &Memory, opts: Value) -> (Result<SandboxRef>, Vec<Progress>) {
    let mut steps = Vec::new();
    let mut sink = |p: Progress| steps.push(p);
    let mut reporter = Reporter::new(t, &mut sink);
    let result = run(create(t, &config(), &options(opts), &mut reporter));
    (result, steps)
}

use crate::sandbox::SandboxOptions;

fn refused(what: &str) -> Value {
    json!({ "error": { "status": 400, "message": what } })
}

#[test]
fn create_makes_the_volume_then_the_service_then_scales_and_waits() {
    let t = Memory::new()
        .ok(json!({ "id": "data-box" }))
        .ok(json!({ "id": "box" }))
        .ok(json!({}))
        .service("IN_PROGRESS", 1)
        .service("COMPLETED", 1);
    let (made, steps) = create_with(
        &t,
        json!({ "name": "box", "volume": { "sizeMb": 1024, "mountPaths": ["/w"] } }),
    );
    let made = made.unwrap();
    assert_eq!((made.id.as_str(), made.volume_id.as_deref()), ("box", Some("data-box")));
    assert_eq!(
        t.calls(),
        [
            "POST /v1/projects/p/volumes",
            "POST /v1/projects/p/services/deployment",
            "POST /v1/projects/p/services/box/scale",
            "GET /v1/projects/p/services/box",
            "GET /v1/projects/p/services/box",
        ]
    );
    assert_eq!(
        t.seen()[1].body.as_ref().unwrap()["createOptions"]["volumesToAttach"],
        json!(["data-box"])
    );
    let names: Vec<_> = steps.iter().map(|s| (s.step, s.status.clone())).collect();
    assert_eq!(
        names,
        [
            ("creating-volume", None),
            ("creating", None),
            ("starting", None),
            ("waiting", Some("IN_PROGRESS".into())),
            ("ready", None)
        ]
    );
    assert_eq!(steps[2].id.as_deref(), Some("box"));
    assert_eq!(steps[2].capability, None);
}

#[test]
fn a_refused_volume_ends_create_with_nothing_to_clean() {
    let t = Memory::new().answer(400, refused("spec.storageSize: too small"));
    let (made, _) = create_with(&t, json!({ "volume": { "sizeMb": 1, "mountPaths": ["/w"] } }));
    assert_eq!(made.unwrap_err().to_string(), "spec.storageSize: too small");
    assert_eq!(t.calls(), ["POST /v1/projects/p/volumes"]);
}

#[test]
fn a_refused_service_deletes_the_volume_made_for_it() {
    let t = Memory::new()
        .ok(json!({ "id": "data-box" }))
        .answer(409, refused("a service named box exists"))
        .ok(json!({}));
    let (made, _) = create_with(
        &t,
        json!({ "name": "box", "volume": { "sizeMb": 1024, "mountPaths": ["/w"] } }),
    );
    assert_eq!(made.unwrap_err().code(), "CONFLICT");
    assert_eq!(
        t.calls()[2],
        "cleanup DELETE /v1/projects/p/volumes/data-box",
        "the volume goes, with a transport of its own"
    );
}

#[test]
fn a_failed_scale_or_deployment_deletes_the_service() {
    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .answer(500, refused("scale failed"))
        .ok(json!({}));
    let (made, _) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "SERVER_ERROR");
    assert_eq!(
        t.calls()[2],
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );

    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .ok(json!({}))
        .service("FAILED", 1)
        .ok(json!({}));
    let (made, _) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "DEPLOYMENT_FAILED");
    assert_eq!(
        t.calls()[3],
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );
}

#[test]
fn a_create_that_times_out_deletes_the_service_despite_the_timeout() {
    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .ok(json!({}))
        .service("PENDING", 1)
        .service("IN_PROGRESS", 1)
        .ok(json!({}))
        .time_out_after_sleeps(1);
    let (made, steps) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "TIMEOUT");
    assert_eq!(
        t.calls().last().unwrap(),
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );
    assert_eq!(steps.iter().filter(|s| s.step == "waiting").count(), 2);
}

#[test]
fn through_an_edge_proxy_the_answer_names_the_sandbox_and_carries_its_capability() {
    let t = Memory::new()
        .ok(json!({ "id": "fbx-123", "capability": "cap.abc" }))
        .answer(503, refused("no capacity"))
        .ok(json!({}));
    let (made, steps) = create_with(&t, json!({}));
    assert_eq!(made.unwrap_err().code(), "SERVER_ERROR");
    let seen = t.seen();
    assert_eq!(seen[0].token, "tok");
    assert_eq!(
        (seen[1].path.as_str(), seen[1].token.as_str()),
        ("/v1/projects/p/services/fbx-123/scale", "cap.abc")
    );
    assert_eq!(
        (seen[2].cleanup, seen[2].token.as_str()),
        (true, "cap.abc"),
        "the clean-up uses the capability"
    );
    let starting = steps.iter().find(|s| s.step == "starting").unwrap();
    assert_eq!(
        (starting.id.as_deref(), starting.capability.as_deref()),
        (Some("fbx-123"), Some("cap.abc"))
    );
}

#[test]
fn bad_options_fail_before_any_request() {
    let t = Memory::new();
    let (made, _) = create_with(&t, json!({ "ports": [{ "port": 80, "protocol": "FTP" }] }));
    assert_eq!(made.unwrap_err().code(), "INVALID_ARGUMENT");
    assert!(t.calls().is_empty());
}

fn sandbox() -> SandboxRef {
    SandboxRef {
        config: config(),
        id: "box".into(),
        volume_id: None,
    }
}

fn resume_with(t: &Memory) -> (Result<()>, Vec<Progress>) {
    let mut steps = Vec::new();
    let mut sink = |p: Progress| steps.push(p);
    let mut reporter = Reporter::new(t, &mut sink);
    let result = run(resume(t, &sandbox(), &mut reporter));
    (result, steps)
}

#[test]
fn resume_scales_and_waits_and_reports_each_failure() {
    let t = Memory::new()
        .ok(json!({}))
        .service("COMPLETED", 0)
        .service("COMPLETED", 1);
    let (done, steps) = resume_with(&t);
    done.unwrap();
    assert_eq!(steps.len(), 1, "one waiting step: {steps:?}");
    let t = Memory::new().answer(404, refused("Service box not found"));
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "NOT_FOUND");
    let t = Memory::new().ok(json!({})).service("FAILED", 1);
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "DEPLOYMENT_FAILED");
    let t = Memory::new()
        .ok(json!({}))
        .service("PENDING", 1)
        .time_out_after_sleeps(0);
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "TIMEOUT");
    assert!(
        t.calls().iter().all(|c| !c.starts_with("cleanup")),
        "a resume deletes nothing"
    );
}

#[test]
fn pause_waits_until_the_rollout_settles_and_destroy_can_outlive_the_page() {
    let t = Memory::new()
        .ok(json!({}))
        .service("IN_PROGRESS", 0)
        .service("COMPLETED", 0);
    run(pause(&t, &sandbox())).unwrap();
    assert_eq!(t.seen()[0].body, Some(json!({ "instances": 0 })));
    let t = Memory::new().ok(json!({}));
    run(destroy(&t, &sandbox(), true, true)).unwrap();
    let seen = &t.seen()[0];
    assert_eq!(
        (seen.path.as_str(), seen.keepalive),
        ("/v1/projects/p/services/box?delete_child_objects=true", true)
    );
}

fn port(port: u32, protocol: Option<&str>) -> PortOptions {
    PortOptions {
        port,
        protocol: protocol.map(str::to_string),
        public: None,
        name: None,
    }
}

#[test]
fn expose_port_replaces_its_number_and_name_keeps_the_rest_and_polls_for_the_name() {
    let t = Memory::new()
        .ok(json!({ "ports": [
            { "id": "a", "name": "p8080", "internalPort": 9000, "protocol": "HTTP", "public": true },
            { "id": "b", "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": true },
            { "id": "c", "name": "db", "internalPort": 5432, "protocol": "TCP", "public": false }
        ] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 8080, "name": "p8080" }] }))
        .ok(json!({ "ports": [{ "internalPort": 8080, "name": "p8080", "dns": "p8080--box.localhost:7420" }] }));
    let url = run(expose_port(&t, &sandbox(), &port(8080, None))).unwrap();
    assert_eq!(url.as_deref(), Some("http://p8080--box.localhost:7420"));
    let posted = t.seen()[1].body.clone().unwrap();
    let kept: Vec<_> = posted["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].clone(), p["name"].clone()))
        .collect();
    assert_eq!(kept, [(json!("c"), json!("db")), (Value::Null, json!("p8080"))]);
}

#[test]
fn expose_port_failures() {
    // A private HTTP port gets no name: nothing to wait for.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 80, "name": "p80" }] }));
    let private = PortOptions {
        public: Some(false),
        ..port(80, None)
    };
    assert_eq!(run(expose_port(&t, &sandbox(), &private)).unwrap(), None);
    // An unknown protocol is refused before any request.
    let t = Memory::new();
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, Some("FTP"))))
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    assert!(t.calls().is_empty());
    // The update refused.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .answer(400, refused("ports[0].name: too long"));
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, None))).unwrap_err().code(),
        "BAD_REQUEST"
    );
    // A public name that never comes: the call's timeout.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 80, "name": "p80" }] }))
        .time_out_after_sleeps(0);
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, None))).unwrap_err().code(),
        "TIMEOUT"
    );
}

fn b64(s: &str) -> String {
    crate::base64::encode(s.as_bytes())
}

fn started() -> Value {
    json!({ "type": "init", "data": { "auth": "successful", "context": { "instanceName": "i", "containerName": "main" } } })
}

fn completion(code: i32) -> Value {
    json!({ "type": "completion", "data": { "exitCode": code, "status": if code == 0 { "Success" } else { "Failure" } } })
}

#[test]
fn a_file_operation_sends_its_input_and_resolves_to_its_output() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": b64("file ") }),
            json!({ "type": "stdOut", "data": b64("bytes") }),
            completion(0),
        ],
        1000,
    );
    let out = run(file_op(&t, &sandbox(), vec!["cat".into()], b"input")).unwrap();
    assert_eq!(out, b"file bytes");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["type"], "init");
    assert_eq!(sent[0]["data"]["context"]["encoding"], "base64");
    assert_eq!(sent[1], json!({ "type": "payload", "data": b64("input") }));
    assert_eq!(sent[2], json!({ "type": "stdInEnd" }));
}

#[test]
fn file_operation_failures() {
    let fail = |frames: &[Value], close: u16| {
        let t = Memory::new().session(frames, close);
        run(file_op(&t, &sandbox(), vec!["cat".into()], b"")).unwrap_err()
    };
    let e = fail(
        &[
            started(),
            json!({ "type": "stdErr", "data": b64("cat: /x: No such file\n") }),
            completion(1),
        ],
        1000,
    );
    assert_eq!(
        (e.code(), e.to_string()),
        ("EXEC_FAILED", "cat: /x: No such file".to_string())
    );
    assert_eq!(fail(&[started(), completion(2)], 1000).to_string(), "exit code 2");
    let lost = fail(&[started(), json!({ "type": "stdOut", "data": b64("half") })], 1006);
    assert_eq!(lost.code(), "STREAM_LOST");
    assert!(lost.to_string().contains("1006"));
    let refused = fail(
        &[json!({ "type": "error", "data": { "message": "Service box is paused" } })],
        1011,
    );
    assert_eq!(
        (refused.code(), refused.to_string()),
        ("EXEC_FAILED", "Service box is paused".to_string())
    );
    let denied = fail(
        &[json!({ "type": "init", "data": { "auth": "failed", "message": "invalid token" } })],
        1008,
    );
    assert_eq!(denied.code(), "UNAUTHENTICATED");
    assert_eq!(fail(&[json!({ "type": "stdOut" })], 1000).code(), "PROTOCOL");
    // No session at all.
    let t = Memory::new();
    assert_eq!(
        run(file_op(&t, &sandbox(), vec!["cat".into()], b""))
            .unwrap_err()
            .code(),
        "NETWORK"
    );
}

/// Runs `exec` with the given stdin; the result, and the text each callback got.
fn exec_with<S>(t: &Memory, stdin: exec::Stdin<S>, limit: usize) -> (Result<crate::exec::ExecResult>, String, String)
where
    S: Stream<Item = Result<Vec<u8>>> + Unpin,
{
    let (mut out, mut err) = (String::new(), String::new());
    let mut on_out = |s: &str| out.push_str(s);
    let mut on_err = |s: &str| err.push_str(s);
    let result = run(exec::run(
        t,
        &sandbox(),
        vec!["sh".into()],
        stdin,
        exec::Output::new(limit, Some(&mut on_out)),
        exec::Output::new(limit, Some(&mut on_err)),
    ));
    (result, out, err)
}

type NoStream = futures_util::stream::Empty<Result<Vec<u8>>>;

#[test]
fn exec_streams_text_output_to_the_callbacks_and_keeps_it() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": "héllo " }),
            json!({ "type": "stdErr", "data": "warn" }),
            json!({ "type": "stdOut", "data": "world" }),
            completion(3),
        ],
        1000,
    );
    let (result, out, err) = exec_with::<NoStream>(&t, exec::Stdin::Closed, 1 << 20);
    let result = result.unwrap();
    assert_eq!(
        (result.exit_code, result.stdout.as_str(), result.stderr.as_str()),
        (3, "héllo world", "warn")
    );
    assert_eq!((out.as_str(), err.as_str()), ("héllo world", "warn"));
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["data"]["context"].get("encoding"), None, "text frames");
    assert_eq!(sent[1], json!({ "type": "stdInEnd" }));
}

#[test]
fn binary_input_asks_for_base64_and_output_past_the_limit_keeps_head_and_tail() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": b64("0123456789") }),
            completion(0),
        ],
        1000,
    );
    let (result, out, _) = exec_with::<NoStream>(&t, exec::Stdin::Bytes(vec![0xff, 0]), 4);
    let result = result.unwrap();
    assert!(result.truncated);
    assert_eq!(result.stdout, "01\n[… 6 bytes truncated …]\n89");
    assert_eq!(out, "0123456789", "the callback gets everything");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["data"]["context"]["encoding"], "base64");
    assert_eq!(
        sent[1],
        json!({ "type": "payload", "data": crate::base64::encode(&[0xff, 0]) })
    );
}

#[test]
fn exec_failures() {
    // A dropped connection is a lost stream, never an exit.
    let t = Memory::new().session(&[started(), json!({ "type": "stdOut", "data": "half" })], 1006);
    let (result, out, _) = exec_with::<NoStream>(&t, exec::Stdin::Closed, 100);
    assert_eq!(result.unwrap_err().code(), "STREAM_LOST");
    assert_eq!(out, "half");
    // A failed input stream ends the session (no end of input is sent), which the exec reports.
    let t = Memory::new().session(&[started()], 1000);
    let failing = futures_util::stream::iter([Ok(b"a".to_vec()), Err(Error::Invalid("the stream broke".into()))]);
    let (result, _, _) = exec_with(&t, exec::Stdin::Stream(failing), 100);
    assert_eq!(result.unwrap_err().code(), "STREAM_LOST");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent.len(), 2, "init and the first chunk, no stdInEnd: {sent:?}");
    // The server refuses: an exec error, not an exit.
    let t = Memory::new().session(
        &[json!({ "type": "error", "data": { "message": "Service box is paused" } })],
        1011,
    );
    assert_eq!(
        exec_with::<NoStream>(&t, exec::Stdin::Closed, 100)
            .0
            .unwrap_err()
            .code(),
        "EXEC_FAILED"
    );
}

#[test]
fn text_output_is_checked_fast_and_replaced_only_where_broken() {
    assert!(matches!(
        exec::as_text("héllo".as_bytes()),
        std::borrow::Cow::Borrowed("héllo")
    ));
    assert_eq!(exec::as_text(b"a\xffb"), "a\u{fffd}b");
}
