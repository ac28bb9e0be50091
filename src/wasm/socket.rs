//! A WebSocket as the core's exec [`Session`]: a `Stream` of frames and a `Sink` whose readiness
//! is the backpressure on input, over the global `WebSocket` (browsers, Workers, Node 22; Node 20
//! gets one from the package's Node entry).
//!
//! Not gloo-net's `futures::WebSocket`, though it has the same shape: its `Sink` is ready as soon
//! as the socket is open, whatever `bufferedAmount` holds, so a large stdin would pile up in
//! memory (here it waits while more than 1 MiB is queued); and it copies a text frame with
//! wasm-bindgen's character-at-a-time string passing, which cost a third of the stdout
//! throughput when the client did the same (199 MB/s against 313 MB/s with `encodeInto`).

use std::cell::RefCell;
use std::rc::Rc;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_channel::mpsc;
use futures_core::Stream;
use futures_sink::Sink;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::cancel::{set_timeout, sleep, Cancel};
use super::errors::describe;
use super::types::bytes;
use crate::error::{Error, Result};
use crate::transport::{Incoming, Session};

/// Input queued past this waits (backpressure on stdin).
const QUEUED_MAX: u32 = 1 << 20;

/// `onmessage` gets `(event, undefined)`; the `ws` package's own "message" event `(data, isBinary)`.
type Handlers = (
    Closure<dyn FnMut(JsValue, JsValue)>,
    Closure<dyn FnMut(CloseEvent)>,
    Closure<dyn FnMut(JsValue)>,
    Closure<dyn FnMut()>,
);

/// What the socket's callbacks hand over, in order: the open (once, first), then what the core
/// reads. The open comes through the same channel as the rest, so that waiting for it takes no
/// promise, and a close before it is seen as one.
enum Event {
    Open,
    Incoming(Incoming),
}

/// A method (`on`, `removeListener`) of the `ws` package's socket, where the socket is one (Node
/// 20, through the package's Node entry). Its `onmessage` hands a text frame over decoded into a
/// string, which would be encoded back into wasm here; its own "message" event has the frame's
/// bytes, copied into wasm as they are.
fn node_ws_listener(ws: &WebSocket, method: &str) -> Option<js_sys::Function> {
    js_sys::Reflect::get(ws, &method.into()).ok()?.dyn_into().ok()
}

/// An open WebSocket. Dropping it closes the connection.
pub(crate) struct Socket {
    ws: WebSocket,
    events: RefCell<mpsc::UnboundedReceiver<Event>>,
    _handlers: Handlers,
    closed: Rc<RefCell<bool>>,
}

impl Socket {
    /// Opens `url` and waits until it is open.
    pub(crate) async fn open(url: &str, cancel: &Cancel) -> Result<Self> {
        let ws = WebSocket::new(url).map_err(|e| Error::Network(format!("cannot open {url}: {}", describe(&e))))?;
        // ArrayBuffer, not Blob: a Blob needs a promise to read, which could reorder messages.
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (tx, rx) = mpsc::unbounded();
        let closed = Rc::new(RefCell::new(false));
        let node_on = node_ws_listener(&ws, "on");
        let on_message = {
            let tx = tx.clone();
            let raw = node_on.is_some();
            // A text frame is copied into wasm once, with `encodeInto` (or as bytes from `ws`);
            // a binary one as it is.
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |e: JsValue, _| {
                let data = if raw {
                    e
                } else {
                    e.unchecked_into::<MessageEvent>().data()
                };
                let frame = bytes(&data).unwrap_or_default();
                let _ = tx.unbounded_send(Event::Incoming(Incoming::Frame(frame)));
            })
        };
        let on_close = {
            let (tx, closed) = (tx.clone(), closed.clone());
            Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
                *closed.borrow_mut() = true;
                let _ = tx.unbounded_send(Event::Incoming(Incoming::Closed {
                    code: e.code(),
                    reason: e.reason(),
                }));
            })
        };
        // An error is always followed by a close; the close carries the news.
        let on_error = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        let on_open = Closure::<dyn FnMut()>::new(move || drop(tx.unbounded_send(Event::Open)));
        match &node_on {
            Some(on) => drop(on.call2(&ws, &"message".into(), on_message.as_ref())),
            None => ws.set_onmessage(Some(on_message.as_ref().unchecked_ref())),
        }
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let socket = Self {
            ws,
            events: RefCell::new(rx),
            _handlers: (on_message, on_close, on_error, on_open),
            closed,
        };
        let open = async {
            let first = std::future::poll_fn(|cx| Pin::new(&mut *socket.events.borrow_mut()).poll_next(cx)).await;
            match first {
                Some(Event::Open) => Ok(()),
                _ => Err(Error::Network(format!("cannot connect to {url}"))),
            }
        };
        cancel.run(open).await?;
        socket.ws.set_onopen(None);
        Ok(socket)
    }

    /// Sends a text message.
    pub(crate) fn send(&self, text: &str) -> Result<()> {
        self.ws
            .send_with_str(text)
            .map_err(|e| Error::Network(format!("send failed: {}", describe(&e))))
    }

    /// The next event; `Closed` repeats forever once the socket is gone.
    pub(crate) async fn next(&self) -> Incoming {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Incoming> {
        let mut events = self.events.borrow_mut();
        loop {
            return match Pin::new(&mut *events).poll_next(cx) {
                Poll::Pending => Poll::Pending,
                // Taken by `open`; never here.
                Poll::Ready(Some(Event::Open)) => continue,
                Poll::Ready(Some(Event::Incoming(incoming))) => Poll::Ready(incoming),
                Poll::Ready(None) => Poll::Ready(Incoming::Closed {
                    code: 1006,
                    reason: String::new(),
                }),
            };
        }
    }

    /// Waits while more than 1 MiB is queued to send (backpressure on stdin). A socket that
    /// closes meanwhile never drains, so that is an error rather than a wait forever.
    pub(crate) async fn room(&self) -> Result<()> {
        while self.full()? {
            sleep(5).await;
        }
        Ok(())
    }

    /// Whether too much is queued to send more now.
    fn full(&self) -> Result<bool> {
        if self.ws.buffered_amount() <= QUEUED_MAX {
            return Ok(false);
        }
        if self.ws.ready_state() != WebSocket::OPEN {
            return Err(Error::Network("the connection closed while input was queued".into()));
        }
        Ok(true)
    }

    /// A function that closes the socket, for a cancellation to call.
    pub(crate) fn closer(&self) -> impl FnOnce() + 'static {
        let ws = self.ws.clone();
        move || {
            let _ = ws.close_with_code(1000);
        }
    }

    /// Closes with 1000.
    pub(crate) fn close(&self) {
        if !*self.closed.borrow() {
            let _ = self.ws.close_with_code(1000);
        }
    }
}

impl Stream for Socket {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.poll_event(cx).map(Some)
    }
}

impl Sink<String> for Socket {
    type Error = Error;

    /// Ready while at most 1 MiB is queued; otherwise looks again in 5 ms (the socket has no
    /// event for a drained buffer).
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.full()? {
            return Poll::Ready(Ok(()));
        }
        let waker = cx.waker().clone();
        set_timeout(&Closure::once_into_js(move || waker.wake()).unchecked_into(), 5.0);
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, frame: String) -> Result<()> {
        self.send(&frame)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        Socket::close(&self);
        Poll::Ready(Ok(()))
    }
}

impl Session for Socket {
    fn end(&mut self) {
        self.close();
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        if let Some(off) = node_ws_listener(&self.ws, "removeListener") {
            let _ = off.call2(&self.ws, &"message".into(), self._handlers.0.as_ref());
        }
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        // Still set when the wait for the open was cancelled.
        self.ws.set_onopen(None);
        self.close();
    }
}
