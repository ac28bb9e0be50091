//! The exec WebSocket protocol (contract §3), against the real host with real isolation.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{require_root, TestHost, TOKEN};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[tokio::test]
async fn frames_come_in_order_and_end_with_completion_then_close() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "order", json!({})).await;
    let r = host
        .exec("p", &id, json!({ "command": "echo 'a b' c", "shell": "bash -c" }), &[])
        .await;
    let types: Vec<&str> = r.frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"init"));
    assert_eq!(types.last(), Some(&"completion"), "nothing after completion: {types:?}");
    assert_eq!(r.init.as_ref().unwrap()["context"]["containerName"], "main");
    assert!(r.init.as_ref().unwrap()["context"]["instanceName"]
        .as_str()
        .unwrap()
        .starts_with("order-"));
    assert_eq!(
        (r.stdout.as_str(), r.exit_code, r.status.as_deref(), r.close_code),
        ("a b c\n", Some(0), Some("Success"), Some(1000))
    );
    // shell "none" with a string splits it like a shell would, without running one.
    let r = host
        .exec(
            "p",
            &id,
            json!({ "command": "printf %s|%s 'x y' z", "shell": "none" }),
            &[],
        )
        .await;
    assert_eq!(r.stdout, "x y|z");
    // No shell and an argv array: run as is.
    let r = host
        .exec("p", &id, json!({ "command": ["sh", "-c", "echo $0", "argv0"] }), &[])
        .await;
    assert_eq!(r.stdout, "argv0\n");
}

#[tokio::test]
async fn a_wrong_token_gets_a_failed_init_and_a_close() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "guarded", json!({})).await;
    let session = host
        .open_exec("p", &id, json!({ "command": ["touch", "/tmp/pwned"] }), "not-the-token")
        .await;
    let r = session.finish().await;
    let init = r.init.expect("an init reply");
    assert_ne!(init["auth"], "successful");
    assert!(init["message"].as_str().unwrap().contains("token"));
    assert_eq!(r.exit_code, None, "nothing ran");
    assert_eq!(r.close_code, Some(1008));
    assert!(host.sh("p", &id, "ls /tmp").await.stdout.is_empty());
}

#[tokio::test]
async fn text_frames_are_accepted_too() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "texty", json!({})).await;
    let url = format!("{}/v1/command-exec/projects/p/services/{id}", host.ws_base());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let init = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": TOKEN }, "context": { "command": ["cat"] } } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    ws.send(Message::Text(
        json!({ "type": "payload", "data": "via text\n" }).to_string().into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(json!({ "type": "stdInEnd" }).to_string().into()))
        .await
        .unwrap();
    let r = common::ExecSession { ws, frames: vec![] }.finish().await;
    assert_eq!((r.stdout.as_str(), r.exit_code), ("via text\n", Some(0)));
}

#[tokio::test]
async fn stdin_payloads_before_init_reply_are_kept_and_stdin_end_closes_input() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "stdin", json!({})).await;
    let r = host
        .exec(
            "p",
            &id,
            json!({ "command": ["sh", "-c", "wc -c; echo done"], "shell": "none" }),
            &[
                json!({ "type": "payload", "data": "12345" }),
                json!({ "type": "payload", "data": "678" }),
                json!({ "type": "stdInEnd" }),
            ],
        )
        .await;
    assert_eq!(r.stdout.split_whitespace().collect::<Vec<_>>(), ["8", "done"]);
}

#[tokio::test]
async fn base64_round_trips_binary_both_ways() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "binary", json!({})).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let mut inputs: Vec<_> = bytes
        .chunks(16 * 1024)
        .map(|c| json!({ "type": "payload", "data": B64.encode(c) }))
        .collect();
    inputs.push(json!({ "type": "stdInEnd" }));
    let r = host
        .exec(
            "p",
            &id,
            json!({ "command": ["sh", "-c", "cat > /tmp/blob && cat /tmp/blob"], "encoding": "base64" }),
            &inputs,
        )
        .await;
    assert_eq!(r.exit_code, Some(0));
    let mut back = Vec::new();
    for f in r.frames.iter().filter(|f| f["type"] == "stdOut") {
        back.extend(
            B64.decode(f["data"].as_str().unwrap())
                .expect("each frame decodes on its own"),
        );
    }
    assert_eq!(back, bytes);
    // In text mode, invalid UTF-8 arrives replaced, never as broken JSON.
    let r = host.sh("p", &id, "printf 'ok\\377\\n'").await;
    assert_eq!(r.stdout, "ok\u{fffd}\n");
}

#[tokio::test]
async fn a_tty_session_gets_a_real_pty_that_resizes() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "tty", json!({})).await;
    let script = "stty size; tty; read line; stty size; echo \"got $line\"";
    let mut s = host
        .open_exec(
            "p",
            &id,
            json!({ "command": ["bash", "-c", script], "tty": true, "ttyColumns": 100, "ttyRows": 30 }),
            TOKEN,
        )
        .await;
    let mut out = String::new();
    while !out.contains("/dev/pts/") {
        let f = s.next().await.unwrap();
        if f["type"] == "stdOut" {
            out.push_str(f["data"].as_str().unwrap());
        }
        assert!(f["type"] != "stdErr", "a tty merges stderr into stdout");
    }
    assert!(out.starts_with("30 100"), "{out:?}");
    s.send(json!({ "type": "resize", "data": { "ttyRows": 40, "ttyColumns": 120 } }))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.send(json!({ "type": "payload", "data": "hello\r" })).await;
    let r = s.finish().await;
    assert!(r.stdout.contains("40 120"), "{r:?}");
    assert!(r.stdout.contains("got hello"), "{r:?}");
    assert_eq!(r.exit_code, Some(0));
}

#[tokio::test]
async fn concurrent_execs_in_one_sandbox() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "busy", json!({})).await;
    // A barrier rather than a stopwatch: each command marks itself and waits (up to 15 s) until
    // all eight are marked, which only happens if they run side by side.
    let runs = (0..8).map(|i| {
        let (host, id) = (&host, &id);
        let script = format!(
            "touch /tmp/ran-{i}; for n in $(seq 300); do [ $(ls /tmp/ran-* | wc -l) -ge 8 ] && break; sleep 0.05; done; \
             [ $(ls /tmp/ran-* | wc -l) -ge 8 ] && echo {i}"
        );
        async move { host.sh("p", id, &script).await }
    });
    let results = futures_util::future::join_all(runs).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.stdout, format!("{i}\n"), "they ran side by side: {r:?}");
    }
}

#[tokio::test]
async fn a_client_that_disconnects_kills_its_command() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "quitter", json!({})).await;
    let mut s = host
        .open_exec(
            "p",
            &id,
            json!({ "command": ["sh", "-c", "echo started; exec sleep 1000"] }),
            TOKEN,
        )
        .await;
    loop {
        let f = s.next().await.unwrap();
        if f["type"] == "stdOut" {
            break;
        }
    }
    assert!(host.sh("p", &id, "ps -eo args").await.stdout.contains("sleep 1000"));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.sh("p", &id, "ps -eo args").await.stdout.contains("sleep 1000") {
        assert!(Instant::now() < deadline, "the command outlived its client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn exec_into_a_sandbox_that_is_not_running_gets_an_error_frame() {
    require_root();
    let host = TestHost::start();
    let r = host.sh("p", "no-such-service", "true").await;
    assert!(r.error.as_deref().unwrap().contains("not found"), "{r:?}");
    let created = host
        .create("p", json!({ "name": "sleeper", "billing": { "deploymentPlan": "nf-compute-20" }, "deployment": { "instances": 0, "external": { "imagePath": "debian:12" } } }))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    host.wait_settled("p", &id).await;
    let r = host.sh("p", &id, "true").await;
    assert!(r.error.as_deref().unwrap().contains("scaled to 0"), "{r:?}");
    assert_eq!(r.exit_code, None);
    let r = host.exec("p", &id, json!({ "command": ["true"] }), &[]).await;
    assert!(r.error.is_some());
}

#[tokio::test]
async fn an_unknown_program_fails_like_a_container_exec() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "missing", json!({})).await;
    let r = host
        .exec(
            "p",
            &id,
            json!({ "command": ["no-such-program", "x"], "shell": "none" }),
            &[],
        )
        .await;
    assert_eq!((r.exit_code, r.status.as_deref()), (Some(127), Some("Failure")));
    assert!(r.stderr.contains("no-such-program: executable file not found"), "{r:?}");
    // Found but not executable, even for root: 126, as `docker exec` says.
    let r = host
        .exec("p", &id, json!({ "command": ["/etc/passwd"], "shell": "none" }), &[])
        .await;
    assert_eq!((r.exit_code, r.status.as_deref()), (Some(126), Some("Failure")));
    assert!(r.stderr.contains("/etc/passwd: permission denied"), "{r:?}");
    let r = host
        .exec("p", &id, json!({ "command": ["true"], "user": "mallory" }), &[])
        .await;
    assert!(r.error.as_deref().unwrap().contains("mallory"));
    let r = host
        .exec("p", &id, json!({ "command": ["id", "-u"], "user": "sandbox" }), &[])
        .await;
    assert_eq!(r.stdout, "1000\n");
}

#[tokio::test]
async fn a_large_output_streams_without_loss() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "flood", json!({})).await;
    let r = host
        .sh("p", &id, "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo end >&2")
        .await;
    assert_eq!(r.stdout.len(), 20_000_001);
    assert_eq!(r.stderr, "end\n");
    assert_eq!(r.exit_code, Some(0));
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_the_output_back() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "stalled", json!({})).await;
    let before = common::vm_rss_kib(host.pid()).unwrap();
    // 2 GB unread would be gone in these 3 s without backpressure.
    let mut session = host
        .open_exec(
            "p",
            &id,
            json!({ "command": ["sh", "-c", "head -c 2000000000 /dev/zero | tr '\\0' x"], "shell": "none" }),
            TOKEN,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = common::vm_rss_kib(host.pid()).unwrap();
    assert!(
        stalled < before + 32 * 1024,
        "the host buffered output: {before} → {stalled} KiB"
    );
    // Reading again, the stream picks up where it stopped.
    let first = session.next().await.unwrap();
    assert_eq!(first["type"], "init");
    let out = session.next().await.unwrap();
    assert!(out["data"].as_str().unwrap().bytes().all(|b| b == b'x'), "{out}");
}

#[tokio::test]
async fn a_second_init_or_garbage_does_not_break_the_host() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "garbage", json!({})).await;
    let url = format!("{}/v1/command-exec/projects/p/services/{id}", host.ws_base());
    for junk in ["not json", "{\"type\":\"init\"}", "{\"type\":\"payload\"}", "[1,2,3]"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(Message::Text(junk.into())).await.unwrap();
        let r = common::ExecSession { ws, frames: vec![] }.finish().await;
        assert!(r.error.is_some(), "{junk}: {r:?}");
    }
    assert_eq!(host.sh("p", &id, "echo still fine").await.stdout, "still fine\n");
}
