//! File operations over exec: input, output and their failures.

use super::*;

#[test]
fn a_file_operation_sends_its_input_and_resolves_to_its_output() {
    let t = Memory::new().session(
        &[
            started(),
            json!({ "type": "stdOut", "data": b64("file ") }),
            json!({ "type": "stdOut", "data": b64("bytes") }),
            completion(0),
        ],
        1000,
    );
    let out = run(file_op(&t, &sandbox(), vec!["cat".into()], b"input")).unwrap();
    assert_eq!(out, b"file bytes");
    let sent = t.state.borrow().sent.clone();
    assert_eq!(sent[0]["type"], "init");
    assert_eq!(sent[0]["data"]["context"]["encoding"], "base64");
    assert_eq!(sent[1], json!({ "type": "payload", "data": b64("input") }));
    assert_eq!(sent[2], json!({ "type": "stdInEnd" }));
}

#[test]
fn file_operation_failures() {
    let fail = |frames: &[Value], close: u16| {
        let t = Memory::new().session(frames, close);
        run(file_op(&t, &sandbox(), vec!["cat".into()], b"")).unwrap_err()
    };
    let e = fail(
        &[
            started(),
            json!({ "type": "stdErr", "data": b64("cat: /x: No such file\n") }),
            completion(1),
        ],
        1000,
    );
    assert_eq!(
        (e.code(), e.to_string()),
        ("EXEC_FAILED", "cat: /x: No such file".to_string())
    );
    assert_eq!(fail(&[started(), completion(2)], 1000).to_string(), "exit code 2");
    let lost = fail(&[started(), json!({ "type": "stdOut", "data": b64("half") })], 1006);
    assert_eq!(lost.code(), "STREAM_LOST");
    assert!(lost.to_string().contains("1006"));
    let refused = fail(
        &[json!({ "type": "error", "data": { "message": "Service box is paused" } })],
        1011,
    );
    assert_eq!(
        (refused.code(), refused.to_string()),
        ("EXEC_FAILED", "Service box is paused".to_string())
    );
    let denied = fail(
        &[json!({ "type": "init", "data": { "auth": "failed", "message": "invalid token" } })],
        1008,
    );
    assert_eq!(denied.code(), "UNAUTHENTICATED");
    assert_eq!(fail(&[json!({ "type": "stdOut" })], 1000).code(), "PROTOCOL");
    // No session at all.
    let t = Memory::new();
    assert_eq!(
        run(file_op(&t, &sandbox(), vec!["cat".into()], b""))
            .unwrap_err()
            .code(),
        "NETWORK"
    );
}
