//! File operations: a command over a base64 exec session, `input` as its stdin, its stdout as
//! the result; and the opening of exec sessions.

use futures_util::{SinkExt, StreamExt};

use super::SandboxRef;
use crate::error::{Error, Result};
use crate::exec::{
    decode_frame_onto, init_frame, payload_frames, session_end, stdin_end_frame, succeeded, ExecEvent, ExecSpec,
};
use crate::transport::{Incoming, Session, Transport};

/// Opens the exec WebSocket of a sandbox and sends `init`.
pub async fn open_session<T: Transport>(t: &T, sandbox: &SandboxRef, spec: &ExecSpec) -> Result<T::Session> {
    let mut session = t.open(&sandbox.config.exec_url(&sandbox.id)).await?;
    send(t, &mut session, init_frame(&sandbox.config.token, spec)).await?;
    Ok(session)
}

/// Sends a frame once the session has room for it; a session closed by the call's
/// cancellation reports the cancellation.
pub async fn send<T: Transport, S: Session>(t: &T, session: &mut S, frame: String) -> Result<()> {
    session.send(frame).await.map_err(|e| t.cancelled().unwrap_or(e))
}

/// The error for a session that closed before its command completed.
pub fn lost<T: Transport>(t: &T, closed: Option<Incoming>) -> Error {
    let (code, reason) = match closed {
        Some(Incoming::Closed { code, reason }) => (code, reason),
        _ => (1006, String::new()),
    };
    t.cancelled()
        .unwrap_or_else(|| session_end(None, code, &reason).unwrap_err())
}

/// Runs `argv` with `input` as stdin and resolves to its stdout. A failed command rejects with
/// its stderr (or its exit code).
pub async fn file_op<T: Transport>(t: &T, sandbox: &SandboxRef, argv: Vec<String>, input: &[u8]) -> Result<Vec<u8>> {
    let spec = ExecSpec::bytes(argv);
    let mut session = open_session(t, sandbox, &spec).await?;
    for frame in payload_frames(input, true) {
        send(t, &mut session, frame).await?;
    }
    send(t, &mut session, stdin_end_frame()).await?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let frame = match session.next().await {
            Some(Incoming::Frame(frame)) => frame,
            closed => return Err(lost(t, closed)),
        };
        // The bulk of a file is decoded straight onto the output (then there is no event).
        let Some(event) = decode_frame_onto(&frame, &mut out)? else {
            continue;
        };
        match event {
            ExecEvent::Stdout(b) => out.extend(b),
            ExecEvent::Stderr(b) => err.extend(b),
            ExecEvent::Started { .. } => {}
            ExecEvent::Completed(c) => {
                session.end();
                if succeeded(&c) {
                    return Ok(out);
                }
                let stderr = String::from_utf8_lossy(&err).trim().to_string();
                return Err(Error::Exec(if stderr.is_empty() {
                    format!("exit code {}", c.exit_code)
                } else {
                    stderr
                }));
            }
        }
    }
}
