//! Host benchmarks, each printed beside a baseline measured in the same run:
//! - cold start (create → COMPLETED → first exec output byte) vs a bare namespaced spawn;
//! - exec round trip (`true` in a warm sandbox) vs the same bare spawn.
//!
//! Run with `cargo bench -p flankbox-host --bench host` (as root). `BENCH_RUNS` scales the
//! sample counts.

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

/// `runs` cold starts: each creates a service, polls it to COMPLETED, execs `echo x` and
/// times the first output byte; a bare spawn is measured between them.
async fn cold_starts(host: &TestHost, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    // Warm-up: the first boot pays for page-cache misses.
    host.sandbox("bench", "warmup", json!({})).await;
    let mut cold = Vec::new();
    let mut base = Vec::new();
    for i in 0..runs {
        // Each is measured after the same pause (which also lets the pool refill, as it would
        // between two users' creates): this VM runs noticeably slower right after idling.
        tokio::time::sleep(PAUSE).await;
        base.push(bare_namespaced_spawn());
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
        cold.push(until_exec + first_byte);
        host.call("DELETE", &format!("/v1/projects/bench/services/{name}"), None)
            .await;
    }
    (cold, base)
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
    let cold_pool = TestHost::start();
    let (cold, base) = cold_starts(&cold_pool, 40 * scale).await;
    row(
        "cold start: create -> COMPLETED -> 1st byte",
        &stats(cold),
        &stats(base),
    );
    drop(cold_pool);
    let no_pool = TestHost::start_with(&["--warm-pool", "0"]);
    let (cold, base) = cold_starts(&no_pool, 20 * scale).await;
    row("  the same with --warm-pool 0", &stats(cold), &stats(base));
    drop(no_pool);

    let host = TestHost::start();
    let warm = host.sandbox("bench", "warm", json!({})).await;
    let mut rtt = Vec::new();
    let mut base = Vec::new();
    for _ in 0..300 * scale {
        base.push(bare_namespaced_spawn());
        rtt.push(exec_once(&host, &warm, json!(["true"])).await.1);
    }
    row("exec round trip: `true` in a warm sandbox", &stats(rtt), &stats(base));
}
