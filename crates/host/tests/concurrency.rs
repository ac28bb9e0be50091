//! Many creates at once, as the guide makes them: every one reaches `COMPLETED` and answers an
//! exec, and once all are deleted nothing of them is left on the machine (agents, mounts, loop
//! devices, scratch directories, cgroups, volume images).
//!
//! `FLANKBOX_CREATES` and `FLANKBOX_CONCURRENCY` scale it: the suite runs 60 at 20, and
//! `scripts/soak --creates` runs 500 at 20.

mod common;

use std::time::{Duration, Instant};

use common::leaks::{agents_of, cgroup_parents_of, Leftovers};
use common::{require_root, TestHost};
use futures_util::StreamExt;
use serde_json::json;

const PROJECT: &str = "conc";
const WARM_POOL: usize = 2;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Creates sandbox `i`, waits for `COMPLETED` and runs an exec in it; returns its id and how
/// long the create took to complete.
async fn create_and_exec(host: &TestHost, i: usize) -> Result<(String, Duration), String> {
    let started = Instant::now();
    let (code, body) = host
        .call(
            "POST",
            &format!("/v1/projects/{PROJECT}/services/deployment"),
            Some({
                let mut body = common::guide_body(&format!("c-{i}"));
                common::merge(&mut body, json!({ "billing": { "deploymentPlan": "nf-compute-20" } }));
                body
            }),
        )
        .await;
    if code != 200 {
        return Err(format!("c-{i}: create answered {code}: {body}"));
    }
    let id = body["data"]["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = host
            .call("GET", &format!("/v1/projects/{PROJECT}/services/{id}"), None)
            .await;
        let status = body["data"]["status"]["deployment"]["status"].as_str().unwrap_or("");
        match (code, status) {
            (200, "COMPLETED") => break,
            (200, "FAILED") => return Err(format!("{id}: FAILED: {}", body["data"]["status"])),
            _ if Instant::now() > deadline => return Err(format!("{id}: not COMPLETED in 60 s ({code} {status})")),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let took = started.elapsed();
    let out = host.sh(PROJECT, &id, &format!("echo ready-{i}")).await;
    if out.stdout != format!("ready-{i}\n") || out.exit_code != Some(0) {
        return Err(format!("{id}: exec gave {out:?}"));
    }
    Ok((id, took))
}

async fn wait_for<T: std::fmt::Debug>(what: &str, limit: Duration, mut read: impl FnMut() -> (bool, T)) {
    let deadline = Instant::now() + limit;
    loop {
        let (done, state) = read();
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {state:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_at_concurrency_all_complete_answer_exec_and_leave_nothing() {
    require_root();
    let total = env_or("FLANKBOX_CREATES", 60);
    let concurrency = env_or("FLANKBOX_CONCURRENCY", 20);
    let mut host = TestHost::start_with(&["--warm-pool", &WARM_POOL.to_string()]);
    let started = Instant::now();

    let results: Vec<Result<(String, Duration), String>> = futures_util::stream::iter(0..total)
        .map(|i| create_and_exec(&host, i))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cgroup_parents = agents_of(host.pid())
        .first()
        .map(|&agent| cgroup_parents_of(agent))
        .unwrap_or_default();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut times: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, t)| *t))
        .collect();
    times.sort();
    println!(
        "{total} creates at concurrency {concurrency}: {} COMPLETED and answered an exec, {} failed, in {:.1} s; create to COMPLETED p50 {:?}, max {:?}",
        times.len(),
        failures.len(),
        elapsed.as_secs_f64(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        times.last().copied().unwrap_or_default(),
    );
    assert!(failures.is_empty(), "failed creates: {failures:#?}");
    assert!(!cgroup_parents.is_empty(), "no agent's cgroup found");

    let ids: Vec<String> = results.into_iter().filter_map(Result::ok).map(|(id, _)| id).collect();
    let deletes: Vec<u16> = futures_util::stream::iter(&ids)
        .map(|id| {
            let host = &host;
            async move {
                let path = format!("/v1/projects/{PROJECT}/services/{id}");
                host.call("DELETE", &path, None).await.0
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    assert!(deletes.iter().all(|&c| c == 200), "deletes answered {deletes:?}");
    let (code, list) = host
        .call("GET", &format!("/v1/projects/{PROJECT}/services"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["data"]["services"], json!([]), "services still listed");

    // Deleting answers at once; the sandboxes end just after.
    let (pid, data_dir) = (host.pid(), host.data_dir.clone());
    wait_for(
        "left behind after deleting every service",
        Duration::from_secs(30),
        || {
            let left =
                Leftovers::read(pid, &data_dir, &cgroup_parents).beyond_warm_pool(WARM_POOL, cgroup_parents.len());
            (left.is_empty(), left)
        },
    )
    .await;

    host.stop();
    wait_for("left behind once the host stopped", Duration::from_secs(10), || {
        let mut left = Leftovers::read(pid, &data_dir, &cgroup_parents);
        // The stopped host's own pid may be reused; only what lived under it counts, and it is gone.
        left.processes.clear();
        (left.is_empty(), left)
    })
    .await;
    let orphans: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup")).ok())
        .filter(|c| {
            cgroup_parents
                .iter()
                .any(|p| c.contains(&*p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(orphans.is_empty(), "processes still in the host's cgroups: {orphans:?}");
}

/// What a stopped host leaves: nothing (its own pid may be reused, so processes are left out;
/// the agents are in the cgroup check), and a data directory that can be deleted.
fn assert_stopped_clean(pid: u32, data_dir: &std::path::Path, when: &str) {
    let mut left = Leftovers::read(pid, data_dir, &[]);
    left.processes.clear();
    assert!(left.is_empty(), "{when}: {left:#?}");
    let removed = std::fs::remove_dir_all(data_dir);
    assert!(removed.is_ok(), "{when}: data directory: {removed:?}");
}

/// A host stopped while something other than a request is ending a sandbox (here the reaper
/// deleting an expired service, whose main process makes the stop last its 5 s grace) must
/// still end it and leave nothing: the playground suite once could not delete the data
/// directory of a host it had just stopped, a sandbox's mount still in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopped_while_its_reaper_deletes_a_sandbox_leaves_nothing() {
    require_root();
    let mut host = TestHost::start_with(&["--warm-pool", "1"]);
    let (pid, data_dir) = (host.pid(), host.data_dir.clone());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let extra = json!({
        "tags": [format!("flankbox-expires-{expires}")],
        "deployment": { "docker": { "customCommand": "trap '' TERM; while :; do sleep 1; done" } },
    });
    let id = host.sandbox(PROJECT, "mayfly", extra).await;
    // The reaper takes the service off the list first, then stops it for up to 5 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _) = host
            .call("GET", &format!("/v1/projects/{PROJECT}/services/{id}"), None)
            .await;
        if code == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the expired service was never reaped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop();
    assert_stopped_clean(pid, &data_dir, "stopped while the reaper deleted a sandbox");
}

/// A host stopped while it prepares a warm sandbox (100 ms after a create takes one from the
/// pool) must not leave that sandbox behind either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopped_while_it_refills_its_warm_pool_leaves_nothing() {
    require_root();
    for step in 0..12u64 {
        let mut host = TestHost::start_with(&["--warm-pool", "1"]);
        let (pid, data_dir) = (host.pid(), host.data_dir.clone());
        // Once the pool is full, a create takes from it and a refill follows.
        tokio::time::sleep(Duration::from_millis(600)).await;
        host.create_sandbox(PROJECT, "refill", json!({})).await;
        let delay = step * 10;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        host.stop();
        assert_stopped_clean(pid, &data_dir, &format!("stopped {delay} ms after a create"));
    }
}
