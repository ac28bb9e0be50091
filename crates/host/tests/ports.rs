//! Exposed ports and logs (contract §2.4, §4), against the real host with real isolation: a
//! server inside a sandbox, reached by its port's name, and the main process's lines tailed.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{require_root, TestHost, TOKEN};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn sandbox_serving(host: &TestHost, name: &str, ports: &[u16]) -> String {
    host.sandbox_running("p", name, &common::port_server_command(ports))
        .await
}

async fn set_ports(host: &TestHost, id: &str, ports: Value) {
    let (code, body) = host
        .call(
            "POST",
            &format!("/v1/projects/p/services/{id}/ports"),
            Some(json!({ "ports": ports })),
        )
        .await;
    assert_eq!((code, &body), (200, &json!({ "data": {} })));
}

async fn get_ports(host: &TestHost, id: &str) -> Vec<Value> {
    let (code, body) = host
        .call("GET", &format!("/v1/projects/p/services/{id}/ports"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    body["data"]["ports"].as_array().unwrap().clone()
}

/// An HTTP client that resolves these `*.localhost` names to loopback, as browsers do.
fn browser_like(names: &[&str]) -> reqwest::Client {
    names
        .iter()
        .fold(reqwest::Client::builder(), |builder, dns| {
            let (name, port) = dns.rsplit_once(':').unwrap();
            builder.resolve(name, SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())))
        })
        .build()
        .unwrap()
}

/// GETs `url` until the server inside answers (it starts after the sandbox does).
async fn get_when_up(client: &reqwest::Client, url: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = client.get(url).send().await.unwrap();
        if resp.status() != 502 || Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `GET /` over a raw TCP connection to `addr`, retried while the sandbox's server is still
/// starting: until then the host's forward accepts, fails to dial in, and resets the connection.
async fn tcp_get_when_up(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = async {
            let mut tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await?;
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        match attempt.await {
            Ok(answer) if !answer.is_empty() => return answer,
            other if Instant::now() > deadline => panic!("{addr} never answered: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn a_public_http_port_serves_the_sandbox_page_and_websockets_by_its_name() {
    require_root();
    let host = TestHost::start();
    let id = sandbox_serving(&host, "web", &[8080]).await;
    set_ports(
        &host,
        &id,
        json!([{ "name": "p01", "internalPort": 8080, "public": true, "protocol": "HTTP" }]),
    )
    .await;
    let ports = get_ports(&host, &id).await;
    let dns = ports[0]["dns"].as_str().unwrap().to_string();
    assert_eq!(dns, format!("p01--{id}--p.localhost:{}", host.port()));
    assert_eq!(ports[0]["id"].as_str().map(str::len), Some(6));

    let client = browser_like(&[&dns]);
    let resp = get_when_up(&client, &format!("http://{dns}/")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello from the sandbox\n");

    // Bodies both ways, and the headers the server sees.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = client
        .post(format!("http://{dns}/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.bytes().await.unwrap().as_ref(), body.as_slice());
    let seen = client
        .get(format!("http://{dns}/headers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(seen.contains(&format!("host: {dns}")), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");

    // Browser connections come and go; the proxy's connection into the sandbox is kept for the
    // next request (one dial through the agent, not one per request).
    let peer = |client: reqwest::Client| {
        let url = format!("http://{dns}/peer");
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let fresh = || {
        let (name, port) = dns.rsplit_once(':').unwrap();
        reqwest::Client::builder()
            .resolve(name, SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let first = peer(fresh()).await;
    assert!(first.starts_with("127.0.0.1:"), "{first}");
    // The proxy's client puts a connection back in its pool from a task of its own once the
    // answer is through; a request that comes before then dials anew. A browser's next request
    // is not that quick, and a loaded machine can delay that task.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        peer(fresh()).await,
        first,
        "the second request came on the kept connection"
    );

    // The API itself is untouched on its own address.
    let (code, _) = host.call("GET", &format!("/v1/projects/p/services/{id}"), None).await;
    assert_eq!(code, 200);

    // A WebSocket echo server inside, through the name.
    let (name, port) = dns.rsplit_once(':').unwrap();
    // Each step names itself: a failure here once lost its message.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        .await
        .expect("connect to the proxy");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{name}:{port}/chat"), tcp)
        .await
        .expect("WebSocket handshake through the proxy");
    let text = Message::Text("ping through the proxy".into());
    let binary = Message::Binary(vec![0u8, 1, 2, 255].into());
    ws.send(text.clone()).await.expect("send text");
    ws.send(binary.clone()).await.expect("send binary");
    let mut echoed = Vec::new();
    for _ in 0..2 {
        match ws.next().await {
            Some(Ok(message)) => echoed.push(message),
            other => panic!("echo {}: {other:?} after {echoed:?}", echoed.len() + 1),
        }
    }
    assert_eq!(echoed, [text, binary]);
    ws.close(None).await.expect("close handshake");
}

#[tokio::test]
async fn refusals_are_clear_pages_and_delete_frees_everything() {
    require_root();
    let host = TestHost::start();
    let id = sandbox_serving(&host, "refuse", &[8080, 9000]).await;
    set_ports(
        &host,
        &id,
        json!([
            { "name": "web", "internalPort": 8080, "public": true, "protocol": "HTTP" },
            { "name": "idle", "internalPort": 9999, "public": true, "protocol": "HTTP" },
            { "name": "raw", "internalPort": 9000, "public": false, "protocol": "TCP" }
        ]),
    )
    .await;
    let ports = get_ports(&host, &id).await;
    let dns = |name: &str| {
        ports.iter().find(|p| p["name"] == name).unwrap()["dns"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (web, idle) = (dns("web"), dns("idle"));
    let client = browser_like(&[&web, &idle]);
    assert_eq!(get_when_up(&client, &format!("http://{web}/")).await.status(), 200);

    // Nothing listens on 9999: a 502 page that says so.
    let idle = client.get(format!("http://{idle}/")).send().await.unwrap();
    assert_eq!(idle.status(), 502);
    assert!(idle.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(idle.text().await.unwrap().contains("Nothing is listening on port 9999"));

    // A TCP port gets a host loopback port that reaches its server.
    let raw = dns("raw");
    assert!(raw.starts_with("127.0.0.1:"), "{raw}");
    let answer = tcp_get_when_up(&raw).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello from the sandbox\n"),
        "{answer}"
    );

    // An unknown service or port: 404.
    let port = host.port();
    let other = browser_like(&[&format!("p01--nothing--p.localhost:{port}")]);
    let missing = other
        .get(format!("http://p01--nothing--p.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("no service nothing"));

    // Paused: 503, and it says so.
    let (code, _) = host
        .call("POST", &format!("/v1/projects/p/services/{id}/pause"), Some(json!({})))
        .await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let paused = loop {
        let r = client.get(format!("http://{web}/")).send().await.unwrap();
        if r.status() == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(paused.status(), 503);
    assert!(paused.text().await.unwrap().contains("paused"));

    // Deleted: the name is gone and the TCP listener is closed.
    let (code, _) = host
        .call("DELETE", &format!("/v1/projects/p/services/{id}"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(client.get(format!("http://{web}/")).send().await.unwrap().status(), 404);
    assert!(
        tokio::net::TcpStream::connect(&raw).await.is_err(),
        "the TCP port is freed"
    );
}

#[tokio::test]
async fn a_sandbox_reaches_neither_the_host_nor_other_sandboxes_ports() {
    require_root();
    let host = TestHost::start();
    let target = sandbox_serving(&host, "target", &[8080, 9000]).await;
    set_ports(
        &host,
        &target,
        json!([
            { "name": "web", "internalPort": 8080, "public": true, "protocol": "HTTP" },
            { "name": "raw", "internalPort": 9000, "public": false, "protocol": "TCP" }
        ]),
    )
    .await;
    let ports = get_ports(&host, &target).await;
    let web = ports[0]["dns"].as_str().unwrap().to_string();
    let raw_port = ports[1]["dns"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        get_when_up(&browser_like(&[&web]), &format!("http://{web}/"))
            .await
            .status(),
        200
    );

    let prober = host.sandbox("p", "prober", json!({})).await;
    let api = host.port();
    // The API port, the TCP forward's host port, the target's own port numbers, and the public
    // name (which resolves to the prober's own loopback, if at all).
    let script = format!(
        "for port in {api} {raw_port} 8080 9000; do timeout 3 bash -c \"echo > /dev/tcp/127.0.0.1/$port\" 2>&1; echo rc=$?; done; \
         python3 -c \"import urllib.request as u
try: u.urlopen('http://{web}/', timeout=2); print('REACHED')
except Exception as e: print('blocked:', e)\""
    );
    let r = host.sh("p", &prober, &script).await;
    assert_eq!(r.stdout.matches("rc=1").count(), 4, "every attempt fails: {r:?}");
    let refused = r
        .stdout
        .lines()
        .filter(|l| l.contains("/dev/tcp/") && l.ends_with("Connection refused"));
    assert_eq!(refused.count(), 4, "{r:?}");
    assert!(r.stdout.contains("blocked:") && !r.stdout.contains("REACHED"), "{r:?}");
}

/// Reads tail frames until `want` lines arrived or the deadline passes.
async fn read_lines<S>(ws: &mut S, want: usize) -> Vec<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while lines.len() < want {
        let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            break;
        };
        let frame: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(frame["type"], "log-lines", "{frame}");
        lines.extend(frame["data"].as_array().unwrap().iter().cloned());
    }
    lines
}

/// The numbers of `tick N` log lines.
fn tick_numbers(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            l["log"]
                .as_str()
                .unwrap()
                .strip_prefix("tick ")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn logs_tail_live_and_answer_range_queries() {
    require_root();
    let host = TestHost::start();
    let command = "echo starting; sleep 0.3; echo oops >&2; sleep 0.3; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";
    let id = host.sandbox_running("p", "chatty", command).await;
    // Until three ticks are logged, the tail's backlog would start before them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = host
            .call(
                "GET",
                &format!("/v1/projects/p/services/{id}/logs?queryType=range&lineLimit=3"),
                None,
            )
            .await;
        let lines = body["data"].as_array().cloned().unwrap_or_default();
        if lines.len() == 3
            && lines
                .iter()
                .all(|l| l["log"].as_str().is_some_and(|t| t.starts_with("tick ")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no three ticks logged: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The tail: init with the token, then the latest lines, then live ones.
    let url = format!(
        "{}/v1/projects/p/services/{id}/logs?queryType=tail&lineLimit=3",
        host.ws_base()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let init = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": TOKEN } } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(reply))) = ws.next().await else {
        panic!("no init reply")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap(),
        json!({ "type": "init", "data": { "auth": "successful" } })
    );
    let lines = read_lines(&mut ws, 8).await;
    assert!(lines.len() >= 8, "{lines:?}");
    let ticks = tick_numbers(&lines);
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost: {ticks:?}"
    );
    assert!(lines
        .iter()
        .all(|l| l["containerId"].as_str().unwrap().starts_with("chatty-")));
    assert!(
        humantime::parse_rfc3339(lines[0]["ts"].as_str().unwrap()).is_ok(),
        "{}",
        lines[0]
    );
    ws.close(None).await.unwrap();

    // A filtered tail gets only its lines, stderr included.
    let url = format!(
        "{}/v1/projects/p/services/{id}/logs?queryType=tail&textIncludes=oops",
        host.ws_base()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let lines = read_lines(&mut ws, 1).await;
    assert_eq!(
        lines.iter().map(|l| l["log"].as_str().unwrap()).collect::<Vec<_>>(),
        ["oops"]
    );

    // A wrong token: a failed init.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let bad = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": "wrong" } } });
    ws.send(Message::Text(bad.to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(reply))) = ws.next().await else {
        panic!("no init reply")
    };
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["data"]["auth"], "failed", "{reply}");

    // The range query: a bare array, newest first by default.
    let (code, body) = host
        .call(
            "GET",
            &format!("/v1/projects/p/services/{id}/logs?queryType=range&lineLimit=2"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let ticks = tick_numbers(body["data"].as_array().unwrap());
    assert_eq!(ticks.len(), 2);
    assert_eq!(ticks[0], ticks[1] + 1, "newest first: {ticks:?}");
    let (code, body) = host
        .call(
            "GET",
            &format!("/v1/projects/p/services/{id}/logs?queryType=range&direction=forward&lineLimit=2"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["data"], json!([body["data"][0], body["data"][1]]));
    assert_eq!(
        (&body["data"][0]["log"], &body["data"][1]["log"]),
        (&json!("starting"), &json!("oops"))
    );
    let (code, body) = host
        .call(
            "GET",
            &format!("/v1/projects/p/services/{id}/logs?queryType=range&lineLimit=0"),
            None,
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("lineLimit"),
        "{body}"
    );
    let (code, _) = host
        .call_with_token(
            "GET",
            &format!("/v1/projects/p/services/{id}/logs?queryType=range"),
            None,
            "wrong",
        )
        .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn an_http2_port_is_spoken_to_in_http2() {
    require_root();
    let host = TestHost::start();
    // Node's built-in cleartext HTTP/2 server (h2c, prior knowledge), as an HTTP/2 port expects.
    let server = "exec node -e \"require('http2').createServer((q, s) => s.end('h2 ' + q.httpVersion + ' ' + q.url)).listen(8443)\"";
    let id = host.sandbox_running("p", "http2-app", server).await;
    set_ports(
        &host,
        &id,
        json!([{ "name": "h2", "internalPort": 8443, "public": true, "protocol": "HTTP/2" }]),
    )
    .await;
    let dns = get_ports(&host, &id).await[0]["dns"].as_str().unwrap().to_string();
    let resp = get_when_up(&browser_like(&[&dns]), &format!("http://{dns}/some/path?q=1")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "h2 2.0 /some/path?q=1");
}
