//! Cancellation: a caller's `AbortSignal` and a timeout, merged into one `AbortController`
//! whose signal goes to `fetch`, and one future any await can race against. The futures wait on
//! wakers kept here, not on a JS promise: an await raced against the cancellation then costs no
//! promise, listener or closures in JS (a call makes several such awaits).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::Function;
use wasm_bindgen::prelude::*;
use web_sys::{AbortController, AbortSignal};

use crate::error::Error;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// Resolves after `ms` milliseconds.
pub(crate) async fn sleep(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms as f64);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Why a call was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Aborted,
    TimedOut,
}

/// What a cancellation sets off, shared with the timer's and the signal's callbacks.
#[derive(Default)]
struct Shared {
    reason: Cell<Option<Reason>>,
    /// Made when `fetch` asks for a signal: a call over a socket needs none (its hook closes
    /// the socket), and making one costs each exec a JS object.
    controller: RefCell<Option<AbortController>>,
    /// Called once, on cancellation.
    hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// The tasks waiting in [`Cancel::cancelled`], woken on cancellation.
    waiting: RefCell<Vec<Waker>>,
}

impl Shared {
    /// Cancels for `reason` (unless already cancelled): aborts `fetch`, runs the hooks and
    /// wakes the waiting tasks.
    fn cancel(&self, reason: Reason) {
        if self.reason.get().is_some() {
            return;
        }
        self.reason.set(Some(reason));
        if let Some(controller) = &*self.controller.borrow() {
            controller.abort();
        }
        let hooks = std::mem::take(&mut *self.hooks.borrow_mut());
        for hook in hooks {
            hook();
        }
        for waker in std::mem::take(&mut *self.waiting.borrow_mut()) {
            waker.wake();
        }
    }
}

/// The cancellation of one call.
pub(crate) struct Cancel {
    shared: Rc<Shared>,
    what: String,
    timeout_ms: u64,
    timer: Option<JsValue>,
    _on_timeout: Option<Closure<dyn FnMut()>>,
    user_signal: Option<(AbortSignal, Closure<dyn FnMut()>)>,
}

impl Cancel {
    /// Cancellation by `signal` (if any) or after `timeout_ms` (if any).
    pub(crate) fn new(what: &str, signal: Option<AbortSignal>, timeout_ms: Option<u64>) -> Self {
        let mut cancel = Self {
            shared: Rc::default(),
            what: what.into(),
            timeout_ms: timeout_ms.unwrap_or(0),
            timer: None,
            _on_timeout: None,
            user_signal: None,
        };
        if let Some(signal) = signal {
            if signal.aborted() {
                cancel.shared.cancel(Reason::Aborted);
            } else {
                let shared = cancel.shared.clone();
                let on_abort = Closure::<dyn FnMut()>::new(move || shared.cancel(Reason::Aborted));
                let _ = signal.add_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
                cancel.user_signal = Some((signal, on_abort));
            }
        }
        if let Some(ms) = timeout_ms.filter(|ms| *ms > 0) {
            let shared = cancel.shared.clone();
            let on_timeout = Closure::<dyn FnMut()>::new(move || shared.cancel(Reason::TimedOut));
            cancel.timer = Some(set_timeout(on_timeout.as_ref().unchecked_ref(), ms as f64));
            cancel._on_timeout = Some(on_timeout);
        }
        cancel
    }

    /// The signal to hand to `fetch`: aborted already if the call is.
    pub(crate) fn signal(&self) -> Result<AbortSignal, Error> {
        let mut slot = self.shared.controller.borrow_mut();
        if let Some(controller) = &*slot {
            return Ok(controller.signal());
        }
        let controller = AbortController::new().map_err(|e| Error::Protocol(super::errors::describe(&e)))?;
        if self.shared.reason.get().is_some() {
            controller.abort();
        }
        Ok(slot.insert(controller).signal())
    }

    /// The error for this cancellation, once it happened.
    pub(crate) fn error(&self) -> Option<Error> {
        self.shared.reason.get().map(|r| match r {
            Reason::Aborted => Error::Aborted(self.what.clone()),
            Reason::TimedOut => Error::Timeout {
                what: self.what.clone(),
                ms: self.timeout_ms,
            },
        })
    }

    /// Calls `hook` when the call is cancelled (at once if it already is). Streams use it to
    /// close their socket, rather than race every frame against the cancellation.
    pub(crate) fn on_cancel(&self, hook: impl FnOnce() + 'static) {
        if self.shared.reason.get().is_some() {
            hook();
        } else {
            self.shared.hooks.borrow_mut().push(Box::new(hook));
        }
    }

    /// Resolves when the call is cancelled, with the error to report.
    pub(crate) async fn cancelled(&self) -> Error {
        if self.timer.is_none() && self.user_signal.is_none() && self.error().is_none() {
            // Nothing can cancel this call: keep no wakers for it.
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            if let Some(e) = self.error() {
                return Poll::Ready(e);
            }
            let mut waiting = self.shared.waiting.borrow_mut();
            // The awaits of one task share its waker: one entry each, however many of them.
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Waits `ms` milliseconds, unless the call is cancelled first.
    pub(crate) async fn sleep(&self, ms: u64) -> Result<(), Error> {
        self.run(async {
            sleep(ms).await;
            Ok(())
        })
        .await
    }

    /// Runs `fut` unless the call is cancelled first.
    pub(crate) async fn run<T>(&self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        match race(fut, self.cancelled()).await {
            Either::Left(r) => r,
            Either::Right(e) => Err(e),
        }
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(t) = &self.timer {
            clear_timeout(t);
        }
        if let Some((signal, on_abort)) = &self.user_signal {
            let _ = signal.remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
        }
    }
}

/// Which of two futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls two futures until one finishes; the other is dropped.
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    struct Race<A, B> {
        a: Pin<Box<A>>,
        b: Pin<Box<B>>,
    }
    impl<A: Future, B: Future> Future for Race<A, B> {
        type Output = Either<A::Output, B::Output>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(v) = self.a.as_mut().poll(cx) {
                return Poll::Ready(Either::Left(v));
            }
            if let Poll::Ready(v) = self.b.as_mut().poll(cx) {
                return Poll::Ready(Either::Right(v));
            }
            Poll::Pending
        }
    }
    Race {
        a: Box::pin(a),
        b: Box::pin(b),
    }
    .await
}
