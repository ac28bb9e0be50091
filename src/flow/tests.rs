//! The flows against an in-memory transport: a script of answers, taken in order, and a record
//! of every request. Every failure path of create, resume, files and exposePort, one file per
//! flow; this file holds the transport and what several of them share.

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
use crate::protocol::output_frame;
use crate::sandbox::PortOptions;
use crate::transport::{Incoming, Session};

mod create_test;
mod detached;
mod exec_test;
mod files_test;
mod lifecycle_test;
mod ports_test;

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
    /// How far the wall clock is set forward on each sleep, beyond the time slept.
    wall_jump_per_sleep: f64,
    /// The wall clock's jumps so far.
    wall_skew: f64,
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
        let frames: Vec<String> = frames.iter().map(Value::to_string).collect();
        self.session_of_text(&frames, close)
    }

    /// A session whose frames are these texts, as a server wrote them.
    fn session_of_text(self, frames: &[String], close: u16) -> Self {
        let mut incoming: Vec<Incoming> = frames.iter().map(|f| Incoming::Frame(f.clone().into_bytes())).collect();
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

    /// The wall clock is set forward by `ms` on every sleep (NTP, a laptop waking).
    fn wall_clock_jumps(self, ms: f64) -> Self {
        self.state.borrow_mut().wall_jump_per_sleep = ms;
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
        state.wall_skew += state.wall_jump_per_sleep;
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
        let state = self.state.borrow();
        1_000_000.0 + state.clock.unwrap_or(0.0) + state.wall_skew
    }

    fn monotonic_ms(&self) -> f64 {
        self.state.borrow().clock.unwrap_or(0.0)
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

fn sandbox() -> SandboxRef {
    SandboxRef {
        config: config(),
        id: "box".into(),
        volume_id: None,
    }
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
