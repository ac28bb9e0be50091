//! A WebSocket as a stream of events, over the global `WebSocket` (browsers, Workers, Node 22;
//! Node 20 gets one from the package's Node entry).

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::mpsc;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::cancel::{sleep, Cancel};
use super::errors::describe;
use crate::error::{Error, Result};

/// What happened on the socket.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    /// A message: a JS string (text frame), `ArrayBuffer` or `Uint8Array` (binary frame). Left in
    /// JS so a frame is parsed where it lies and copied into wasm at most once.
    Message(JsValue),
    /// The socket closed.
    Closed {
        /// Close code (1006 when the connection just dropped).
        code: u16,
        /// Close reason.
        reason: String,
    },
}

type Handlers = (
    Closure<dyn FnMut(MessageEvent)>,
    Closure<dyn FnMut(CloseEvent)>,
    Closure<dyn FnMut(JsValue)>,
);

/// An open WebSocket. Dropping it closes the connection.
pub(crate) struct Socket {
    ws: WebSocket,
    events: RefCell<mpsc::UnboundedReceiver<SocketEvent>>,
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
        let on_message = {
            let tx = tx.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                let _ = tx.unbounded_send(SocketEvent::Message(e.data()));
            })
        };
        let on_close = {
            let (tx, closed) = (tx.clone(), closed.clone());
            Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
                *closed.borrow_mut() = true;
                let _ = tx.unbounded_send(SocketEvent::Closed {
                    code: e.code(),
                    reason: e.reason(),
                });
            })
        };
        // An error is always followed by a close; the close carries the news.
        let on_error = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let opened = js_sys::Promise::new(&mut |resolve, reject| {
            ws.set_onopen(Some(&resolve));
            let _ = ws.add_event_listener_with_callback("close", &reject);
        });
        let socket = Self {
            ws,
            events: RefCell::new(rx),
            _handlers: (on_message, on_close, on_error),
            closed,
        };
        let open = async {
            wasm_bindgen_futures::JsFuture::from(opened)
                .await
                .map(drop)
                .map_err(|_| Error::Network(format!("cannot connect to {url}")))
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
    pub(crate) async fn next(&self) -> SocketEvent {
        use futures_channel::mpsc::UnboundedReceiver;
        struct Next<'a>(&'a RefCell<UnboundedReceiver<SocketEvent>>);
        impl std::future::Future for Next<'_> {
            type Output = Option<SocketEvent>;
            fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
                use futures_core::Stream;
                std::pin::Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
            }
        }
        Next(&self.events).await.unwrap_or(SocketEvent::Closed {
            code: 1006,
            reason: String::new(),
        })
    }

    /// Waits while more than 1 MiB is queued to send (backpressure on stdin). A socket that
    /// closes meanwhile never drains, so that is an error rather than a wait forever.
    pub(crate) async fn room(&self) -> Result<()> {
        while self.ws.buffered_amount() > 1 << 20 {
            if self.ws.ready_state() != WebSocket::OPEN {
                return Err(Error::Network("the connection closed while input was queued".into()));
            }
            sleep(5).await;
        }
        Ok(())
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

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.close();
    }
}
