//! Soak with faults: a mixed workload at concurrency 20 (create, exec with stdin, ports, logs,
//! pause and resume with volumes, delete) while the host is killed with `kill -9` at random
//! moments and started again. Then: every acknowledged volume byte is there, every service
//! reconciles to what was asked, nothing is left once all is deleted, and host memory stayed flat.
//!
//! `FLANKBOX_SOAK_SECONDS` (default 30) and `FLANKBOX_SOAK_KILLS` (default 3) size it;
//! `scripts/soak [minutes]` runs it long, with at least 5 kills.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::leaks::{cgroup_parents_of, Leftovers};
use common::{require_root, TestHost, TOKEN};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PROJECT: &str = "soak";
const WORKERS: usize = 20;
const WARM_POOL: usize = 2;

/// The host's address, which changes at every restart, and a client that never panics.
struct Api {
    started: Instant,
    base: RwLock<String>,
    http: reqwest::Client,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    requests: AtomicUsize,
    /// Requests that failed because the host was down (connection refused or cut).
    interrupted: AtomicUsize,
    scenarios: AtomicUsize,
    scenarios_cut: AtomicUsize,
    execs: AtomicUsize,
    statuses: Mutex<BTreeMap<u16, usize>>,
    /// What must never happen: a wrong answer, a 5xx other than 503, a body not shaped as
    /// Northflank's, a byte lost.
    failures: Mutex<Vec<String>>,
}

/// A step failed: the host was down (`Cut`), or it answered wrongly (`Wrong`, recorded).
#[derive(Debug)]
enum Step {
    Cut,
    Wrong,
}

impl Api {
    fn fail(&self, what: String) -> Step {
        let what = format!("at {:.1} s: {what}", self.started.elapsed().as_secs_f64());
        eprintln!("soak failure: {what}");
        self.stats.failures.lock().unwrap().push(what);
        Step::Wrong
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), Step> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v1/projects/{PROJECT}{path}", self.base.read().unwrap());
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(self.fail(format!("{method} {path}: no answer in 30 s"))),
            Err(_) => {
                self.stats.interrupted.fetch_add(1, Ordering::Relaxed);
                return Err(Step::Cut);
            }
        };
        let status = resp.status().as_u16();
        let Ok(text) = resp.text().await else {
            self.stats.interrupted.fetch_add(1, Ordering::Relaxed);
            return Err(Step::Cut);
        };
        *self.stats.statuses.lock().unwrap().entry(status).or_default() += 1;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 500 && status != 503 {
            return Err(self.fail(format!("{method} {path}: {status} {text}")));
        }
        if status >= 400 && body["error"]["status"] != status {
            return Err(self.fail(format!(
                "{method} {path}: {status} with a body not shaped as Northflank's: {text}"
            )));
        }
        Ok((status, body))
    }

    /// A call that must answer 200.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Step> {
        match self.call(method, path, body).await? {
            (200, body) => Ok(body),
            (503, _) => Err(Step::Cut),
            (status, body) => Err(self.fail(format!("{method} {path}: {status} {body}"))),
        }
    }

    /// Polls a service until its rollout completes (a restarted host boots it again).
    async fn completed(&self, id: &str) -> Result<Value, Step> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.call("GET", &format!("/services/{id}"), None).await {
                Ok((200, body)) if body["data"]["status"]["deployment"]["status"] == "COMPLETED" => return Ok(body),
                Ok((200, body)) if body["data"]["status"]["deployment"]["status"] == "FAILED" => {
                    return Err(self.fail(format!("{id} FAILED: {}", body["data"]["status"])))
                }
                Ok((404, _)) => return Err(self.fail(format!("{id} is gone"))),
                _ if Instant::now() > deadline => return Err(self.fail(format!("{id} not COMPLETED within 90 s"))),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Runs `script` with `sh -c`, feeding `stdin`; returns stdout and the exit code.
    async fn exec(&self, id: &str, script: &str, stdin: &str) -> Result<(String, i64), Step> {
        self.stats.execs.fetch_add(1, Ordering::Relaxed);
        let url = format!(
            "{}/v1/command-exec/projects/{PROJECT}/services/{id}",
            self.base.read().unwrap().replacen("http://", "ws://", 1)
        );
        let session = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|_| Step::Cut)?;
            let init = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": TOKEN },
                "context": { "command": ["sh", "-c", script], "shell": "none" } } });
            ws.send(Message::Text(init.to_string().into()))
                .await
                .map_err(|_| Step::Cut)?;
            if !stdin.is_empty() {
                let payload = json!({ "type": "payload", "data": stdin });
                ws.send(Message::Text(payload.to_string().into()))
                    .await
                    .map_err(|_| Step::Cut)?;
            }
            let end = json!({ "type": "stdInEnd" });
            ws.send(Message::Text(end.to_string().into()))
                .await
                .map_err(|_| Step::Cut)?;
            let (mut out, mut code) = (String::new(), None);
            while let Some(msg) = ws.next().await {
                let frame: Value = match msg.map_err(|_| Step::Cut)? {
                    Message::Text(t) => serde_json::from_str(&t).unwrap_or(Value::Null),
                    Message::Binary(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
                    Message::Close(_) => break,
                    _ => continue,
                };
                match frame["type"].as_str() {
                    Some("stdOut") => out.push_str(frame["data"].as_str().unwrap_or("")),
                    Some("completion") => code = frame["data"]["exitCode"].as_i64(),
                    Some("error") => {
                        eprintln!("soak: exec in {id}: error frame {frame}");
                        return Err(Step::Cut);
                    }
                    _ => {}
                }
            }
            if code.is_none() {
                eprintln!("soak: exec in {id}: closed without a completion");
            }
            code.map(|c| (out, c)).ok_or(Step::Cut)
        };
        match tokio::time::timeout(Duration::from_secs(60), session).await {
            Ok(r) => r,
            Err(_) => Err(self.fail(format!("exec in {id}: no end within 60 s"))),
        }
    }
}

fn sandbox_body(name: &str, volume: Option<&str>) -> Value {
    let mut body = common::guide_body(name);
    let small = json!({ "billing": { "deploymentPlan": "nf-compute-20" },
        "deployment": { "docker": { "customCommand": "echo started; sleep infinity" } } });
    common::merge(&mut body, small);
    if let Some(v) = volume {
        body["createOptions"] = json!({ "volumesToAttach": [v] });
    }
    body
}

/// What a worker made that outlives its scenario, checked at the end.
#[derive(Default)]
struct Ledger {
    /// Service id → (volume id, file content acknowledged on it).
    acknowledged: Mutex<BTreeMap<String, (String, String)>>,
    /// Services whose delete was asked for (answered or cut by a kill).
    deleting: Mutex<std::collections::BTreeSet<String>>,
}

/// create → exec with stdin → ports → logs → delete.
async fn ephemeral(api: &Api, name: &str) -> Result<(), Step> {
    api.ok("POST", "/services/deployment", Some(sandbox_body(name, None)))
        .await?;
    api.completed(name).await?;
    let line = format!("stdin of {name}\n");
    let (out, code) = api.exec(name, "cat", &line).await?;
    if out != line || code != 0 {
        return Err(api.fail(format!("{name}: cat gave {out:?} exit {code}")));
    }
    let ports = json!({ "ports": [{ "name": "web", "internalPort": 8080, "public": true, "protocol": "HTTP" }] });
    api.ok("POST", &format!("/services/{name}/ports"), Some(ports)).await?;
    api.ok(
        "GET",
        &format!("/services/{name}/logs?queryType=range&lineLimit=10"),
        None,
    )
    .await?;
    api.ok("DELETE", &format!("/services/{name}"), None).await?;
    Ok(())
}

/// volume + service → write and sync (acknowledged) → pause → resume → read back. The service
/// and its volume stay, for the end's checks.
async fn with_volume(api: &Api, ledger: &Ledger, name: &str) -> Result<(), Step> {
    let volume = format!("{name}-v");
    let body = json!({ "name": volume, "mounts": [{ "containerMountPath": "/data" }],
        "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } });
    api.ok("POST", "/volumes", Some(body)).await?;
    api.ok("POST", "/services/deployment", Some(sandbox_body(name, Some(&volume))))
        .await?;
    api.completed(name).await?;
    let content = format!("{name}:{:016x}", rand::rng().random::<u64>());
    // Acknowledged once written, synced and read back: a lost stdin byte is not a lost disk byte.
    let (out, code) = api
        .exec(name, "cat > /data/f && sync /data/f && sync && cat /data/f", &content)
        .await?;
    if code != 0 || out != content {
        return Err(api.fail(format!(
            "{name}: the write exited {code} and read {out:?}, not {content:?}"
        )));
    }
    ledger
        .acknowledged
        .lock()
        .unwrap()
        .insert(name.to_string(), (volume.clone(), content.clone()));
    api.ok("POST", &format!("/services/{name}/pause"), None).await?;
    api.ok("POST", &format!("/services/{name}/resume"), None).await?;
    api.completed(name).await?;
    let (out, _) = api.exec(name, "cat /data/f", "").await?;
    if out != content {
        let (what, _) = api
            .exec(
                name,
                "ls -la /data; grep -w /data /proc/self/mountinfo; cat /proc/self/uid_map",
                "",
            )
            .await
            .unwrap_or_default();
        return Err(api.fail(format!("{name}: read back {out:?}, wrote {content:?}; /data: {what}")));
    }
    Ok(())
}

/// Deletes a service (and its volume), whether or not an earlier try got through; Ok once
/// the host has answered that it is gone.
async fn delete_service(api: &Api, ledger: &Ledger, name: &str, volume: bool) -> Result<(), Step> {
    // Until the delete is answered, the service may be there or not; only a service still
    // there must hold its bytes.
    ledger.deleting.lock().unwrap().insert(name.to_string());
    let path = format!("/services/{name}?delete_child_objects=true");
    match api.call("DELETE", &path, None).await? {
        (200 | 404, _) => {}
        (503, _) => return Err(Step::Cut),
        (code, body) => return Err(api.fail(format!("DELETE {path}: {code} {body}"))),
    }
    ledger.acknowledged.lock().unwrap().remove(name);
    if volume {
        // A volume whose service was never made (a kill between the two creates).
        match api.call("DELETE", &format!("/volumes/{name}-v"), None).await? {
            (200 | 404, _) => {}
            (code, body) => return Err(api.fail(format!("DELETE /volumes/{name}-v: {code} {body}"))),
        }
    }
    Ok(())
}

/// Every service of the project, page by page.
async fn all_services(api: &Api) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .ok("GET", &format!("/services?per_page=100{cursor}"), None)
            .await
            .expect("the host answers");
        ids.extend(
            page["data"]["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string()),
        );
        match page["pagination"]["cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return ids,
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_kill_9_loses_nothing_and_leaks_nothing() {
    require_root();
    let seconds: u64 = std::env::var("FLANKBOX_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let kills: u32 = std::env::var("FLANKBOX_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut host = TestHost::start_with(&["--warm-pool", &WARM_POOL.to_string()]);
    let api = Arc::new(Api {
        started: Instant::now(),
        base: RwLock::new(host.base.clone()),
        http: reqwest::Client::new(),
        stats: Stats::default(),
    });
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (api, ledger) = (api.clone(), ledger.clone());
        workers.push(tokio::spawn(async move {
            // What this worker made and must still delete: (service, whether it has a volume).
            // Deleting them as it goes keeps the number of live services bounded, so host
            // memory is comparable from one incarnation to the next.
            let mut pending: Vec<(String, bool)> = Vec::new();
            let mut kept_volumes: Vec<String> = Vec::new();
            let mut n: usize = 0;
            while Instant::now() < deadline {
                let mut still = Vec::new();
                for (old, volume) in pending.drain(..) {
                    if delete_service(&api, &ledger, &old, volume).await.is_err() {
                        still.push((old, volume));
                    }
                }
                pending = still;
                let name = format!("w{w}-{n}");
                // One in three scenarios keeps a volume; a worker keeps its last two.
                let result = if n % 3 == 1 {
                    let done = with_volume(&api, &ledger, &name).await;
                    kept_volumes.push(name.clone());
                    if kept_volumes.len() > 2 {
                        pending.push((kept_volumes.remove(0), true));
                    }
                    done
                } else {
                    let done = ephemeral(&api, &name).await;
                    if done.is_err() {
                        pending.push((name.clone(), false));
                    }
                    done
                };
                api.stats.scenarios.fetch_add(1, Ordering::Relaxed);
                if matches!(result, Err(Step::Cut)) {
                    api.stats.scenarios_cut.fetch_add(1, Ordering::Relaxed);
                    // The host is coming back: give it a moment rather than spin.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                n += 1;
            }
        }));
    }

    // The faults: `kill -9` at random moments, spread over the run, each followed by a restart.
    let mut rss = vec![];
    let mut restarts = vec![];
    let mut cgroup_parents = Vec::new();
    for k in 0..kills {
        let slot = Duration::from_secs(seconds) / (kills + 1);
        let at = started + slot * k + slot.mul_f64(rand::rng().random_range(0.6..1.4));
        tokio::time::sleep_until(at.into()).await;
        if cgroup_parents.is_empty() {
            cgroup_parents = common::leaks::agents_of(host.pid())
                .first()
                .map(|&a| cgroup_parents_of(a))
                .unwrap_or_default();
        }
        rss.push(rss_kib(host.pid()));
        eprintln!("soak: kill -9 at {:.1} s", api.started.elapsed().as_secs_f64());
        let down = Instant::now();
        tokio::task::block_in_place(|| host.restart());
        restarts.push(down.elapsed());
        *api.base.write().unwrap() = host.base.clone();
    }
    for w in workers {
        w.await.unwrap();
    }
    rss.push(rss_kib(host.pid()));

    // Reconcile: every service left comes up as asked, and every acknowledged byte is there.
    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    let mut reconciled = 0;
    let services = all_services(&api).await;
    for id in &services {
        let svc = api
            .ok("GET", &format!("/services/{id}"), None)
            .await
            .expect("the host answers");
        if svc["data"]["servicePaused"] == true {
            // Cut between pause and resume: resume it, as the user would.
            api.ok("POST", &format!("/services/{id}/resume"), None)
                .await
                .expect("resume");
        }
        if api.completed(id).await.is_ok() {
            reconciled += 1;
            match api.exec(id, "echo alive", "").await {
                Ok((out, 0)) if out == "alive\n" => {}
                other => {
                    api.fail(format!("{id}: after the soak, exec gave {other:?}"));
                }
            }
        }
    }
    let (mut verified, mut deleted) = (0, 0);
    let deleting = ledger.deleting.lock().unwrap().clone();
    for (id, (_, content)) in &acknowledged {
        if deleting.contains(id) && !services.contains(id) {
            deleted += 1;
            continue;
        }
        match api.exec(id, "cat /data/f", "").await {
            Ok((out, 0)) if &out == content => verified += 1,
            other => {
                api.fail(format!("{id}: acknowledged {content:?}, found {other:?}"));
            }
        }
    }

    // Clean up everything, then look for what is left.
    for id in &services {
        let _ = api
            .ok("DELETE", &format!("/services/{id}?delete_child_objects=true"), None)
            .await;
    }
    let volumes = api.ok("GET", "/volumes", None).await.expect("the host answers");
    for v in volumes["data"].as_array().cloned().unwrap_or_default() {
        let id = v["id"].as_str().unwrap_or_default();
        let _ = api.ok("DELETE", &format!("/volumes/{id}"), None).await;
    }
    let (pid, data_dir) = (host.pid(), host.data_dir.clone());
    let leak_deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        let left = Leftovers::read(pid, &data_dir, &cgroup_parents).beyond_warm_pool(WARM_POOL, cgroup_parents.len());
        if left.is_empty() || Instant::now() > leak_deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    host.stop();

    let s = &api.stats;
    println!(
        "soak: {:.0} s, {kills} kill -9s, {} scenarios ({} cut short by a kill), {} requests ({} cut), {} execs, statuses {:?}; \
         {} services reconciled, {verified}/{} acknowledged volume writes intact ({deleted} more deleted on request); host RSS at each kill and the end (KiB): {rss:?}; kill to listening again: {restarts:?}; {} failures",
        started.elapsed().as_secs_f64(),
        s.scenarios.load(Ordering::Relaxed),
        s.scenarios_cut.load(Ordering::Relaxed),
        s.requests.load(Ordering::Relaxed),
        s.interrupted.load(Ordering::Relaxed),
        s.execs.load(Ordering::Relaxed),
        s.statuses.lock().unwrap(),
        reconciled,
        acknowledged.len() - deleted,
        s.failures.lock().unwrap().len(),
    );
    assert!(
        s.failures.lock().unwrap().is_empty(),
        "failures: {:#?}",
        s.failures.lock().unwrap()
    );
    assert_eq!(reconciled, services.len(), "every service left came up");
    assert!(left.is_empty(), "left behind after deleting everything: {left:#?}");
    assert!(!cgroup_parents.is_empty() || kills == 0, "no agent's cgroup found");
    // Memory: no host incarnation grew far past the first (each restart starts afresh, so this
    // compares like with like only roughly: every incarnation ran the same workload).
    let first = rss[0].max(1);
    assert!(
        rss.iter().all(|&r| r <= first * 3 / 2 + 16 * 1024),
        "host RSS grew: {rss:?} KiB"
    );
}
