//! Detached processes against the in-memory transport: a resume after a cut inside a frame,
//! the resume window running out, output gone before it could be resumed, a run followed live
//! (its start, its failure to start, a cut, an exit code it could not give), and the
//! supervisor commands' answers.

use super::*;
use crate::flow::detached::{self, ProcessInfo, Start};
use crate::protocol::detached::{Chunk, Delivery, Follower, Offsets, Stream as Which};

/// The argv of the `n`th exec session opened.
fn argv_of(t: &Memory, n: usize) -> Vec<String> {
    let sent = t.state.borrow().sent.clone();
    let inits: Vec<&Value> = sent.iter().filter(|f| f["type"] == "init").collect();
    serde_json::from_value(inits[n]["data"]["context"]["command"].clone()).unwrap()
}

fn attach_frames(frames: &str) -> Value {
    json!({ "type": "stdOut", "data": b64(frames) })
}

/// Follows `p` from 0 with `input` as stdin: the outcome, and stdout as text.
fn follow_with(t: &Memory, input: Option<Vec<&str>>, within_ms: u64) -> (Result<Option<i32>>, String) {
    let mut follower = Follower::new("p", Offsets::default(), true).unwrap();
    let mut out = String::new();
    let mut deliver = |d: Delivery| {
        if let Delivery::Output(Which::Stdout, Chunk::Text(text)) = d {
            out.push_str(&text)
        }
    };
    let stdin = input.map(|chunks| futures_util::stream::iter(chunks.into_iter().map(|c| c.as_bytes().to_vec())));
    let result = run(detached::follow(
        t,
        &sandbox(),
        &mut follower,
        within_ms,
        Start::Attach,
        stdin,
        &mut deliver,
    ));
    (result, out)
}

/// What a run gave: the outcome, whether (or why not) it said it started, and both streams.
struct RunOutcome {
    result: Result<Option<i32>>,
    started: Vec<Result<()>>,
    stdout: String,
    stderr: String,
}

/// Starts `p` with a run (its argv a placeholder) and follows it, with `input` as stdin.
fn run_with(t: &Memory, input: Option<Vec<&str>>) -> RunOutcome {
    let mut follower = Follower::new("p", Offsets::default(), true).unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut deliver = |d: Delivery| match d {
        Delivery::Output(Which::Stdout, Chunk::Text(text)) => stdout.push_str(&text),
        Delivery::Output(Which::Stderr, Chunk::Text(text)) => stderr.push_str(&text),
        _ => {}
    };
    let mut started = Vec::new();
    let mut tell = |r: Result<()>| started.push(r);
    let stdin = input.map(|chunks| futures_util::stream::iter(chunks.into_iter().map(|c| c.as_bytes().to_vec())));
    let start = Start::Run {
        argv: vec!["run-p".into()],
        started: &mut tell,
    };
    let result = run(detached::follow(
        t,
        &sandbox(),
        &mut follower,
        60_000,
        start,
        stdin,
        &mut deliver,
    ));
    RunOutcome {
        result,
        started,
        stdout,
        stderr,
    }
}

#[test]
fn a_run_carries_the_output_live_after_its_header_and_ends_with_the_exec() {
    // The header split over two frames, output on both streams, the process's exit code.
    let t = Memory::new().session(
        &[
            started(),
            attach_frames("S"),
            attach_frames("\nhello "),
            json!({ "type": "stdErr", "data": b64("oops\n") }),
            attach_frames("world\n"),
            completion(3),
        ],
        1000,
    );
    let got = run_with(&t, Some(vec!["typed"]));
    assert_eq!(got.result.unwrap(), Some(3));
    assert_eq!((got.stdout.as_str(), got.stderr.as_str()), ("hello world\n", "oops\n"));
    assert_eq!(got.started, vec![Ok(())]);
    // One exec only: the run, with the input sent on it.
    assert_eq!(argv_of(&t, 0), ["run-p"]);
    assert_eq!(
        t.state.borrow().sent[1],
        json!({ "type": "payload", "data": b64("typed") })
    );
}

#[test]
fn a_run_that_cannot_start_says_why_and_starts_nothing() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdErr", "data": b64("flankbox: detached processes need 'tee' in the image\n") }),
            completion(127),
        ],
        1000,
    );
    let got = run_with(&t, None);
    let e = got.result.unwrap_err();
    assert_eq!(
        (e.code(), e.to_string()),
        (
            "EXEC_FAILED",
            "flankbox: detached processes need 'tee' in the image".to_string()
        )
    );
    assert_eq!(got.started, vec![Err(e)]);
    // Anything but the header first is a broken run, not output.
    let t = Memory::new().session(&[started(), attach_frames("hello"), completion(0)], 1000);
    let got = run_with(&t, None);
    assert_eq!(got.result.unwrap_err().code(), "PROTOCOL");
    assert_eq!(got.started.len(), 1);
}

#[test]
fn a_run_cut_mid_output_resumes_with_an_attach_from_what_it_delivered() {
    let t = Memory::new()
        .session(
            &[
                started(),
                attach_frames("S\nline 1\nli"),
                json!({ "type": "stdErr", "data": b64("e1\n") }),
            ],
            1006,
        )
        .session(
            &[started(), attach_frames("O 5\nne 2\nE 3\ne2\nX 0\n"), completion(0)],
            1000,
        );
    let got = run_with(&t, Some(vec![]));
    assert_eq!(got.result.unwrap(), Some(0));
    assert_eq!(
        (got.stdout.as_str(), got.stderr.as_str()),
        ("line 1\nline 2\n", "e1\ne2\n")
    );
    // Offsets count the process's bytes, not the header. Stdin ended on the run (its end was
    // sent there), so the resume carries none.
    assert_eq!(argv_of(&t, 1)[4..], ["attach", "p", "9", "3", "0"]);
    assert_eq!(t.state.borrow().sent[1], json!({ "type": "stdInEnd" }));
}

#[test]
fn a_run_without_an_exit_code_asks_an_attach_for_it() {
    // 255 may be the process's own code or a supervisor that vanished: an attach tells.
    let t = Memory::new()
        .session(&[started(), attach_frames("S\nbye\n"), completion(255)], 1000)
        .session(&[started(), attach_frames("X -\n"), completion(0)], 1000);
    let got = run_with(&t, None);
    assert_eq!((got.result.unwrap(), got.stdout.as_str()), (None, "bye\n"));
    assert_eq!(argv_of(&t, 1)[4..], ["attach", "p", "4", "0", "0"]);
}

#[test]
fn a_cut_inside_a_frame_resumes_at_the_last_delivered_byte() {
    let t = Memory::new()
        .session(&[started(), attach_frames("O 10\nhello")], 1006)
        .session(&[started(), attach_frames("O 7\n world\nX 3\n"), completion(0)], 1000);
    let (result, out) = follow_with(&t, Some(vec!["typed"]), 60_000);
    assert_eq!((result.unwrap(), out.as_str()), (Some(3), "hello world\n"));
    // The first attach from 0 with stdin, the resume from byte 5; stdin was sent and closed on
    // the first, so the resume carries none.
    assert_eq!(argv_of(&t, 0)[5..], ["p", "0", "0", "1"]);
    assert_eq!(argv_of(&t, 1)[5..], ["p", "5", "0", "0"]);
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[1], json!({ "type": "payload", "data": b64("typed") }));
    assert_eq!(sent[2], json!({ "type": "stdInEnd" }));
}

#[test]
fn the_resume_window_running_out_is_a_lost_stream_that_says_so() {
    // One attach that drops, then no connection at all.
    let t = Memory::new()
        .clock_runs()
        .session(&[started(), attach_frames("O 6\nhello\n")], 1006);
    let (result, out) = follow_with(&t, None, 5_000);
    let e = result.unwrap_err();
    assert_eq!(e.code(), "STREAM_LOST");
    assert!(e.to_string().contains("resume window of 5000 ms"), "{e}");
    assert_eq!(out, "hello\n");
    // It kept trying, with growing waits, until the window was spent.
    let slept = t.state.borrow().clock.unwrap();
    assert!((5_000.0..7_000.0).contains(&slept), "{slept}");
}

#[test]
fn a_wall_clock_set_forward_does_not_end_the_resume_window_early() {
    // The window is time that passed, not what the wall clock says: an hour's jump on every
    // wait still leaves the full window of tries.
    let t = Memory::new()
        .clock_runs()
        .wall_clock_jumps(3_600_000.0)
        .session(&[started(), attach_frames("O 6\nhello\n")], 1006);
    let (result, _) = follow_with(&t, None, 5_000);
    assert_eq!(result.unwrap_err().code(), "STREAM_LOST");
    let slept = t.state.borrow().clock.unwrap();
    assert!((5_000.0..7_000.0).contains(&slept), "{slept}");
}

#[test]
fn a_server_that_accepts_and_cuts_at_once_does_not_renew_the_window() {
    // Every attach is accepted, then cut before it held for a second: the window still runs out.
    let mut t = Memory::new().clock_runs();
    for _ in 0..200 {
        t = t.session(&[started()], 1006);
    }
    let e = follow_with(&t, None, 3_000).0.unwrap_err();
    assert!(e.to_string().contains("resume window of 3000 ms"), "{e}");
    // With backoff: at once, then about 100, 200, 400, … ms; not 200 tries.
    let left = t.state.borrow().sessions.len();
    assert!(left > 180, "{left} sessions left");
}

#[test]
fn output_dropped_before_the_resume_is_a_lost_stream_that_says_so() {
    let t = Memory::new()
        .session(&[started(), attach_frames("O 5\nhello")], 1006)
        .session(&[started(), attach_frames("G out 4096\n"), completion(0)], 1000);
    let e = follow_with(&t, None, 60_000).0.unwrap_err();
    assert_eq!(e.code(), "STREAM_LOST");
    assert!(e.to_string().contains("no longer kept"), "{e}");
    assert!(e.to_string().contains("bytes 5 to 4096"), "{e}");
    // No such process: not found, not retried.
    let t = Memory::new().session(&[started(), attach_frames("N\n"), completion(0)], 1000);
    assert_eq!(follow_with(&t, None, 60_000).0.unwrap_err().code(), "NOT_FOUND");
}

#[test]
fn an_attach_that_ends_without_the_exit_is_resumed() {
    let t = Memory::new()
        .session(&[started(), attach_frames("O 3\nab\n"), completion(137)], 1000)
        .session(&[started(), attach_frames("X -\n"), completion(0)], 1000);
    let (result, out) = follow_with(&t, None, 60_000);
    assert_eq!((result.unwrap(), out.as_str()), (None, "ab\n"));
    assert_eq!(argv_of(&t, 1)[5..], ["p", "3", "0", "0"]);
}

fn text_out(data: &str) -> Value {
    json!({ "type": "stdOut", "data": data })
}

fn text_err(data: &str) -> Value {
    json!({ "type": "stdErr", "data": data })
}

#[test]
fn list_and_signal_read_the_supervisors_answers() {
    let t = Memory::new()
        .session(
            &[
                started(),
                text_out("p-1\t1700000000\trunning\t[\"sleep\",\"9\"]\np-2\t1700000001\texited 4\t\"make\"\n"),
                completion(0),
            ],
            1000,
        )
        .session(
            &[started(), text_err("flankbox: no process p-9\n"), completion(3)],
            1000,
        )
        .session(
            &[
                started(),
                text_err("sh: 1: kill: Operation not permitted\n"),
                completion(1),
            ],
            1000,
        );
    let listed = run(detached::list(&t, &sandbox())).unwrap();
    assert_eq!(
        listed[1],
        ProcessInfo {
            id: "p-2".into(),
            command: json!("make"),
            started_at: 1_700_000_001_000.0,
            running: false,
            exit_code: Some(4),
        }
    );
    assert!(listed[0].running);
    let gone = run(detached::signal(&t, &sandbox(), "p-9", "KILL")).unwrap_err();
    assert_eq!(gone.code(), "NOT_FOUND");
    assert_eq!(argv_of(&t, 1)[4..], ["signal", "p-9", "KILL"]);
    let refused = run(detached::signal(&t, &sandbox(), "p-1", "KILL")).unwrap_err();
    assert_eq!(
        (refused.code(), refused.to_string()),
        ("EXEC_FAILED", "sh: 1: kill: Operation not permitted".to_string())
    );
    // Bad ids and signals go nowhere.
    assert_eq!(
        run(detached::signal(&t, &sandbox(), "../x", "KILL"))
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    let id = detached::new_id(&t);
    assert!(crate::protocol::detached::check_id(&id).is_ok(), "{id}");
}

#[test]
fn a_write_is_told_once_its_bytes_went_out() {
    use crate::flow::detached::Written;
    use futures_channel::oneshot;
    use futures_util::StreamExt;
    let t = Memory::new().session(&[started(), attach_frames("S\ngot it\n"), completion(0)], 1000);
    let (sent, on_sent) = oneshot::channel();
    let chunk = Written {
        bytes: b"first\n".to_vec(),
        sent: Some(sent),
    };
    // Input that stays open: the process ends before its stdin does.
    let stdin = futures_util::stream::iter([chunk]).chain(futures_util::stream::pending());
    let mut follower = Follower::new("p", Offsets::default(), true).unwrap();
    let mut tell = |_: Result<()>| {};
    let start = Start::Run {
        argv: vec!["run-p".into()],
        started: &mut tell,
    };
    let result = run(detached::follow(
        &t,
        &sandbox(),
        &mut follower,
        60_000,
        start,
        Some(stdin),
        &mut |_| {},
    ));
    assert_eq!(result.unwrap(), Some(0));
    assert_eq!(futures_util::FutureExt::now_or_never(on_sent), Some(Ok(())));
    assert_eq!(
        t.state.borrow().sent[1],
        json!({ "type": "payload", "data": b64("first\n") })
    );
}
