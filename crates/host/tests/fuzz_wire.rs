//! Fuzzes the RUNNING host over real sockets, structure-aware: REST requests shaped like the
//! protocol's bodies (create, scale, ports, volume create, attach) with mutated fields, random
//! paths, methods and headers, bad JSON, huge numbers and unicode; and exec WebSocket sessions
//! with generated frames (odd inits, payload before init, binary garbage, oversized messages,
//! odd resizes, stdInEnd twice).
//!
//! Checks: no 5xx but the port proxy's documented 503; every error body is
//! `{"error": {"status": N, "message": "…"}}` with N the HTTP status; every exec frame is a
//! protocol `ServerFrame`, with at most one `completion` and nothing after it; the host never
//! dies; no request or session hangs (10 s); the host's RSS grows under 10% from after the
//! warm-up to the end.
//!
//! By default it runs a few seconds; `FUZZ_SECONDS=N` runs it N seconds. It prints one tally.
//! It uses two sandboxes and at most one more at a time, and deletes them all at the end.

mod common;
#[path = "../../../tests/support/fuzz_runner.rs"]
mod fuzz_runner;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{require_root, TestHost, TOKEN};
use flankbox_protocol::exec::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use fuzz_runner::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PROJECT: &str = "fz";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Draws one value of `strategy`.
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy.new_tree(runner).expect("a value").current()
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

#[derive(Default)]
struct Tally {
    requests: u64,
    sessions: u64,
    statuses: BTreeMap<u16, u64>,
    server_errors: u64,
    panics: u64,
    hangs: u64,
    early_closes: u64,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }
}

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

fn create_body() -> Value {
    json!({
        "name": "fz-made",
        "billing": { "deploymentPlan": "nf-compute-20" },
        "deployment": {
            "instances": 1,
            "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
            "external": { "imagePath": "ubuntu:22.04" },
            "storage": { "ephemeralStorage": { "storageSize": 1024 } }
        },
        "ports": [{ "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": false }],
        "runtimeEnvironment": { "A": "1" }
    })
}

/// A generated request: a protocol body with mutated fields on its route, or noise.
fn request(a: &str, b: &str) -> impl Strategy<Value = Request> {
    let (a, b) = (a.to_string(), b.to_string());
    let shaped = (
        prop::sample::select(vec![0usize, 1, 2, 3, 4, 5]),
        json_edits(),
        prop::sample::select(vec![a.clone(), b.clone(), "nope".to_string()]),
    )
        .prop_map(move |(kind, edits, target)| {
            let (path, body) = match kind {
                0 => ("services/deployment".to_string(), create_body()),
                // Scale and resume only the first sandbox: exec runs in the second.
                1 => (format!("services/{a}/scale"), json!({ "instances": 1, "deploymentPlan": "nf-compute-20" })),
                2 => (
                    format!("services/{target}/ports"),
                    json!({ "ports": [{ "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": true }] }),
                ),
                3 => (
                    "volumes".to_string(),
                    json!({ "name": "fz-vol", "mounts": [{ "containerMountPath": "/data" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } }),
                ),
                4 => ("volumes/fz-vol/attach".to_string(), json!({ "nfObject": { "id": target, "type": "service" } })),
                _ => (format!("services/{a}/resume"), json!({ "instances": 1 })),
            };
            Request {
                method: "POST".into(),
                path: format!("/v1/projects/{PROJECT}/{path}"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(mutate_json(body, &edits).to_string().into_bytes()),
            }
        });
    let segment = prop_oneof![
        4 => prop::sample::select(vec![
            "v1", "projects", "teams", "t", PROJECT, "services", "deployment", "volumes", "scale", "pause", "resume",
            "restart", "ports", "containers", "logs", "attach", "detach", "plans", "regions", "command-exec",
            "edge", "playground", "config.json", "..", ".", "", "nope",
        ])
        .prop_map(String::from),
        1 => odd_string().prop_map(|s| encode_segment(&s.chars().take(60).collect::<String>())),
        1 => prop::sample::select(vec!["%zz", "%", "%2F", "%00", "%C0%AF"]).prop_map(String::from),
    ];
    let query = prop_oneof![
        3 => Just(String::new()),
        1 => prop::collection::vec(
            (
                prop::sample::select(vec!["per_page", "page", "cursor", "lineLimit", "duration", "startTime", "direction", "regexIncludes", "delete_child_objects", "queryType"]),
                prop_oneof![Just("1".to_string()), Just("18446744073709551616".to_string()), odd_string().prop_map(|s| encode_segment(&s.chars().take(30).collect::<String>()))],
            ),
            1..4,
        )
        .prop_map(|p| format!("?{}", p.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))),
    ];
    let body = prop_oneof![
        2 => Just(None),
        2 => any_json().prop_map(|v| Some(v.to_string().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        1 => (1usize..3000).prop_map(|n| Some(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes())),
        1 => Just(Some(format!("{{\"name\":\"{}\"}}", "x".repeat(3 << 20)).into_bytes())),
    ];
    let header = prop_oneof![
        prop::sample::select(vec![
            ("authorization", "Bearer nope"),
            ("authorization", "bearer test-token"),
            ("authorization", ""),
            ("content-type", "text/plain"),
            ("content-type", "application/json; charset=utf-16"),
            ("origin", "https://evil.example"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("accept", "*/*"),
            ("x-forwarded-for", "1.2.3.4"),
        ])
        .prop_map(|(k, v)| (k.to_string(), v.to_string())),
        ("x-[a-z]{1,8}", "[ -~]{0,40}"),
    ];
    let noise = (
        prop::sample::select(vec![
            "GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "FUZZ",
        ]),
        prop::collection::vec(segment, 0..8),
        query,
        prop::collection::vec(header, 0..3),
        body,
    )
        .prop_map(|(method, segments, query, headers, body)| Request {
            method: method.into(),
            path: format!("/{}{query}", segments.join("/")),
            headers,
            body,
        });
    prop_oneof![3 => shaped, 2 => noise]
}

async fn send(host: &TestHost, http: &reqwest::Client, r: &Request, tally: &mut Tally, made: &mut Vec<String>) {
    let Ok(method) = reqwest::Method::from_bytes(r.method.as_bytes()) else {
        return;
    };
    let mut req = http
        .request(method.clone(), format!("{}{}", host.base, r.path))
        .timeout(TIMEOUT);
    if !r.headers.iter().any(|(k, _)| k == "authorization") {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(b) = &r.body {
        req = req.body(b.clone());
    }
    tally.requests += 1;
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) if e.is_timeout() => {
            tally.hangs += 1;
            return tally.fail(format!("{} {} timed out", r.method, r.path));
        }
        Err(e) if e.is_builder() => return,
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            // A server may answer (and close) before reading a body it refuses, as the host does
            // with bodies over its limit: the client then fails writing the rest.
            if why.contains("error writing a body") {
                tally.early_closes += 1;
                return;
            }
            return tally.fail(format!("{} {}: {why}", r.method, r.path));
        }
    };
    let status = resp.status().as_u16();
    *tally.statuses.entry(status).or_default() += 1;
    let text = match tokio::time::timeout(TIMEOUT, resp.text()).await {
        Ok(t) => t.unwrap_or_default(),
        Err(_) => {
            tally.hangs += 1;
            return tally.fail(format!("{} {}: the body timed out", r.method, r.path));
        }
    };
    if status >= 500 && status != 503 {
        tally.server_errors += 1;
        if text.contains("\"Internal error\"") {
            tally.panics += 1;
        }
        tally.fail(format!(
            "{} {} → {status}: {}",
            r.method,
            r.path,
            text.chars().take(300).collect::<String>()
        ));
    }
    if status == 200 && r.path.ends_with("/services/deployment")
        || status == 200 && r.path.ends_with("/volumes") && r.method == "POST"
    {
        if let Some(id) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["data"]["id"].as_str().map(String::from))
        {
            let kind = if r.path.ends_with("/volumes") {
                "volumes"
            } else {
                "services"
            };
            made.push(format!("/v1/projects/{PROJECT}/{kind}/{id}"));
        }
    }
    if status >= 400 && method != reqwest::Method::HEAD {
        let shaped = serde_json::from_str::<Value>(&text).ok().is_some_and(|v| {
            v["error"]["status"].as_u64() == Some(u64::from(status))
                && v["error"]["message"].as_str().is_some_and(|m| !m.is_empty())
        });
        if !shaped {
            tally.fail(format!(
                "{} {} → {status} with a body not in Northflank's shape: {:?}",
                r.method,
                r.path,
                text.chars().take(300).collect::<String>()
            ));
        }
    }
}

/// One exec message the client sends.
#[derive(Debug, Clone)]
enum Out {
    Text(String),
    Binary(Vec<u8>),
}

fn init(context: Value) -> Value {
    json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": TOKEN }, "context": context } })
}

/// A session's messages: an init with odd fields (or none first), then frames of every kind.
fn session() -> impl Strategy<Value = (Vec<Out>, bool)> {
    let context = (
        prop::sample::select(vec!["true", "echo hi", "cat", "head -c 3", "exit 3", "printf '\\xff\\xfe'", "sleep 0.2; echo x"]),
        json_edits(),
        any::<bool>(),
    )
        .prop_map(|(command, edits, tty)| {
            mutate_json(
                json!({ "command": command, "shell": "bash -c", "tty": tty, "ttyColumns": 80, "ttyRows": 24, "encoding": "utf-8", "user": "root" }),
                &edits,
            )
        });
    let frame = prop_oneof![
        3 => odd_string().prop_map(|s| Out::Text(json!({ "type": "payload", "data": s }).to_string())),
        1 => Just(Out::Text(json!({ "type": "stdInEnd" }).to_string())),
        1 => (any_json(), any_json()).prop_map(|(r, c)| Out::Text(json!({ "type": "resize", "data": { "ttyRows": r, "ttyColumns": c } }).to_string())),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(r, c)| Out::Text(json!({ "type": "resize", "data": { "ttyRows": r, "ttyColumns": c } }).to_string())),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Out::Binary),
        1 => any_json().prop_map(|v| Out::Text(v.to_string())),
        1 => (Just(init(json!({}))), byte_edits()).prop_map(|(i, e)| Out::Binary(mutate_bytes(i.to_string().into_bytes(), &e))),
    ];
    (
        prop_oneof![4 => context.prop_map(|c| Some(Out::Binary(init(c).to_string().into_bytes()))), 1 => Just(None)],
        prop::collection::vec(frame.clone(), 0..3),
        prop::collection::vec(frame, 0..5),
        any::<bool>(),
        prop::sample::select(vec![
            false, false, false, false, false, false, false, false, false, true,
        ]),
    )
        .prop_map(|(init, before, after, end_twice, oversized)| {
            let mut out = before;
            out.extend(init);
            out.extend(after);
            if end_twice {
                out.push(Out::Text(json!({ "type": "stdInEnd" }).to_string()));
                out.push(Out::Text(json!({ "type": "stdInEnd" }).to_string()));
            }
            if oversized {
                out.push(Out::Text(
                    json!({ "type": "payload", "data": "x".repeat((16 << 20) + 1) }).to_string(),
                ));
            }
            (out, oversized)
        })
}

async fn exec_session(host: &TestHost, service: &str, messages: &[Out], oversized: bool, tally: &mut Tally) {
    tally.sessions += 1;
    let url = format!(
        "{}/v1/command-exec/projects/{PROJECT}/services/{service}",
        host.ws_base()
    );
    let connected = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url)).await;
    let mut ws = match connected {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return tally.fail(format!("exec connect: {e}")),
        Err(_) => {
            tally.hangs += 1;
            return tally.fail("exec connect timed out".into());
        }
    };
    let has_init = messages.iter().any(|m| match m {
        Out::Text(t) => t.starts_with("{\"type\":\"init\"") || t.contains("\"apiToken\""),
        Out::Binary(b) => String::from_utf8_lossy(b).contains("\"apiToken\""),
    });
    for m in messages {
        let msg = match m {
            Out::Text(t) => Message::Text(t.clone().into()),
            Out::Binary(b) => Message::Binary(b.clone().into()),
        };
        if ws.send(msg).await.is_err() {
            break;
        }
    }
    // Read until the host closes; a command still waiting for stdin after 1 s is let go.
    let mut completions = 0;
    let mut after_completion = false;
    let mut heard = false;
    let started = Instant::now();
    loop {
        // Without an init the host rightly waits for one (30 s): that is no hang.
        let wait = if heard || !has_init {
            Duration::from_secs(1)
        } else {
            TIMEOUT
        };
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) if heard || !has_init => break,
            Err(_) => {
                tally.hangs += 1;
                tally.fail(format!(
                    "exec session: nothing from the host in 10 s ({messages:.200?})"
                ));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // Only an oversized message may end a session without a close frame.
                if !oversized && !matches!(e, tokio_tungstenite::tungstenite::Error::ConnectionClosed) {
                    tally.panics += 1;
                    tally.fail(format!("exec session dropped: {e}"));
                }
                break;
            }
            Ok(Some(Ok(msg))) => {
                heard = true;
                let bytes = match msg {
                    Message::Text(t) => t.as_bytes().to_vec(),
                    Message::Binary(b) => b.to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                match serde_json::from_slice::<ServerFrame>(&bytes) {
                    Ok(ServerFrame::Completion(_)) => completions += 1,
                    Ok(_) if completions > 0 => after_completion = true,
                    Ok(_) => {}
                    Err(e) => tally.fail(format!(
                        "exec frame is not a ServerFrame ({e}): {:?}",
                        String::from_utf8_lossy(&bytes)
                    )),
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    if completions > 1 || after_completion {
        tally.fail(format!(
            "exec session: {completions} completions, frames after one: {after_completion}"
        ));
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

#[tokio::test]
async fn the_running_host_survives_generated_requests_and_sessions() {
    require_root();
    let host = TestHost::start();
    let pid = host.pid();
    let a = host.sandbox(PROJECT, "fz-a", json!({})).await;
    let b = host.sandbox(PROJECT, "fz-b", json!({})).await;
    // A fresh connection for each request: a connection the host closed after refusing a huge
    // body early must not fail the next request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut runner = TestRunner::default();
    let requests = request(&a, &b);
    let sessions = session();
    let mut tally = Tally::default();
    let mut made = Vec::new();
    let seconds = fuzz_seconds();
    let (warmup, total) = match seconds {
        Some(s) => (Duration::from_secs((s / 10).clamp(2, 60)), Duration::from_secs(s)),
        None => (Duration::from_secs(2), Duration::from_secs(6)),
    };
    let started = Instant::now();
    let mut rss_start = None;
    let mut round = 0u64;
    while started.elapsed() < total && alive(pid) {
        round += 1;
        let r = draw(&mut runner, &requests);
        send(&host, &http, &r, &mut tally, &mut made).await;
        // At most one sandbox or volume made by a fuzzed create lives at a time.
        for path in made.drain(..) {
            let _ = http
                .delete(format!("{}{path}", host.base))
                .bearer_auth(TOKEN)
                .timeout(TIMEOUT)
                .send()
                .await;
        }
        if round % 10 == 0 {
            let (messages, oversized) = draw(&mut runner, &sessions);
            exec_session(&host, &b, &messages, oversized, &mut tally).await;
        }
        if rss_start.is_none() && started.elapsed() >= warmup {
            rss_start = common::vm_rss_kib(pid);
        }
    }
    let survived = alive(pid);
    let rss_end = common::vm_rss_kib(pid);
    // The host still serves, and the sandboxes go.
    let (status, _) = host
        .call("GET", &format!("/v1/projects/{PROJECT}/services"), None)
        .await;
    for id in [&a, &b] {
        host.call("DELETE", &format!("/v1/projects/{PROJECT}/services/{id}"), None)
            .await;
    }
    host.call("DELETE", &format!("/v1/projects/{PROJECT}/volumes/fz-vol"), None)
        .await;
    let growth = match (rss_start, rss_end) {
        (Some(s), Some(e)) if s > 0 => (e as f64 - s as f64) / s as f64 * 100.0,
        _ => 0.0,
    };
    println!(
        "fuzz wire: {} requests, {} sessions in {:.0}s, statuses {:?}, 5xx (not 503): {}, panics: {}, hangs: {}, \
         closed while sending a refused body: {}, host alive: {survived}, RSS {} → {} KiB ({growth:+.1}%), failures: {}",
        tally.requests,
        tally.sessions,
        started.elapsed().as_secs_f64(),
        tally.statuses,
        tally.server_errors,
        tally.panics,
        tally.hangs,
        tally.early_closes,
        rss_start.unwrap_or(0),
        rss_end.unwrap_or(0),
        tally.failures.len(),
    );
    for f in &tally.failures {
        println!("  {f}");
    }
    assert!(survived, "the host died");
    assert_eq!(status, 200, "the host no longer serves");
    assert!(
        tally.failures.is_empty(),
        "{} failures: {:#?}",
        tally.failures.len(),
        tally.failures
    );
    assert!(
        growth < 10.0,
        "host RSS grew {growth:.1}% ({rss_start:?} → {rss_end:?} KiB)"
    );
}
