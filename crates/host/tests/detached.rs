//! Detached processes over the exec channel alone (`flankbox_protocol::detached`), run in a
//! real sandbox through real exec sessions: a process outlives the exec that started it and
//! the attach that was cut, an attach from the delivered offsets continues with no gap and no
//! repeat, a second reader replays from 0, stdin and signals reach it from any session,
//! output past the kept window is reported as gone, and a live run carries the output on its
//! own streams until it is cut, after which the process goes on into its files.

mod common;

use common::{require_root, ExecResult, TestHost};
use flankbox_protocol::detached::{
    attach_command, close_stdin_command, list_command, parse_list, run_command, signal_command, spawn_command,
    AttachDecoder, AttachEvent, Offsets, RunHeader, Stream,
};
use serde_json::{json, Value};

const PROJECT: &str = "detached";

async fn run(host: &TestHost, sandbox: &str, argv: Vec<String>, inputs: &[Value]) -> ExecResult {
    host.exec(PROJECT, sandbox, json!({ "command": argv, "shell": "none" }), inputs)
        .await
}

/// What an attach delivered: stdout, stderr, the other events, in order.
#[derive(Debug, Default)]
struct Attached {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    events: Vec<AttachEvent>,
}

impl Attached {
    fn take(&mut self, events: Vec<AttachEvent>) {
        for event in events {
            match event {
                AttachEvent::Output(Stream::Stdout, bytes) => self.stdout.extend(bytes),
                AttachEvent::Output(Stream::Stderr, bytes) => self.stderr.extend(bytes),
                other => self.events.push(other),
            }
        }
    }

    fn offsets(&self) -> Offsets {
        Offsets {
            stdout: self.stdout.len() as u64,
            stderr: self.stderr.len() as u64,
        }
    }
}

async fn attach(host: &TestHost, sandbox: &str, id: &str, from: Offsets) -> Attached {
    let result = run(host, sandbox, attach_command(id, from, false).unwrap(), &[]).await;
    assert_eq!(result.exit_code, Some(0), "attach: {result:?}");
    let mut attached = Attached::default();
    attached.take(AttachDecoder::new().push(result.stdout.as_bytes()).unwrap());
    attached
}

async fn spawn(host: &TestHost, sandbox: &str, id: &str, keep: u64, script: &str) {
    let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let described = serde_json::to_string(&argv).unwrap();
    let result = run(host, sandbox, spawn_command(id, keep, &described, &argv).unwrap(), &[]).await;
    assert_eq!(
        (result.exit_code, result.stdout.trim()),
        (Some(0), id),
        "spawn: {result:?}"
    );
}

fn lines(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("line {i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_process_outlives_its_connections_and_replays_from_any_offset() {
    require_root();
    let host = TestHost::start();
    let sb = host.sandbox(PROJECT, "keeper", json!({})).await;

    // 60 lines over about 1.2 s, a line on stderr, then exit 5.
    spawn(
        &host,
        &sb,
        "p1",
        1 << 20,
        "for i in $(seq 1 60); do echo line $i; sleep 0.02; done; echo oops >&2; exit 5",
    )
    .await;

    // An attach cut after its first output: the process runs on.
    let mut first = Attached::default();
    {
        let argv = attach_command("p1", Offsets::default(), false).unwrap();
        let mut session = host
            .open_exec(PROJECT, &sb, json!({ "command": argv, "shell": "none" }), common::TOKEN)
            .await;
        let mut decoder = AttachDecoder::new();
        while first.stdout.is_empty() {
            let frame = session.next().await.expect("output before the cut");
            if frame["type"] == "stdOut" {
                first.take(decoder.push(frame["data"].as_str().unwrap().as_bytes()).unwrap());
            }
        }
        // Dropped without a close, as a network cut would.
    }
    let listed = parse_list(&run(&host, &sb, list_command(), &[]).await.stdout);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].id.as_str(), listed[0].running), ("p1", true));
    assert_eq!(
        listed[0].command,
        json!([
            "sh",
            "-c",
            "for i in $(seq 1 60); do echo line $i; sleep 0.02; done; echo oops >&2; exit 5"
        ])
    );

    // Resumed from what was delivered: everything once, in order, and the real exit code.
    let rest = attach(&host, &sb, "p1", first.offsets()).await;
    let mut whole = first.stdout.clone();
    whole.extend(&rest.stdout);
    assert_eq!(String::from_utf8(whole).unwrap(), lines(1, 60));
    assert_eq!(rest.stderr, b"oops\n");
    assert_eq!(rest.events, vec![AttachEvent::Exit(Some(5))]);

    // A second reader, after the end, from 0: all of it again.
    let again = attach(&host, &sb, "p1", Offsets::default()).await;
    assert_eq!(String::from_utf8(again.stdout).unwrap(), lines(1, 60));
    assert_eq!(again.events, vec![AttachEvent::Exit(Some(5))]);
    let listed = parse_list(&run(&host, &sb, list_command(), &[]).await.stdout);
    assert_eq!((listed[0].running, listed[0].exit_code), (false, Some(5)));

    // From the middle of stderr only.
    let tail = attach(
        &host,
        &sb,
        "p1",
        Offsets {
            stdout: 9999,
            stderr: 2,
        },
    )
    .await;
    assert_eq!((tail.stdout.len(), tail.stderr.as_slice()), (0, &b"ps\n"[..]));

    // An image without setsid: a clear refusal, and nothing started.
    let argv = spawn_command("p2", 1 << 20, "[]", &["true".to_string()]).unwrap();
    let tools = "mkdir -p /tmp/no-setsid && for t in split stat mkfifo tail head sleep date cat; do ln -sf \"$(command -v $t)\" /tmp/no-setsid/; done";
    run(&host, &sb, vec!["sh".into(), "-c".into(), tools.into()], &[]).await;
    let mut script = argv.clone();
    script[2] = format!("PATH=/tmp/no-setsid; {}", argv[2]);
    let refused = run(&host, &sb, script, &[]).await;
    assert_eq!(refused.exit_code, Some(127), "{refused:?}");
    assert!(refused.stderr.contains("need 'setsid' in the image"), "{refused:?}");
    assert!(parse_list(&run(&host, &sb, list_command(), &[]).await.stdout)
        .iter()
        .all(|p| p.id != "p2"));

    // Nothing of that id.
    let none = attach(&host, &sb, "nope", Offsets::default()).await;
    assert_eq!(none.events, vec![AttachEvent::NoSuchProcess]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_signals_and_the_kept_window_work_from_any_session() {
    require_root();
    let host = TestHost::start();
    let sb = host.sandbox(PROJECT, "inputs", json!({})).await;

    // stdin from an attach, then its end closes the process's stdin.
    spawn(
        &host,
        &sb,
        "reader",
        1 << 20,
        "while read -r l; do echo got $l; done; echo eof",
    )
    .await;
    let argv = attach_command("reader", Offsets::default(), true).unwrap();
    let inputs = [
        json!({ "type": "payload", "data": "one\ntwo\n" }),
        json!({ "type": "stdInEnd" }),
    ];
    let result = run(&host, &sb, argv, &inputs).await;
    let mut attached = Attached::default();
    attached.take(AttachDecoder::new().push(result.stdout.as_bytes()).unwrap());
    assert_eq!(String::from_utf8(attached.stdout).unwrap(), "got one\ngot two\neof\n");
    assert_eq!(attached.events, vec![AttachEvent::Exit(Some(0))]);

    // A kill from another session ends the whole group.
    spawn(&host, &sb, "sleeper", 1 << 20, "sleep 600 & sleep 600; echo never").await;
    let killed = run(&host, &sb, signal_command("sleeper", "KILL").unwrap(), &[]).await;
    assert_eq!(killed.exit_code, Some(0), "{killed:?}");
    let ended = attach(&host, &sb, "sleeper", Offsets::default()).await;
    assert_eq!(ended.events, vec![AttachEvent::Exit(Some(137))]);
    let sleeping = run(
        &host,
        &sb,
        vec!["sh".into(), "-c".into(), "pgrep -fc '^sleep 600$' || true".into()],
        &[],
    )
    .await;
    assert_eq!(sleeping.stdout.trim(), "0", "sleeps left running");
    let unknown = run(&host, &sb, signal_command("ghost", "TERM").unwrap(), &[]).await;
    assert_eq!(unknown.exit_code, Some(3));

    // Closing stdin from a session of its own.
    spawn(&host, &sb, "cat", 1 << 20, "cat; echo closed").await;
    let closed = run(&host, &sb, close_stdin_command("cat").unwrap(), &[]).await;
    assert_eq!(closed.exit_code, Some(0), "{closed:?}");
    let ended = attach(&host, &sb, "cat", Offsets::default()).await;
    assert_eq!(
        (ended.stdout.as_slice(), ended.events.as_slice()),
        (&b"closed\n"[..], &[AttachEvent::Exit(Some(0))][..])
    );

    // 5 MiB with 2 MiB kept (two 1 MiB segments): an attach from 0 learns where the kept
    // output starts, then gets all of it.
    spawn(&host, &sb, "flood", 2 << 20, "head -c 5242880 /dev/zero | tr '\\0' x").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while parse_list(&run(&host, &sb, list_command(), &[]).await.stdout)
        .iter()
        .any(|p| p.id == "flood" && p.running)
    {
        assert!(std::time::Instant::now() < deadline, "the flood never ended");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let flood = attach(&host, &sb, "flood", Offsets::default()).await;
    assert_eq!(
        flood.events,
        vec![
            AttachEvent::Gone {
                stream: Stream::Stdout,
                kept_from: 3 << 20
            },
            AttachEvent::Exit(Some(0))
        ]
    );
    assert_eq!(flood.stdout.len(), 2 << 20);
    assert!(flood.stdout.iter().all(|&b| b == b'x'));
}

/// Starts `script` as process `id` with a live run, cut once its first output came: what it
/// delivered (the header taken off).
async fn run_then_cut(host: &TestHost, sandbox: &str, id: &str, script: &str) -> Attached {
    let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let run = run_command(id, 1 << 20, "[]", false, &argv).unwrap();
    let mut session = host
        .open_exec(
            PROJECT,
            sandbox,
            json!({ "command": run, "shell": "none" }),
            common::TOKEN,
        )
        .await;
    let mut header = RunHeader::default();
    let mut got = Attached::default();
    while got.stdout.is_empty() {
        let frame = session.next().await.expect("output before the cut");
        let data = frame["data"].as_str().unwrap_or_default().as_bytes();
        match frame["type"].as_str() {
            Some("stdOut") => got.stdout.extend(header.strip(data).unwrap()),
            Some("stdErr") => got.stderr.extend(data),
            _ => {}
        }
    }
    // Dropped without a close, as a network cut would.
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_carries_its_output_live_and_a_cut_run_goes_on_into_its_files() {
    require_root();
    let host = TestHost::start();
    let sb = host.sandbox(PROJECT, "runner", json!({})).await;
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];

    // Live on the exec's own streams, with the process's exit code, and stdin.
    let argv = sh("read -r l; echo got $l; echo warn >&2; exit 3");
    let inputs = [
        json!({ "type": "payload", "data": "one\n" }),
        json!({ "type": "stdInEnd" }),
    ];
    let live = run(
        &host,
        &sb,
        run_command("r1", 1 << 20, "[]", true, &argv).unwrap(),
        &inputs,
    )
    .await;
    assert_eq!(
        (live.stdout.as_str(), live.stderr.as_str(), live.exit_code),
        ("S\ngot one\n", "warn\n", Some(3)),
        "{live:?}"
    );
    // The files hold the same, for any later reader.
    let replay = attach(&host, &sb, "r1", Offsets::default()).await;
    assert_eq!(
        (replay.stdout.as_slice(), replay.stderr.as_slice()),
        (&b"got one\n"[..], &b"warn\n"[..])
    );
    assert_eq!(replay.events, vec![AttachEvent::Exit(Some(3))]);

    // Cut after the first line: the process goes on, and an attach from what was delivered
    // gives the rest once, then the exit code.
    let script = "for i in $(seq 1 60); do echo line $i; sleep 0.02; done; echo oops >&2; exit 5";
    let first = run_then_cut(&host, &sb, "r2", script).await;
    let rest = attach(&host, &sb, "r2", first.offsets()).await;
    let mut whole = first.stdout.clone();
    whole.extend(&rest.stdout);
    assert_eq!(String::from_utf8(whole).unwrap(), lines(1, 60));
    let mut errors = first.stderr.clone();
    errors.extend(&rest.stderr);
    assert_eq!(errors, b"oops\n");
    assert_eq!(rest.events, vec![AttachEvent::Exit(Some(5))]);

    // A kill right after the run answered finds the process (the signal waits for its pid).
    let run_argv = run_command("r3", 1 << 20, "[]", false, &sh("echo up; sleep 600")).unwrap();
    let mut session = host
        .open_exec(
            PROJECT,
            &sb,
            json!({ "command": run_argv, "shell": "none" }),
            common::TOKEN,
        )
        .await;
    loop {
        let frame = session.next().await.expect("the header");
        if frame["type"] == "stdOut" {
            break;
        }
    }
    let killed = run(&host, &sb, signal_command("r3", "KILL").unwrap(), &[]).await;
    assert_eq!(killed.exit_code, Some(0), "{killed:?}");
    let mut code = None;
    while let Some(frame) = session.next().await {
        if frame["type"] == "completion" {
            code = frame["data"]["exitCode"].as_i64();
            break;
        }
    }
    assert_eq!(code, Some(137));

    // A missing tool: nothing starts, the run says which, with 127 and no header.
    let bare = run(
        &host,
        &sb,
        {
            let mut argv = run_command("r4", 1 << 20, "[]", false, &sh("true")).unwrap();
            argv[2] = format!("PATH=/nonexistent; {}", argv[2]);
            argv
        },
        &[],
    )
    .await;
    assert_eq!((bare.exit_code, bare.stdout.as_str()), (Some(127), ""), "{bare:?}");
    assert!(bare.stderr.contains("need 'setsid'"), "{bare:?}");
}
