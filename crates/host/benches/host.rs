//! Host benchmarks, each printed beside a baseline measured in the same run:
//! - cold start (create → COMPLETED → first exec output byte) vs a bare namespaced spawn;
//! - exec round trip (`true` in a warm sandbox) vs the same bare spawn;
//! - an exposed port: HTTP request latency and download throughput through the port proxy, vs
//!   a direct loopback connection to the same server program running on the host;
//! - exec output throughput (200 MB of stdout, as text and as base64) vs a raw WebSocket
//!   stream of the same frames on loopback.
//!
//! Run with `cargo bench -p flankbox-host --bench host` (as root). `BENCH_RUNS` scales the
//! sample counts; `BENCH_ONLY=ports` runs only the port proxy part, `BENCH_ONLY=cold` only
//! the cold starts, `BENCH_ONLY=exec` only the exec round trips, `BENCH_ONLY=throughput` only the exec output throughput.
//! `BENCH_AB=PATH` (another build of `flankbox-host`) adds that build's cold starts, taken in
//! turn with this build's, as a second row (with or without `BENCH_ONLY=cold`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{TestHost, TOKEN};
use serde_json::json;

/// Pause before each measured cold start and each baseline spawn.
const PAUSE: Duration = Duration::from_millis(150);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    }
}

/// clone(2) into fresh user, pid, mount, net, ipc, uts and cgroup namespaces, exec
/// `/bin/echo x` with stdout on a pipe, wait for its first byte and its exit: the least a
/// namespaced sandbox start can cost.
fn bare_namespaced_spawn() -> Duration {
    let started = Instant::now();
    let mut fds = [0; 2];
    // SAFETY: plain syscalls; the child only dup2s, execs and exits.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        let pid = libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid == 0 {
            libc::dup2(fds[1], 1);
            let argv = [c"/bin/echo".as_ptr(), c"x".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        libc::close(fds[1]);
        let mut byte = 0u8;
        assert_eq!(libc::read(fds[0], (&mut byte as *mut u8).cast(), 1), 1);
        let elapsed = started.elapsed();
        libc::close(fds[0]);
        libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
        elapsed
    }
}

fn row(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<42} p50 {:>7.2} ms  p99 {:>7.2} ms   baseline p50 {:>6.2} ms  p99 {:>6.2} ms   ratio p50 {:>5.1}x",
        ms(s.p50),
        ms(s.p99),
        ms(base.p50),
        ms(base.p99),
        s.p50.as_secs_f64() / base.p50.as_secs_f64()
    );
}

/// Time to the first output byte of an exec, and to its close.
async fn exec_once(host: &TestHost, service: &str, command: serde_json::Value) -> (Duration, Duration) {
    let started = Instant::now();
    let mut session = host
        .open_exec("bench", service, json!({ "command": command, "shell": "none" }), TOKEN)
        .await;
    let mut first = None;
    while let Some(f) = session.next().await {
        if first.is_none() && (f["type"] == "stdOut" || f["type"] == "completion") {
            first = Some(started.elapsed());
        }
        if f.get("close").is_some() {
            break;
        }
    }
    (first.unwrap_or_default(), started.elapsed())
}

/// `runs` cold starts on each of `hosts`, taken in turn (each round in the other order, so that
/// neither always follows the other's refill): each creates a service, polls it to COMPLETED,
/// execs `echo x` and times the first output byte; a bare spawn is measured before each round.
async fn cold_starts(hosts: &[&TestHost], runs: usize) -> (Vec<Vec<Duration>>, Vec<Duration>) {
    for host in hosts {
        // Warm-up: the first boot pays for page-cache misses.
        host.sandbox("bench", "warmup", json!({})).await;
    }
    let mut cold = vec![Vec::new(); hosts.len()];
    let mut base = Vec::new();
    for i in 0..runs {
        // Each is measured after the same pause (which also lets the pool refill, as it would
        // between two users' creates): this VM runs noticeably slower right after idling.
        tokio::time::sleep(PAUSE).await;
        base.push(bare_namespaced_spawn());
        let mut order: Vec<usize> = (0..hosts.len()).collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for k in order {
            cold[k].push(cold_start(hosts[k], i).await);
        }
    }
    (cold, base)
}

/// One cold start, after the pause.
async fn cold_start(host: &TestHost, i: usize) -> Duration {
    tokio::time::sleep(PAUSE).await;
    if std::env::var_os("BENCH_DETAIL").is_some() {
        let t = Instant::now();
        host.call("GET", "/v1/plans", None).await;
        eprintln!("get after pause {:.2}", ms(t.elapsed()));
        tokio::time::sleep(PAUSE).await;
    }
    let started = Instant::now();
    let name = format!("cold-{i}");
    host.create(
        "bench",
        json!({ "name": name, "billing": { "deploymentPlan": "nf-compute-200" },
                "deployment": { "instances": 1, "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
                                "external": { "imagePath": "ubuntu:22.04" } } }),
    )
    .await;
    let created = started.elapsed();
    assert_eq!(host.wait_settled("bench", &name).await, "COMPLETED");
    let until_exec = started.elapsed();
    let (first_byte, _) = exec_once(host, &name, json!(["echo", "x"])).await;
    if std::env::var_os("BENCH_DETAIL").is_some() {
        eprintln!(
            "create {:.2} settle {:.2} first byte {:.2}",
            ms(created),
            ms(until_exec),
            ms(until_exec + first_byte)
        );
    }
    host.call("DELETE", &format!("/v1/projects/bench/services/{name}"), None)
        .await;
    until_exec + first_byte
}

#[tokio::main]
async fn main() {
    common::require_root();
    let scale: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!(
        "flankbox-host bench ({}), {} cold starts, {} exec round trips",
        std::env::consts::ARCH,
        40 * scale,
        300 * scale
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    match only.as_str() {
        "ports" => return port_proxy(&TestHost::start(), 300 * scale).await,
        "throughput" => return exec_throughput(&TestHost::start()).await,
        "cold" => return cold_starts_ab(40 * scale).await,
        "exec" => return exec_round_trips(&TestHost::start(), 300 * scale).await,
        _ => {}
    }
    cold_starts_ab(40 * scale).await;
    let no_pool = TestHost::start_with(&["--warm-pool", "0"]);
    cold_starts_row(&no_pool, 20 * scale, "  the same with --warm-pool 0").await;
    drop(no_pool);
    let host = TestHost::start();
    exec_round_trips(&host, 300 * scale).await;
    port_proxy(&host, 300 * scale).await;
    exec_throughput(&host).await;
}

/// The cold start row's name.
const COLD_ROW: &str = "cold start: create -> COMPLETED -> 1st byte";

/// `n` cold starts on `host`, printed as one row beside the bare spawns between them.
async fn cold_starts_row(host: &TestHost, n: usize, name: &str) {
    let (mut cold, base) = cold_starts(&[host], n).await;
    row(name, &stats(cold.remove(0)), &stats(base));
}

/// The cold start row. With `BENCH_AB=PATH` (another build of `flankbox-host`), a second row
/// for that build, its cold starts taken in turn with this build's: an A/B comparison that
/// the VM's drift cannot bias.
async fn cold_starts_ab(n: usize) {
    let Some(other) = std::env::var_os("BENCH_AB") else {
        return cold_starts_row(&TestHost::start(), n, COLD_ROW).await;
    };
    let (this, that) = (TestHost::start(), TestHost::start_program(other.as_ref(), &[]));
    let (mut cold, base) = cold_starts(&[&this, &that], n).await;
    let base = stats(base);
    row(COLD_ROW, &stats(cold.remove(0)), &base);
    row("  the same, the BENCH_AB build", &stats(cold.remove(0)), &base);
}

/// `n` exec round trips of `true` in a warm sandbox, each after a bare spawn for the baseline.
async fn exec_round_trips(host: &TestHost, n: usize) {
    let warm = host.sandbox("bench", "warm", json!({})).await;
    let mut rtt = Vec::new();
    let mut base = Vec::new();
    for _ in 0..n {
        base.push(bare_namespaced_spawn());
        rtt.push(exec_once(host, &warm, json!(["true"])).await.1);
    }
    row("exec round trip: `true` in a warm sandbox", &stats(rtt), &stats(base));
}

/// Output bytes each throughput run moves.
const THROUGHPUT_BYTES: usize = 200_000_000;

/// A raw WebSocket stream on loopback: a tokio-tungstenite server sends `total` bytes of `a` as
/// text messages of up to `chunk` bytes; the client reads them. With `piped`, the bytes come
/// from `script` run by `sh` on the host through a pipe (no sandbox, no frames); without, from
/// memory: the most a WebSocket here can do.
async fn raw_websocket(total: usize, chunk: usize, piped: Option<&str>) -> Duration {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = piped.map(str::to_string);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        if let Some(script) = script {
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", &script])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = out.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                let text = std::str::from_utf8(&buf[..n]).unwrap();
                ws.send(Message::text(text)).await.unwrap();
            }
            child.wait().await.unwrap();
        } else {
            let text = "a".repeat(chunk);
            let mut sent = 0;
            while sent < total {
                let n = chunk.min(total - sent);
                ws.send(Message::text(&text[..n])).await.unwrap();
                sent += n;
            }
        }
        let _ = ws.close(None).await;
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
    let started = Instant::now();
    let mut got = 0;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            got += t.len();
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(got, total);
    server.await.unwrap();
    elapsed
}

/// Streams `total` bytes of output from `script` through exec and returns the time from the
/// `init` reply to the close. `base64` asks for base64 frames; the payload bytes are counted
/// without decoding the JSON (the frames carry no escapes), as a client's own parse is not the
/// host's cost.
async fn exec_stream(host: &TestHost, service: &str, script: &str, base64: bool, total: usize) -> Duration {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("{}/v1/command-exec/projects/bench/services/{service}", host.ws_base());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut context = json!({ "command": ["sh", "-c", script], "shell": "none" });
    if base64 {
        context["encoding"] = json!("base64");
    }
    let init =
        json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": TOKEN }, "context": context } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let mut started = None;
    let mut data = 0;
    let mut frames = 0;
    let mut completed = false;
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        if let Some(inside) = flankbox_protocol::output_frame::stdout_data(t.as_bytes()) {
            data += inside.len();
            frames += 1;
        } else if t.contains(r#""type":"init""#) {
            started = Some(Instant::now());
        } else if t.contains(r#""type":"completion""#) {
            assert!(t.contains(r#""exitCode":0"#), "{t}");
            completed = true;
        } else {
            panic!("unexpected frame {t}");
        }
    }
    let elapsed = started.expect("init reply").elapsed();
    assert!(completed);
    if std::env::var_os("BENCH_DETAIL").is_some() {
        eprintln!("{frames} output frames, {} bytes each on average", data / frames.max(1));
    }
    let expected = if base64 { total.div_ceil(3) * 4 } else { total };
    // base64 frames are padded per frame, so a little more may come.
    assert!(
        data >= expected && data < expected + expected / 100,
        "{data} of {expected}"
    );
    elapsed
}

/// 200 MB of stdout through exec, as text and as base64, beside a raw WebSocket stream of
/// 64 KiB text messages measured in the same run, and the same command's output piped on the
/// host straight into a raw WebSocket (what the source and the pipe allow); best of 3 each,
/// interleaved.
async fn exec_throughput(host: &TestHost) {
    let id = host.sandbox("bench", "stream", json!({})).await;
    let total = THROUGHPUT_BYTES;
    let script = format!("head -c {total} /dev/zero | tr '\\0' a");
    let (mut raw, mut piped, mut text, mut b64) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        raw.push(raw_websocket(total, 64 << 10, None).await);
        piped.push(raw_websocket(total, 256 << 10, Some(&script)).await);
        text.push(exec_stream(host, &id, &script, false, total).await);
        b64.push(exec_stream(host, &id, &script, true, total).await);
    }
    let mb_s = |d: &Duration| total as f64 / 1e6 / d.as_secs_f64();
    let base = mb_s(raw.iter().min().unwrap());
    let piped_base = mb_s(piped.iter().min().unwrap());
    println!(
        "{:<42} {piped_base:>7.0} MB/s   baseline {base:>7.0} MB/s   ratio {:>5.2}",
        "  the same command piped to a raw WebSocket",
        piped_base / base
    );
    for (label, runs) in [
        ("exec stdout, 200 MB as text (best of 3)", &text),
        ("exec stdout, 200 MB as base64 (best of 3)", &b64),
    ] {
        let t = mb_s(runs.iter().min().unwrap());
        println!(
            "{label:<42} {t:>7.0} MB/s   baseline {base:>7.0} MB/s   ratio {:>5.2}",
            t / base
        );
    }
}

/// The port server the tests use, on the host's own loopback: the baseline.
struct DirectServer(std::process::Child);

impl Drop for DirectServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The same server program, run on the host for the baseline.
const PORT_SERVER_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/port-server.py");

async fn get(client: &reqwest::Client, url: &str) -> (Duration, usize) {
    let started = Instant::now();
    let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
    (started.elapsed(), body.len())
}

/// Request latency (one kept-alive connection, and a new connection per request) and a
/// 64 MiB download, through the proxy and directly.
async fn port_proxy(host: &TestHost, requests: usize) {
    let id = host
        .sandbox_running("bench", "web", &common::port_server_command(&[8080]))
        .await;
    host.call(
        "POST",
        &format!("/v1/projects/bench/services/{id}/ports"),
        Some(json!({ "ports": [{ "name": "web", "internalPort": 8080, "public": true, "protocol": "HTTP" }] })),
    )
    .await;
    let (_, ports) = host
        .call("GET", &format!("/v1/projects/bench/services/{id}/ports"), None)
        .await;
    let dns = ports["data"]["ports"][0]["dns"].as_str().unwrap().to_string();
    let (name, port) = dns.rsplit_once(':').unwrap();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().unwrap()));
    let proxied = format!("http://{dns}");

    let direct_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = DirectServer(
        std::process::Command::new("python3")
            .args([PORT_SERVER_FILE, &direct_port.to_string(), "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let direct = format!("http://127.0.0.1:{direct_port}");

    let kept = reqwest::Client::builder().resolve(name, loopback).build().unwrap();
    let fresh = || {
        reqwest::Client::builder()
            .resolve(name, loopback)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let fresh_client = fresh();
    // Both servers up, and warmed.
    for url in [&proxied, &direct] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while kept
            .get(url.as_str())
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "{url} never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (label, client) in [("kept-alive connection", &kept), ("new connection each", &fresh_client)] {
        let (mut through, mut base) = (Vec::new(), Vec::new());
        for _ in 0..requests {
            base.push(get(client, &format!("{direct}/")).await.0);
            through.push(get(client, &format!("{proxied}/")).await.0);
        }
        row(&format!("port proxy GET /, {label}"), &stats(through), &stats(base));
    }
    let size = 64 << 20;
    let (mut through, mut base) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (t, n) = get(&kept, &format!("{direct}/bytes?n={size}")).await;
        assert_eq!(n, size);
        base.push(t);
        let (t, n) = get(&kept, &format!("{proxied}/bytes?n={size}")).await;
        assert_eq!(n, size);
        through.push(t);
    }
    let mb_s = |d: &Duration| size as f64 / (1 << 20) as f64 / d.as_secs_f64();
    let (t, b) = (mb_s(through.iter().min().unwrap()), mb_s(base.iter().min().unwrap()));
    println!(
        "{:<42} {t:>7.0} MB/s   baseline {b:>7.0} MB/s   ratio {:>5.2}",
        "port proxy download, 64 MiB (best of 3)",
        t / b
    );
}
