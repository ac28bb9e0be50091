//! Exec over the command-exec WebSocket (contract §3), as pure logic: the frames to send, what
//! each server frame means, and how a session ends. (The output kept is [`crate::output`].)

use std::borrow::Cow;
use std::ops::Range;

use flankbox_protocol::exec::{
    command_argv, ClientFrame, Command, Completion, CompletionStatus, ExecContext, InitAuth, InitRequest, ServerFrame,
    TtySize,
};
use flankbox_protocol::output_frame;

use serde::Serialize;

use crate::error::{Error, Result};

/// Raw bytes per stdin message, as the official SDK chunks file uploads.
pub const STDIN_CHUNK: usize = 16 * 1024;
/// Output kept by `exec` when no limit is given: 16 MiB.
pub const DEFAULT_OUTPUT_LIMIT: usize = 16 << 20;
/// Shell used for a string command when none is named.
pub const DEFAULT_SHELL: &str = "bash -c";

/// What to run: always sent as an argv with `shell: "none"`, the robust form (contract §3.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Ask for base64 frames (exact bytes both ways).
    pub base64: bool,
    /// A PTY of (columns, rows).
    pub tty: Option<(u16, u16)>,
    /// A specific instance.
    pub instance: Option<String>,
}

impl ExecSpec {
    /// `argv` with base64 frames, no terminal, on any instance: how the client's own commands
    /// (files, detached processes) run, since they count bytes.
    pub fn bytes(argv: Vec<String>) -> Self {
        Self {
            argv,
            base64: true,
            ..Self::default()
        }
    }
}

/// The argv for a command: an array runs as is; a string goes to `shell` (default `bash -c`);
/// none is the interactive login shell. The rule itself is the protocol's
/// ([`flankbox_protocol::exec::command_argv`]), which the host applies too.
pub fn argv_for(command: Option<Command>, shell: Option<&str>) -> Result<Vec<String>> {
    let shell = match &command {
        Some(Command::Line(_)) => Some(shell.unwrap_or(DEFAULT_SHELL)),
        _ => None,
    };
    Ok(command_argv(command.as_ref(), shell)?)
}

fn to_json(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The `init` frame.
pub fn init_frame(token: &str, spec: &ExecSpec) -> String {
    let context = ExecContext {
        instance_name: spec.instance.clone(),
        command: Some(Command::Argv(spec.argv.clone())),
        shell: Some("none".into()),
        encoding: spec.base64.then(|| "base64".into()),
        tty: spec.tty.map(|_| true),
        tty_columns: spec.tty.map(|t| t.0),
        tty_rows: spec.tty.map(|t| t.1),
        ..Default::default()
    };
    to_json(&ClientFrame::Init(Box::new(InitRequest {
        auth: InitAuth::api_token(token),
        context: Some(context),
    })))
}

/// Stdin frames for `data`, split into chunks. Text sessions send UTF-8 text (binary stdin
/// needs a base64 session).
pub fn payload_frames(data: &[u8], base64: bool) -> Vec<String> {
    if base64 {
        return data
            .chunks(STDIN_CHUNK)
            .map(|chunk| to_json(&ClientFrame::Payload(crate::base64::encode(chunk))))
            .collect();
    }
    // Text is cut only between characters, so none is split across two frames.
    let text = String::from_utf8_lossy(data);
    let mut rest: &str = &text;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let mut cut = rest.len().min(STDIN_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, after) = rest.split_at(cut);
        frames.push(to_json(&ClientFrame::Payload(chunk.to_string())));
        rest = after;
    }
    frames
}

/// The end-of-stdin frame.
pub fn stdin_end_frame() -> String {
    to_json(&ClientFrame::StdInEnd)
}

/// A resize frame.
pub fn resize_frame(cols: u16, rows: u16) -> String {
    to_json(&ClientFrame::Resize(TtySize {
        tty_rows: rows,
        tty_columns: cols,
    }))
}

/// What a server frame means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Authenticated; the command runs in this instance.
    Started {
        /// The instance.
        instance: String,
    },
    /// Output.
    Stdout(Vec<u8>),
    /// Error output.
    Stderr(Vec<u8>),
    /// The command ended.
    Completed(Completion),
}

/// What a frame means: output is decoded from base64 when the session asked for it; a failed
/// `init` is an authentication error; an `error` frame is an exec error.
pub fn interpret(frame: ServerFrame, base64: bool) -> Result<ExecEvent> {
    let data = |text: String| -> Result<Vec<u8>> {
        if base64 {
            crate::base64::decode(&text).ok_or_else(|| Error::Protocol("bad base64 output".into()))
        } else {
            Ok(text.into_bytes())
        }
    };
    match frame {
        ServerFrame::Init(reply) if reply.is_successful() => Ok(ExecEvent::Started {
            instance: reply.context.map(|c| c.instance_name).unwrap_or_default(),
        }),
        ServerFrame::Init(reply) => Err(Error::Api {
            status: 401,
            message: format!("Command initialization failed: {}", reply.message.unwrap_or(reply.auth)),
            id: None,
            details: None,
        }),
        ServerFrame::StdOut(text) => Ok(ExecEvent::Stdout(data(text)?)),
        ServerFrame::StdErr(text) => Ok(ExecEvent::Stderr(data(text)?)),
        ServerFrame::Completion(c) => Ok(ExecEvent::Completed(c)),
        ServerFrame::Error(e) => Err(Error::Exec(e.message)),
    }
}

/// What `exec` resolves to. The status is written by serde, under the protocol's names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// Exit code.
    pub exit_code: i32,
    /// `Success`, `Failure` or `Unknown`.
    pub status: CompletionStatus,
    /// Kept output.
    pub stdout: String,
    /// Kept error output.
    pub stderr: String,
    /// Whether output was dropped past the limit.
    pub truncated: bool,
    /// How long it ran, ms.
    pub duration_ms: f64,
}

/// What `wait()` of a process the client killed resolves to (a completion is otherwise resolved
/// as it came).
pub fn killed() -> Completion {
    Completion {
        exit_code: Completion::NO_EXIT_CODE,
        status: CompletionStatus::Unknown,
        message: Some("killed by the client".into()),
    }
}

/// Decodes one server frame, text or binary (the bytes of either are UTF-8 JSON): the client's
/// one reader of frames, in `cargo test` and in the package alike.
pub fn decode_frame(frame: &[u8], base64: bool) -> Result<ExecEvent> {
    if base64 {
        let mut data = Vec::new();
        let event = decode_frame_onto(frame, &mut data)?;
        Ok(event.unwrap_or(ExecEvent::Stdout(data)))
    } else {
        let output = |stderr, bytes| match stderr {
            true => ExecEvent::Stderr(bytes),
            false => ExecEvent::Stdout(bytes),
        };
        Ok(match decode_text_frame(frame)? {
            TextFrame::Literal { stderr, text, .. } => output(stderr, text.as_bytes().to_vec()),
            TextFrame::Unescaped { stderr, text } => output(stderr, text.into_bytes()),
            TextFrame::Other(event) => event,
        })
    }
}

/// As [`decode_frame`] for a base64 session, but a `stdOut` frame in the host's form
/// ([`output_frame`](crate::protocol::output_frame)) is decoded straight onto `stdout` with no
/// JSON parse (JSON never escapes base64); then it answers `None`. Any other frame is parsed,
/// and `stdout` left as it was.
pub fn decode_frame_onto(frame: &[u8], stdout: &mut Vec<u8>) -> Result<Option<ExecEvent>> {
    let data = output_frame::stdout_data(frame);
    if data.is_some_and(|data| crate::base64::decode_into(data, stdout)) {
        return Ok(None);
    }
    parse_frame(frame, true).map(Some)
}

/// A frame of a text session, as [`decode_text_frame`] reads it.
#[derive(Debug, PartialEq)]
pub enum TextFrame<'a> {
    /// Output with nothing escaped: the frame's own bytes.
    Literal {
        /// Whether it is error output.
        stderr: bool,
        /// The output.
        text: &'a str,
        /// Where it lies in the frame.
        at: Range<usize>,
    },
    /// Output unescaped from the frame.
    Unescaped {
        /// Whether it is error output.
        stderr: bool,
        /// The output.
        text: String,
    },
    /// Anything else.
    Other(ExecEvent),
}

/// As [`decode_frame`] for a text session, but an output frame in the host's form is read with
/// no JSON parse ([`output_frame::read_text`]), and with no copy when nothing in it is escaped.
pub fn decode_text_frame(frame: &[u8]) -> Result<TextFrame<'_>> {
    if let Some((stderr, at)) = output_frame::output_data_range(frame) {
        match output_frame::read_text(&frame[at.clone()]) {
            Some(Cow::Borrowed(text)) => return Ok(TextFrame::Literal { stderr, text, at }),
            Some(Cow::Owned(text)) => return Ok(TextFrame::Unescaped { stderr, text }),
            None => {}
        }
    }
    parse_frame(frame, false).map(TextFrame::Other)
}

fn parse_frame(frame: &[u8], base64: bool) -> Result<ExecEvent> {
    let frame: ServerFrame =
        serde_json::from_slice(frame).map_err(|e| Error::Protocol(format!("unable to parse an exec frame: {e}")))?;
    interpret(frame, base64)
}

/// How a session ended, from what arrived before the close: a completion is the result
/// (whatever the close code); a close without one is a lost stream, never an exit.
pub fn session_end(completion: Option<Completion>, close_code: u16, close_reason: &str) -> Result<Completion> {
    completion.ok_or_else(|| {
        let why = if close_reason.is_empty() {
            String::new()
        } else {
            format!(", {close_reason}")
        };
        Error::StreamLost(format!("connection closed with code {close_code}{why}"))
    })
}

/// True when a completion means success.
pub fn succeeded(c: &Completion) -> bool {
    c.status == CompletionStatus::Success && c.exit_code == 0
}

/// Commands used for files, mirroring the official SDK's file copy (contract §5) so the same
/// tools are needed in the image: `sh`, `cat`, `mkdir` and `tar`.
pub mod files {
    /// Writes stdin to `path`, making its directory first.
    pub fn write(path: &str) -> Vec<String> {
        sh("mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"", &[path])
    }

    /// Prints a file.
    pub fn read(path: &str) -> Vec<String> {
        vec!["cat".into(), "--".into(), path.into()]
    }

    /// Unpacks a tar from stdin into `dir`.
    pub fn untar(dir: &str) -> Vec<String> {
        sh("mkdir -p -- \"$1\" && tar -xf - --no-same-owner -C \"$1\"", &[dir])
    }

    /// Packs `dir` as a tar on stdout.
    pub fn tar(dir: &str) -> Vec<String> {
        vec![
            "tar".into(),
            "-cf".into(),
            "-".into(),
            "-C".into(),
            dir.into(),
            ".".into(),
        ]
    }

    fn sh(script: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["sh".to_string(), "-c".into(), script.into(), "sh".into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stdin_is_cut_between_characters() {
        // Two-byte characters straddle every 16 KiB cut.
        let text = format!("a{}", "é".repeat(STDIN_CHUNK));
        let frames = payload_frames(text.as_bytes(), false);
        assert!(frames.len() > 1);
        let sent: String = frames
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                v["data"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(sent, text, "nothing replaced or lost");
    }

    #[test]
    fn commands_become_argv_with_shell_none() {
        assert_eq!(
            argv_for(Some(Command::Line("echo hi && ls".into())), None).unwrap(),
            ["bash", "-c", "echo hi && ls"]
        );
        assert_eq!(
            argv_for(Some(Command::Line("ls -l 'a b'".into())), Some("none")).unwrap(),
            ["ls", "-l", "a b"]
        );
        assert_eq!(
            argv_for(Some(Command::Argv(vec!["true".into()])), Some("sh -c")).unwrap(),
            ["true"]
        );
        assert_eq!(argv_for(None, None).unwrap()[0], "/bin/sh");
        assert_eq!(
            argv_for(Some(Command::Argv(vec![])), None).unwrap_err().code(),
            "INVALID_ARGUMENT"
        );
        let init: serde_json::Value = serde_json::from_str(&init_frame(
            "tok",
            &ExecSpec {
                argv: vec!["true".into()],
                base64: true,
                tty: Some((80, 24)),
                instance: None,
            },
        ))
        .unwrap();
        assert_eq!(init["data"]["context"]["shell"], "none");
        assert_eq!(init["data"]["context"]["encoding"], "base64");
        assert_eq!(init["data"]["context"]["ttyColumns"], 80);
        assert_eq!(init["data"]["auth"]["apiToken"], "tok");
    }

    #[test]
    fn stdin_is_chunked_and_each_chunk_decodes_alone() {
        let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let frames = payload_frames(&data, true);
        assert_eq!(frames.len(), 3);
        let mut back = Vec::new();
        for f in frames {
            let v: serde_json::Value = serde_json::from_str(&f).unwrap();
            back.extend(crate::base64::decode(v["data"].as_str().unwrap()).unwrap());
        }
        assert_eq!(back, data);
        assert_eq!(stdin_end_frame(), r#"{"type":"stdInEnd"}"#);
        assert_eq!(
            resize_frame(100, 30),
            r#"{"type":"resize","data":{"ttyRows":30,"ttyColumns":100}}"#
        );
    }

    #[test]
    fn frames_decode_to_events() {
        assert_eq!(
            decode_frame(br#"{"type":"stdOut","data":"aGk="}"#, true).unwrap(),
            ExecEvent::Stdout(b"hi".to_vec())
        );
        assert_eq!(
            decode_frame(br#"{"type":"stdErr","data":"x"}"#, false).unwrap(),
            ExecEvent::Stderr(b"x".to_vec())
        );
        let started = decode_frame(
            br#"{"type":"init","data":{"auth":"successful","context":{"instanceName":"i","containerName":"main"}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(started, ExecEvent::Started { instance: "i".into() });
        let denied = decode_frame(
            br#"{"type":"init","data":{"auth":"failed","message":"invalid token"}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!(denied.code(), "UNAUTHENTICATED");
        assert_eq!(
            decode_frame(br#"{"type":"error","data":{"message":"Service x is paused"}}"#, false).unwrap_err(),
            Error::Exec("Service x is paused".into())
        );
        assert_eq!(decode_frame(b"garbage", false).unwrap_err().code(), "PROTOCOL");
    }

    #[test]
    fn stdout_in_the_hosts_form_is_read_without_json_and_anything_else_with_it() {
        let mut out = b"so far ".to_vec();
        assert_eq!(
            decode_frame_onto(br#"{"type":"stdOut","data":"aGk="}"#, &mut out).unwrap(),
            None
        );
        assert_eq!(out, b"so far hi");
        // Escapes, blanks, other keys or order, stderr, a quote inside: not this form; the full
        // reader gives what JSON means.
        for frame in [
            &br#"{"type":"stdOut","data":"aG\u0073="}"#[..],
            br#"{"type":"stdOut","data":"aGk=\n"}"#,
            br#"{"data":"aGk=","type":"stdOut"}"#,
            br#"{"type":"stdOut","data":"aGk=" }"#,
            br#"{"type":"stdErr","data":"aGk="}"#,
            br#"{"type":"stdOut","data":"aGk"}"}"#,
            br#"{"type":"stdOut","data":"a!k="}"#,
        ] {
            assert!(
                !matches!(decode_frame_onto(frame, &mut out), Ok(None)),
                "read as an event or refused"
            );
            assert_eq!(out, b"so far hi", "left as it was");
        }
        assert_eq!(
            decode_frame(br#"{"type":"stdOut","data":"aGk=\n"}"#, true).unwrap(),
            ExecEvent::Stdout(b"hi".to_vec())
        );
        assert_eq!(
            decode_frame(br#"{"data":"aGk=","type":"stdOut"}"#, true).unwrap(),
            ExecEvent::Stdout(b"hi".to_vec())
        );
        assert_eq!(
            decode_frame(br#"{"type":"stdOut","data":"a!k="}"#, true)
                .unwrap_err()
                .code(),
            "PROTOCOL"
        );
    }

    #[test]
    fn text_output_in_the_hosts_form_is_read_without_json() {
        let frame = "{\"type\":\"stdOut\",\"data\":\"hi ☃\"}";
        assert_eq!(
            decode_text_frame(frame.as_bytes()).unwrap(),
            TextFrame::Literal {
                stderr: false,
                text: "hi ☃",
                at: 25..31
            }
        );
        assert_eq!(
            decode_text_frame(br#"{"type":"stdOut","data":"a\nb\u00e9"}"#).unwrap(),
            TextFrame::Unescaped {
                stderr: false,
                text: "a\nb\u{e9}".into()
            }
        );
        assert_eq!(
            decode_text_frame(br#"{"type":"stdErr","data":"oops"}"#).unwrap(),
            TextFrame::Literal {
                stderr: true,
                text: "oops",
                at: 25..29
            }
        );
        assert_eq!(
            decode_text_frame(br#"{"type":"stdErr","data":"no\tfile\n"}"#).unwrap(),
            TextFrame::Unescaped {
                stderr: true,
                text: "no\tfile\n".into()
            }
        );
        assert_eq!(
            decode_frame(br#"{"type":"stdErr","data":"no\tfile\n"}"#, false).unwrap(),
            ExecEvent::Stderr("no\tfile\n".into())
        );
        // A surrogate pair, in another form, or another key order: the JSON reader's.
        for (frame, text) in [
            (&br#"{"type":"stdOut","data":"\ud83d\ude00"}"#[..], "😀"),
            (br#"{"data":"a\nb","type":"stdOut"}"#, "a\nb"),
        ] {
            assert_eq!(
                decode_text_frame(frame).unwrap(),
                TextFrame::Other(ExecEvent::Stdout(text.into()))
            );
        }
        // A raw control character, broken UTF-8: not JSON.
        for frame in [
            &b"{\"type\":\"stdOut\",\"data\":\"a\tb\"}"[..],
            b"{\"type\":\"stdOut\",\"data\":\"\xe2\x98\"}",
        ] {
            assert_eq!(decode_text_frame(frame).unwrap_err().code(), "PROTOCOL");
        }
        assert_eq!(
            decode_frame(frame.as_bytes(), false).unwrap(),
            ExecEvent::Stdout("hi ☃".into())
        );
        assert_eq!(
            decode_frame(br#"{"type":"stdOut","data":"a\nb"}"#, false).unwrap(),
            ExecEvent::Stdout("a\nb".into())
        );
    }

    #[test]
    fn a_completion_without_an_exit_code_or_with_an_odd_status_still_ends_the_command() {
        // The status tells the outcome; a missing code reads as -1, as the package always did.
        assert_eq!(
            decode_frame(br#"{"type":"completion","data":{"status":"Failure"}}"#, false).unwrap(),
            ExecEvent::Completed(Completion {
                exit_code: Completion::NO_EXIT_CODE,
                status: CompletionStatus::Failure,
                message: None,
            })
        );
        let odd = decode_frame(
            br#"{"type":"completion","data":{"exitCode":0,"status":"Cancelled"}}"#,
            true,
        )
        .unwrap();
        assert!(matches!(
            odd,
            ExecEvent::Completed(Completion {
                status: CompletionStatus::Unknown,
                ..
            })
        ));
        assert_eq!(
            decode_frame(br#"{"type":"sideband","data":1}"#, false)
                .unwrap_err()
                .code(),
            "PROTOCOL"
        );
    }

    #[test]
    fn a_close_without_completion_is_a_lost_stream() {
        let done = Completion {
            exit_code: 3,
            status: CompletionStatus::Failure,
            message: None,
        };
        assert_eq!(session_end(Some(done.clone()), 1005, "").unwrap(), done);
        let lost = session_end(None, 1006, "").unwrap_err();
        assert_eq!(lost.code(), "STREAM_LOST");
        assert!(lost.to_string().contains("1006"));
    }

    #[test]
    fn file_commands_quote_through_argv() {
        assert_eq!(files::read("/a b"), ["cat", "--", "/a b"]);
        assert_eq!(files::write("/x/y")[4], "/x/y");
        assert_eq!(files::tar("/w"), ["tar", "-cf", "-", "-C", "/w", "."]);
    }
}
