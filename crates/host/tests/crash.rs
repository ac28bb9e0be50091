//! Durability: `kill -9` the host while a sandbox writes to its volume, start it again, and
//! find the services, the volume and every acknowledged byte still there.

mod common;

use std::time::{Duration, Instant};

use common::{require_root, TestHost, TOKEN};
use serde_json::json;

/// A 1 GiB volume mounted at `/data`.
async fn data_volume(host: &TestHost, name: &str) {
    let body = json!({ "name": name, "mounts": [{ "containerMountPath": "/data" }],
                       "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } });
    let (code, answer) = host.call("POST", "/v1/projects/p/volumes", Some(body)).await;
    assert_eq!(code, 200, "{answer}");
}

#[tokio::test]
async fn kill_9_mid_write_loses_no_acknowledged_volume_byte() {
    require_root();
    let mut host = TestHost::start();
    data_volume(&host, "journal").await;
    let id = host
        .sandbox(
            "p",
            "writer",
            json!({ "createOptions": { "volumesToAttach": ["journal"] } }),
        )
        .await;
    // A paused service must come back paused, and a volume-less one must come back too.
    let idle = host.sandbox("p", "idle", json!({})).await;
    host.call("POST", &format!("/v1/projects/p/services/{idle}/pause"), None)
        .await;
    host.wait_settled("p", &idle).await;

    // Each line is written, flushed and fsync'ed before it is acknowledged on stdout.
    let writer = "import os, sys\nf = open('/data/log', 'a')\ni = 0\nwhile True:\n    f.write(f'line {i:08d} ' + 'x' * 200 + '\\n'); f.flush(); os.fsync(f.fileno())\n    print(i, flush=True); i += 1\n";
    let mut session = host
        .open_exec("p", &id, json!({ "command": ["python3", "-c", writer] }), TOKEN)
        .await;
    let mut acknowledged: i64 = -1;
    let mut text = String::new();
    while acknowledged < 300 {
        let f = session.next().await.expect("the writer runs");
        if f["type"] == "stdOut" {
            text.push_str(f["data"].as_str().unwrap());
            if let Some(last_full) = text.rfind('\n') {
                if let Some(n) = text[..last_full].lines().last().and_then(|l| l.trim().parse().ok()) {
                    acknowledged = n;
                }
            }
        }
    }
    host.kill9();
    drop(session);

    host.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    assert_eq!(
        host.wait_settled("p", &id).await,
        "COMPLETED",
        "the running service booted again"
    );
    let (_, svc) = host.call("GET", &format!("/v1/projects/p/services/{idle}"), None).await;
    assert_eq!(svc["data"]["servicePaused"], true, "the paused one stayed paused");
    let (_, vol) = host.call("GET", "/v1/projects/p/volumes/journal", None).await;
    assert_eq!(vol["data"]["attachedObjects"][0]["id"], "writer");

    let r = host
        .sh(
            "p",
            &id,
            "wc -l < /data/log; head -c 9 /data/log; echo; awk '{print $2}' /data/log | sort -c && echo sorted",
        )
        .await;
    assert!(Instant::now() < deadline);
    let lines: i64 = r.stdout.lines().next().unwrap().trim().parse().unwrap();
    assert!(
        lines > acknowledged,
        "{lines} lines on disk, {acknowledged} acknowledged: {r:?}"
    );
    assert!(r.stdout.contains("line 0000") && r.stdout.contains("sorted"), "{r:?}");
    // Every line up to the last acknowledged one is whole.
    let r = host
        .sh(
            "p",
            &id,
            &format!(
                "head -n {} /data/log | awk 'length($0) != 214' | wc -l",
                acknowledged + 1
            ),
        )
        .await;
    assert_eq!(r.stdout.trim(), "0", "no torn lines: {r:?}");
    // The volume's filesystem is clean.
    let r = host.sh("p", &id, "echo more >> /data/log && tail -1 /data/log").await;
    assert_eq!(r.stdout, "more\n");
}

#[tokio::test]
async fn storage_no_volume_record_owns_is_deleted_at_start() {
    require_root();
    let mut host = TestHost::start();
    data_volume(&host, "kept").await;
    // What a kill -9 between making a volume's storage and recording it leaves.
    let orphan = host.data_dir.join("volumes/p/never-recorded.img");
    std::fs::write(&orphan, b"half made").unwrap();
    host.restart();
    let (code, _) = host.call("GET", "/v1/projects/p/volumes/kept", None).await;
    assert_eq!(code, 200, "the recorded volume is still there");
    assert!(host.data_dir.join("volumes/p/kept.img").exists(), "its storage too");
    assert!(!orphan.exists(), "the orphan storage is gone");
}

#[tokio::test]
async fn a_volume_whose_service_record_is_gone_is_detached_at_start() {
    require_root();
    let mut host = TestHost::start();
    data_volume(&host, "left").await;
    let id = host
        .create_sandbox(
            "p",
            "gone",
            json!({ "deployment": { "instances": 0 }, "createOptions": { "volumesToAttach": ["left"] } }),
        )
        .await;
    host.kill9();
    // What a kill -9 leaves between a delete forgetting the service and detaching its volume
    // (or between a create attaching the volume and recording the service).
    let db = rusqlite::Connection::open(host.data_dir.join("flankbox.db")).unwrap();
    let removed = db
        .execute("DELETE FROM services WHERE project_id = 'p' AND id = ?1", [&id])
        .unwrap();
    assert_eq!(removed, 1);
    drop(db);
    host.restart();
    let (_, volume) = host.call("GET", "/v1/projects/p/volumes/left", None).await;
    assert_eq!(volume["data"]["attachedObjects"], json!([]), "{volume}");
    let (code, body) = host.call("DELETE", "/v1/projects/p/volumes/left", None).await;
    assert_eq!(code, 200, "the volume can be deleted: {body}");
}
