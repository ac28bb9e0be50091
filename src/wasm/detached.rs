//! A detached process behind a `SandboxProcess`: a background task follows it across attaches
//! (the core's `flow::detached::follow`, resuming after drops) and feeds its output into the
//! handle's streams; `write` queues input for whichever attach is current.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::cancel::Cancel;
use super::process::{Feed, SandboxProcess};
use super::transport::Web;
use crate::error::{Error, Result};
use crate::flow::detached::{Start, Written};
use crate::flow::{self, SandboxRef};
use crate::protocol::detached::{Chunk, Delivery, Follower, Offsets, Stream};
use crate::protocol::exec::{Completion, CompletionStatus};

/// Time a kill may take, ms.
const KILL_TIMEOUT_MS: u64 = 30_000;

/// A detached process as a handle sees it.
pub(crate) struct Detached {
    pub(crate) id: String,
    sandbox: Rc<SandboxRef>,
    pub(crate) stdout: Feed,
    pub(crate) stderr: Feed,
    /// Input for the follower; dropping it closes the process's stdin.
    input: RefCell<Option<mpsc::UnboundedSender<Written>>>,
}

/// How the follower resumes.
pub(crate) struct FollowOptions {
    /// Where the output starts, per stream.
    pub(crate) from: Offsets,
    /// Strings rather than bytes.
    pub(crate) utf8: bool,
    /// How long to keep reconnecting after a drop.
    pub(crate) resume_within_ms: u64,
}

impl Detached {
    /// A handle of process `id`, followed from `options.from` until it ends.
    pub(crate) fn follow(sandbox: Rc<SandboxRef>, id: String, options: FollowOptions) -> Result<SandboxProcess> {
        Self::start(sandbox, id, options, None)
    }

    /// Starts a process with `run_argv` (a `run` command of process `id`) and a handle that
    /// follows it live; resolves once it is starting, or rejects with why it could not.
    pub(crate) async fn run(
        sandbox: Rc<SandboxRef>,
        id: String,
        run_argv: Vec<String>,
        options: FollowOptions,
    ) -> Result<SandboxProcess> {
        let (tx, rx) = oneshot::channel();
        let process = Self::start(sandbox, id, options, Some((run_argv, tx)))?;
        rx.await
            .unwrap_or_else(|_| Err(Error::Protocol("the detached process's task ended".into())))?;
        Ok(process)
    }

    fn start(
        sandbox: Rc<SandboxRef>,
        id: String,
        options: FollowOptions,
        run_with: Option<(Vec<String>, oneshot::Sender<Result<()>>)>,
    ) -> Result<SandboxProcess> {
        let follower = Follower::new(&id, options.from, options.utf8)?;
        let (tx, rx) = mpsc::unbounded();
        let process = Rc::new(Detached {
            id,
            sandbox,
            stdout: Feed::new()?,
            stderr: Feed::new()?,
            input: RefCell::new(Some(tx)),
        });
        let mut settle: Option<(Function, Function)> = None;
        let exit = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let (resolve, reject) = settle.ok_or_else(|| Error::Protocol("Promise did not start".into()))?;
        wasm_bindgen_futures::spawn_local(run(
            process.clone(),
            follower,
            rx,
            options.resume_within_ms,
            run_with,
            resolve,
            reject,
        ));
        Ok(SandboxProcess::detached(process, exit))
    }

    /// Queues input; it goes out on the current connection, or the next one after a drop. The
    /// future resolves once it is sent, so a writer that awaits each write is held back while
    /// the connection is slow or being resumed, as with a plain exec.
    pub(crate) fn write(&self, data: Vec<u8>) -> impl std::future::Future<Output = Result<()>> {
        let (sent, on_sent) = oneshot::channel();
        let queued = match &*self.input.borrow() {
            Some(tx) => tx
                .unbounded_send(Written {
                    bytes: data,
                    sent: Some(sent),
                })
                .is_ok(),
            None => false,
        };
        async move {
            if !queued {
                return Err(Error::Invalid("stdin is closed".into()));
            }
            // A process that ended (or a follower that gave up) drops what was left unsent.
            on_sent
                .await
                .map_err(|_| Error::StreamLost("the input was not sent: the process's connection ended".into()))
        }
    }

    /// Closes the process's stdin once the queued input is out.
    pub(crate) fn close_stdin(&self) {
        self.input.borrow_mut().take();
    }

    /// Sends `SIGKILL` to the process's group; resolves once it is sent.
    pub(crate) fn kill(&self) -> Promise {
        let (sandbox, id) = (self.sandbox.clone(), self.id.clone());
        super::api::promise(async move {
            let sent = async {
                let t = Web::new(Cancel::new("kill", None, Some(KILL_TIMEOUT_MS)));
                flow::detached::signal(&t, &sandbox, &id, "KILL").await
            };
            sent.await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// What `wait()` resolves to for an exit code, or for an exit whose code was lost.
fn exit_info(code: Option<i32>) -> Completion {
    match code {
        Some(code) => Completion {
            exit_code: code,
            status: if code == 0 {
                CompletionStatus::Success
            } else {
                CompletionStatus::Failure
            },
            message: None,
        },
        None => Completion {
            exit_code: Completion::NO_EXIT_CODE,
            status: CompletionStatus::Unknown,
            message: Some("the process's supervisor ended before recording its exit code".into()),
        },
    }
}

/// Follows the process to its end, then closes the streams and settles `wait()`.
async fn run(
    process: Rc<Detached>,
    mut follower: Follower,
    input: mpsc::UnboundedReceiver<Written>,
    resume_within_ms: u64,
    run_with: Option<(Vec<String>, oneshot::Sender<Result<()>>)>,
    resolve: Function,
    reject: Function,
) {
    let mut deliver = |delivery: Delivery| {
        if let Delivery::Output(stream, chunk) = delivery {
            let feed = match stream {
                Stream::Stdout => &process.stdout,
                Stream::Stderr => &process.stderr,
            };
            feed.enqueue(&match chunk {
                Chunk::Bytes(bytes) => Uint8Array::from(bytes.as_slice()).into(),
                Chunk::Text(text) => JsValue::from_str(&text),
            });
        }
    };
    let outcome = async {
        // No timeout: the process may run for days; a drop is resumed within its window.
        let t = Web::new(Cancel::new("detached process", None, None));
        let (argv, mut told) = run_with.unzip();
        let mut tell = |started: Result<()>| {
            if let Some(told) = told.take() {
                let _ = told.send(started);
            }
        };
        let start = match argv {
            Some(argv) => Start::Run {
                argv,
                started: &mut tell,
            },
            None => Start::Attach,
        };
        flow::detached::follow(
            &t,
            &process.sandbox,
            &mut follower,
            resume_within_ms,
            start,
            Some(input),
            &mut deliver,
        )
        .await
    }
    .await;
    process.stdout.close();
    process.stderr.close();
    let _ = match outcome {
        Ok(code) => resolve.call1(&JsValue::NULL, &super::types::to_js(&exit_info(code))),
        Err(e) => reject.call1(&JsValue::NULL, &JsValue::from(e)),
    };
}
