//! exec: callbacks, input, the output limit, and failures.

use super::*;

/// Runs `exec` with the given stdin; the result, and the text each callback got.
fn exec_with<S>(t: &Memory, stdin: exec::Stdin<S>, limit: usize) -> (Result<crate::exec::ExecResult>, String, String)
where
    S: Stream<Item = Result<Vec<u8>>> + Unpin,
{
    let (mut out, mut err) = (String::new(), String::new());
    let mut on_out = |s: &str| out.push_str(s);
    let mut on_err = |s: &str| err.push_str(s);
    let result = run(exec::run(
        t,
        &sandbox(),
        vec!["sh".into()],
        stdin,
        exec::Output::new(limit, Some(&mut on_out)),
        exec::Output::new(limit, Some(&mut on_err)),
    ));
    (result, out, err)
}

type NoStream = futures_util::stream::Empty<Result<Vec<u8>>>;

#[test]
fn exec_streams_text_output_to_the_callbacks_and_keeps_it() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": "héllo " }),
            json!({ "type": "stdErr", "data": "warn" }),
            json!({ "type": "stdOut", "data": "world" }),
            completion(3),
        ],
        1000,
    );
    let (result, out, err) = exec_with::<NoStream>(&t, exec::Stdin::Closed, 1 << 20);
    let result = result.unwrap();
    assert_eq!(
        (result.exit_code, result.stdout.as_str(), result.stderr.as_str()),
        (3, "héllo world", "warn")
    );
    assert_eq!((out.as_str(), err.as_str()), ("héllo world", "warn"));
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["data"]["context"].get("encoding"), None, "text frames");
    assert_eq!(sent[1], json!({ "type": "stdInEnd" }));
}

#[test]
fn output_frames_in_the_hosts_form_read_as_any_other() {
    // serde_json's `Value` writes keys in order ("data" first): these are as the host writes
    // them, which the client reads without JSON unless something is escaped.
    let host_form = |stderr: bool, text: &str| {
        let mut frame = output_frame::prefix(stderr).to_string();
        output_frame::push_escaped(&mut frame, text);
        frame + output_frame::SUFFIX
    };
    let t = Memory::new().session_of_text(
        &[
            started().to_string(),
            host_form(false, "héllo "),
            host_form(true, "warn: "),
            host_form(false, "\"quoted\"\tand\n"),
            json!({ "type": "stdErr", "data": "not " }).to_string(),
            host_form(true, "found\n"),
            host_form(false, "world"),
            completion(0).to_string(),
        ],
        1000,
    );
    let (result, out, err) = exec_with::<NoStream>(&t, exec::Stdin::Closed, 1 << 20);
    let result = result.unwrap();
    let (expected, expected_err) = ("héllo \"quoted\"\tand\nworld", "warn: not found\n");
    assert_eq!(
        (
            result.stdout.as_str(),
            out.as_str(),
            result.stderr.as_str(),
            err.as_str()
        ),
        (expected, expected, expected_err, expected_err)
    );
}

#[test]
fn binary_input_asks_for_base64_and_output_past_the_limit_keeps_head_and_tail() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": b64("0123456789") }),
            completion(0),
        ],
        1000,
    );
    let (result, out, _) = exec_with::<NoStream>(&t, exec::Stdin::Bytes(vec![0xff, 0]), 4);
    let result = result.unwrap();
    assert!(result.truncated);
    assert_eq!(result.stdout, "01\n[… 6 bytes truncated …]\n89");
    assert_eq!(out, "0123456789", "the callback gets everything");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["data"]["context"]["encoding"], "base64");
    assert_eq!(
        sent[1],
        json!({ "type": "payload", "data": crate::base64::encode(&[0xff, 0]) })
    );
}

#[test]
fn exec_failures() {
    // A dropped connection is a lost stream, never an exit.
    let t = Memory::new().session(&[started(), json!({ "type": "stdOut", "data": "half" })], 1006);
    let (result, out, _) = exec_with::<NoStream>(&t, exec::Stdin::Closed, 100);
    assert_eq!(result.unwrap_err().code(), "STREAM_LOST");
    assert_eq!(out, "half");
    // A failed input stream ends the session (no end of input is sent), which the exec reports.
    let t = Memory::new().session(&[started()], 1000);
    let failing = futures_util::stream::iter([Ok(b"a".to_vec()), Err(Error::Invalid("the stream broke".into()))]);
    let (result, _, _) = exec_with(&t, exec::Stdin::Stream(failing), 100);
    assert_eq!(result.unwrap_err().code(), "STREAM_LOST");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent.len(), 2, "init and the first chunk, no stdInEnd: {sent:?}");
    // The server refuses: an exec error, not an exit.
    let t = Memory::new().session(
        &[json!({ "type": "error", "data": { "message": "Service box is paused" } })],
        1011,
    );
    assert_eq!(
        exec_with::<NoStream>(&t, exec::Stdin::Closed, 100)
            .0
            .unwrap_err()
            .code(),
        "EXEC_FAILED"
    );
}

#[test]
fn text_output_is_checked_fast_and_replaced_only_where_broken() {
    assert!(matches!(
        exec::as_text("héllo".as_bytes()),
        std::borrow::Cow::Borrowed("héllo")
    ));
    assert_eq!(exec::as_text(b"a\xffb"), "a\u{fffd}b");
}
