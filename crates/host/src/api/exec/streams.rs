//! The streams of a running exec: output read into frames, stdin written from them, frames
//! sent in order, and the `completion` its end maps to.

use axum::extract::ws::Message;
use flankbox_protocol::exec::{Completion, CompletionStatus};
use futures_util::SinkExt;
use tokio::sync::{mpsc, watch};

use super::output::OutputFrames;
use super::{Sink, DRAIN_IDLE, READ_CHUNK};
use crate::runtime::sandbox::{Input, Output};
use crate::runtime::ExitStatus;

/// Sends queued frames in order; gives the sink back when the queue closes.
pub(super) async fn forward(mut tx: Sink, mut frames: mpsc::Receiver<Message>) -> Sink {
    while let Some(m) = frames.recv().await {
        if tx.send(m).await.is_err() {
            break;
        }
    }
    tx
}

pub(super) async fn pump_stdin(mut input: Input, mut data: mpsc::Receiver<Vec<u8>>, tty: bool) {
    while let Some(bytes) = data.recv().await {
        if input.write_all(&bytes).await.is_err() {
            return;
        }
    }
    // End of input: a pipe closes when `input` drops; a terminal gets ^D, which is what typing
    // the end of input means there.
    if tty {
        let _ = input.write_all(&[4]).await;
    }
}

pub(super) async fn pump_output(
    mut output: Output,
    stderr: bool,
    base64: bool,
    frames: mpsc::Sender<Message>,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut frames_of = OutputFrames::new(stderr, base64);
    let mut draining = *exited.borrow();
    loop {
        let read = if draining {
            match tokio::time::timeout(DRAIN_IDLE, output.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                r = output.read(&mut buf) => r,
                _ = exited.changed() => { draining = true; continue; }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (filled, ended, permit) = fill_while_busy(&mut output, &mut buf, n, &frames).await;
        let Ok(permit) = permit else { return };
        if let Some(f) = frames_of.frame(&buf[..filled]) {
            permit.send(f);
        }
        if ended {
            break;
        }
    }
    if let Some(f) = frames_of.finish() {
        let _ = frames.send(f).await;
    }
}

/// Waits for room in the frame queue, reading more output into `buf` (after the `filled`
/// bytes there) meanwhile: while the socket is busy, output gathers into one larger frame
/// instead of many small ones. Stops reading when `buf` is full, so a full queue still stops
/// the reads. Returns the bytes in `buf`, whether the output ended, and the queue's room.
async fn fill_while_busy<'a>(
    output: &mut Output,
    buf: &mut [u8],
    mut filled: usize,
    frames: &'a mpsc::Sender<Message>,
) -> (
    usize,
    bool,
    Result<mpsc::Permit<'a, Message>, mpsc::error::SendError<()>>,
) {
    while filled < buf.len() {
        tokio::select! {
            biased;
            permit = frames.reserve() => return (filled, false, permit),
            read = output.read(&mut buf[filled..]) => match read {
                Ok(0) | Err(_) => return (filled, true, frames.reserve().await),
                Ok(n) => filled += n,
            },
        }
    }
    (filled, false, frames.reserve().await)
}

/// A `payload`'s bytes; `None` for base64 that does not decode.
pub(crate) fn decode_payload(data: &str, base64: bool) -> Option<Vec<u8>> {
    if base64 {
        flankbox_protocol::base64::decode(data)
    } else {
        Some(data.as_bytes().to_vec())
    }
}

/// The completion a process's end maps to: `Success` iff the exit code is 0.
pub(crate) fn completion(status: ExitStatus, oom: bool) -> Completion {
    match status {
        ExitStatus::Code(0) => Completion {
            exit_code: 0,
            status: CompletionStatus::Success,
            message: None,
        },
        ExitStatus::Code(c) => Completion {
            exit_code: c,
            status: CompletionStatus::Failure,
            message: None,
        },
        ExitStatus::Signal(s) => Completion {
            exit_code: 128 + s,
            status: CompletionStatus::Failure,
            message: Some(if oom {
                format!("killed by signal {s}: out of memory (the plan's memory limit)")
            } else {
                format!("killed by signal {s}")
            }),
        },
        ExitStatus::Lost => Completion {
            exit_code: -1,
            status: CompletionStatus::Unknown,
            message: Some("the sandbox stopped while the command ran".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_say_success_only_for_zero() {
        assert_eq!(completion(ExitStatus::Code(0), false).status, CompletionStatus::Success);
        let c = completion(ExitStatus::Code(3), false);
        assert_eq!((c.exit_code, c.status), (3, CompletionStatus::Failure));
        let c = completion(ExitStatus::Signal(9), true);
        assert_eq!(c.exit_code, 137);
        assert!(c.message.unwrap().contains("out of memory"));
        assert_eq!(completion(ExitStatus::Lost, false).status, CompletionStatus::Unknown);
    }

    #[test]
    fn payloads_decode_each_message_on_its_own() {
        assert_eq!(decode_payload("aGk=", true).unwrap(), b"hi");
        assert_eq!(decode_payload("aGk", true).unwrap(), b"hi");
        assert_eq!(decode_payload("plain", false).unwrap(), b"plain");
        assert!(decode_payload("!!", true).is_none());
    }
}
