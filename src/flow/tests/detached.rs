//! Detached processes against the in-memory transport: a resume after a cut inside a frame,
//! the resume window running out, output gone before it could be resumed, and the supervisor
//! commands' answers.

use super::*;
use crate::flow::detached::{self, ProcessInfo};
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
        "p",
        &mut follower,
        within_ms,
        stdin,
        &mut deliver,
    ));
    (result, out)
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
fn spawn_list_and_signal_read_the_supervisors_answers() {
    let t = Memory::new()
        .session(&[started(), text_out("p-1\n"), completion(0)], 1000)
        .session(
            &[
                started(),
                text_err("flankbox: detached processes need 'setsid'\n"),
                completion(127),
            ],
            1000,
        )
        .session(
            &[
                started(),
                text_out("p-1\t1700000000\trunning\t[\"sleep\",\"9\"]\np-2\t1700000001\texited 4\t\"make\"\n"),
                completion(0),
            ],
            1000,
        )
        .session(&[started(), completion(3)], 1000);
    let argv = vec!["sleep".to_string(), "9".to_string()];
    run(detached::spawn(&t, &sandbox(), "p-1", 1024, "[\"sleep\",\"9\"]", &argv)).unwrap();
    assert_eq!(
        argv_of(&t, 0)[4..9],
        ["spawn", "p-1", "1024", "[\"sleep\",\"9\"]", "sleep"]
    );
    let missing = run(detached::spawn(&t, &sandbox(), "p-2", 1024, "[]", &argv)).unwrap_err();
    assert_eq!(
        (missing.code(), missing.to_string()),
        ("EXEC_FAILED", "flankbox: detached processes need 'setsid'".to_string())
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
