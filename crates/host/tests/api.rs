//! The REST subset and the lifecycle, against the real host binary with real isolation.

mod common;

use common::{require_root, TestHost};
use serde_json::{json, Value};

const P: &str = "/v1/projects/proj";

/// The guide's body, with its 2 GB of ephemeral storage and an environment variable.
fn guide_body(name: &str) -> Value {
    let mut body = common::guide_body(name);
    let extra = json!({
        "deployment": { "storage": { "ephemeralStorage": { "storageSize": 2048 } } },
        "runtimeEnvironment": { "MY_VAR": "hello-world" }
    });
    common::merge(&mut body, extra);
    body
}

#[tokio::test]
async fn the_guide_lifecycle_create_poll_exec_pause_resume_delete() {
    require_root();
    let host = TestHost::start();
    let created = host.create("proj", guide_body("Sandbox One")).await;
    assert_eq!(created["id"], "sandbox-one", "id derived from the name");
    assert_eq!(created["serviceType"], "deployment");
    assert!(
        ["PENDING", "IN_PROGRESS", "COMPLETED"].contains(&created["status"]["deployment"]["status"].as_str().unwrap())
    );
    assert_eq!(host.wait_settled("proj", "sandbox-one").await, "COMPLETED");

    let r = host
        .sh(
            "proj",
            "sandbox-one",
            "echo \"out $MY_VAR\"; echo err >&2; ls /workspace; exit 3",
        )
        .await;
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out hello-world\n", "err\n"));
    assert_eq!(
        (r.exit_code, r.status.as_deref(), r.close_code),
        (Some(3), Some("Failure"), Some(1000))
    );

    // Ephemeral storage is discarded by a scale to zero.
    host.sh("proj", "sandbox-one", "echo keep > /workspace/f").await;
    let (code, _) = host
        .call(
            "POST",
            &format!("{P}/services/sandbox-one/scale"),
            Some(json!({ "instances": 0 })),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(host.wait_settled("proj", "sandbox-one").await, "COMPLETED");
    let (_, svc) = host.call("GET", &format!("{P}/services/sandbox-one"), None).await;
    assert_eq!(svc["data"]["deployment"]["instances"], 0);
    assert_eq!(svc["data"]["status"]["deployment"]["reason"], "SCALING");
    let r = host.sh("proj", "sandbox-one", "true").await;
    assert!(r.error.as_deref().unwrap().contains("scaled to 0"), "{r:?}");
    let (_, containers) = host
        .call("GET", &format!("{P}/services/sandbox-one/containers"), None)
        .await;
    assert_eq!(containers["data"]["containers"], json!([]));

    host.call(
        "POST",
        &format!("{P}/services/sandbox-one/scale"),
        Some(json!({ "instances": 1 })),
    )
    .await;
    assert_eq!(host.wait_settled("proj", "sandbox-one").await, "COMPLETED");
    let r = host
        .sh("proj", "sandbox-one", "cat /workspace/f 2>&1 || echo gone")
        .await;
    assert!(r.stdout.contains("gone"), "a fresh sandbox: {r:?}");

    // Pause and resume.
    assert_eq!(
        host.call("POST", &format!("{P}/services/sandbox-one/pause"), None)
            .await
            .0,
        200
    );
    assert_eq!(host.wait_settled("proj", "sandbox-one").await, "COMPLETED");
    let (_, svc) = host.call("GET", &format!("{P}/services/sandbox-one"), None).await;
    assert_eq!(svc["data"]["servicePaused"], true);
    let r = host.sh("proj", "sandbox-one", "true").await;
    assert!(r.error.as_deref().unwrap().contains("paused"), "{r:?}");
    assert_eq!(
        host.call("POST", &format!("{P}/services/sandbox-one/resume"), None)
            .await
            .0,
        200
    );
    assert_eq!(host.wait_settled("proj", "sandbox-one").await, "COMPLETED");
    let (_, svc) = host.call("GET", &format!("{P}/services/sandbox-one"), None).await;
    assert_eq!(svc["data"]["servicePaused"], false);
    assert_eq!(host.sh("proj", "sandbox-one", "echo back").await.stdout, "back\n");

    let (code, body) = host.call("DELETE", &format!("{P}/services/sandbox-one"), None).await;
    assert_eq!((code, body), (200, json!({ "data": {} })));
    assert_eq!(
        host.call("GET", &format!("{P}/services/sandbox-one"), None).await.0,
        404
    );
}

#[tokio::test]
async fn volumes_survive_pause_and_are_deleted_with_the_service() {
    require_root();
    let host = TestHost::start();
    let (code, vol) = host
        .call(
            "POST",
            &format!("{P}/volumes"),
            Some(json!({ "name": "data-box", "mounts": [{ "containerMountPath": "/workspace" }, { "containerMountPath": "/home/jovyan" }],
                         "spec": { "accessMode": "ReadWriteMany", "storageClassName": "nf-multi-rw", "storageSize": 2048 } })),
        )
        .await;
    assert_eq!(code, 200, "{vol}");
    assert_eq!(vol["data"]["id"], "data-box");
    assert_eq!(vol["data"]["status"], "AVAILABLE");
    let id = host
        .sandbox(
            "proj",
            "box",
            json!({ "createOptions": { "volumesToAttach": ["data-box"] } }),
        )
        .await;
    let (_, vol) = host.call("GET", &format!("{P}/volumes/data-box"), None).await;
    assert_eq!(
        vol["data"]["attachedObjects"],
        json!([{ "id": "box", "type": "service" }])
    );

    let r = host
        .sh(
            "proj",
            &id,
            "echo persisted > /workspace/note && cat /home/jovyan/note && df -m /workspace | tail -1",
        )
        .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(
        r.stdout.starts_with("persisted\n"),
        "the same volume at both paths: {r:?}"
    );
    let size_mb: u64 = r
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((1800..=2048).contains(&size_mb), "capped at storageSize: {size_mb}");

    host.call(
        "POST",
        &format!("{P}/services/box/scale"),
        Some(json!({ "instances": 0 })),
    )
    .await;
    host.wait_settled("proj", "box").await;
    host.call(
        "POST",
        &format!("{P}/services/box/scale"),
        Some(json!({ "instances": 1 })),
    )
    .await;
    host.wait_settled("proj", "box").await;
    assert_eq!(host.sh("proj", &id, "cat /workspace/note").await.stdout, "persisted\n");

    let (code, err) = host.call("DELETE", &format!("{P}/volumes/data-box"), None).await;
    assert_eq!(code, 409, "attached volumes are not deleted: {err}");
    let (code, _) = host
        .call("DELETE", &format!("{P}/services/box?delete_child_objects=true"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(host.call("GET", &format!("{P}/volumes/data-box"), None).await.0, 404);
    assert!(!host.data_dir.join("volumes/proj/data-box.img").exists());
}

#[tokio::test]
async fn deleting_a_service_without_children_keeps_its_volume() {
    require_root();
    let host = TestHost::start();
    host.call("POST", &format!("{P}/volumes"), Some(json!({ "name": "keep-me", "mounts": [{ "containerMountPath": "/data" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } }))).await;
    let id = host
        .sandbox(
            "proj",
            "first",
            json!({ "createOptions": { "volumesToAttach": ["keep-me"] } }),
        )
        .await;
    host.sh("proj", &id, "echo from-first > /data/x").await;
    host.call("DELETE", &format!("{P}/services/first"), None).await;
    let (_, vol) = host.call("GET", &format!("{P}/volumes/keep-me"), None).await;
    assert_eq!(vol["data"]["attachedObjects"], json!([]));

    // Attach it to a new service (with another uid range): the files follow, owned by its root.
    let second = host.sandbox("proj", "second", json!({})).await;
    let (code, body) = host
        .call(
            "POST",
            &format!("{P}/volumes/keep-me/attach"),
            Some(json!({ "nfObject": { "id": "second", "type": "service" } })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    host.wait_settled("proj", &second).await;
    let r = host
        .sh(
            "proj",
            &second,
            "cat /data/x && stat -c %u /data/x && echo more >> /data/x",
        )
        .await;
    assert_eq!(r.stdout, "from-first\n0\n", "{r:?}");
    assert_eq!(r.exit_code, Some(0));

    let (code, _) = host
        .call(
            "POST",
            &format!("{P}/volumes/keep-me/detach"),
            Some(json!({ "nfObject": { "id": "second", "type": "service" } })),
        )
        .await;
    assert_eq!(code, 200);
    host.wait_settled("proj", &second).await;
    let r = host.sh("proj", &second, "ls /data 2>&1 || true").await;
    assert!(!r.stdout.contains('x'), "detached: {r:?}");
    assert_eq!(host.call("DELETE", &format!("{P}/volumes/keep-me"), None).await.0, 200);
}

#[tokio::test]
async fn ports_replace_the_list_and_read_back_with_dns() {
    require_root();
    let host = TestHost::start();
    let id = host
        .sandbox(
            "proj",
            "web",
            json!({ "ports": [{ "name": "p01", "internalPort": 3000, "public": false, "protocol": "TCP" }] }),
        )
        .await;
    let (_, ports) = host.call("GET", &format!("{P}/services/{id}/ports"), None).await;
    let first_id = ports["data"]["ports"][0]["id"].as_str().unwrap().to_string();
    let (code, body) = host
        .call("POST", &format!("{P}/services/{id}/ports"), Some(json!({ "ports": [{ "name": "http", "internalPort": 8080, "public": true, "protocol": "HTTP" }, { "id": first_id, "name": "p01", "internalPort": 3000, "public": false, "protocol": "TCP" }] })))
        .await;
    assert_eq!((code, body), (200, json!({ "data": {} })));
    let (_, ports) = host.call("GET", &format!("{P}/services/{id}/ports"), None).await;
    let list = ports["data"]["ports"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let http = list.iter().find(|p| p["internalPort"] == 8080).unwrap();
    assert_eq!(http["dns"], format!("http--web--proj.localhost:{}", host.port()));
    let tcp = list.iter().find(|p| p["internalPort"] == 3000).unwrap();
    assert_eq!(tcp["id"], first_id.as_str(), "an id sent back keeps the port");
    let forward = tcp["dns"].as_str().unwrap();
    assert!(
        forward.starts_with("127.0.0.1:"),
        "a TCP port is forwarded from host loopback: {forward}"
    );
    let (code, err) = host
        .call(
            "POST",
            &format!("{P}/services/{id}/ports"),
            Some(json!({ "ports": [{ "name": "db", "internalPort": 5432, "public": true, "protocol": "TCP" }] })),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(err["error"]["details"]["field"], "ports[0].public");
}

#[tokio::test]
async fn the_unisolated_test_backend_serves_the_same_api() {
    // The fake side of the Backend seam: same API and exec protocol, no isolation at all.
    let host = TestHost::start_with(&["--unisolated"]);
    let id = host.sandbox("proj", "plain", json!({})).await;
    let r = host.sh("proj", &id, "echo \"$HOSTNAME\" && pwd").await;
    assert!(r.stdout.starts_with("plain-"), "{r:?}");
    assert_eq!(r.exit_code, Some(0));
    let resp = host.http.get(&host.base).send().await.unwrap();
    assert!(resp.text().await.unwrap().contains("UNISOLATED"));
}

#[tokio::test]
async fn a_volume_works_when_the_warm_pool_is_full() {
    require_root();
    let host = TestHost::start();
    // Let the pool fill: its agents exist before the volume is mounted.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    host.call("POST", &format!("{P}/volumes"), Some(json!({ "name": "late", "mounts": [{ "containerMountPath": "/workspace" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } }))).await;
    let id = host
        .sandbox(
            "proj",
            "late-user",
            json!({ "createOptions": { "volumesToAttach": ["late"] } }),
        )
        .await;
    let r = host
        .sh(
            "proj",
            &id,
            "echo ok > /workspace/f && stat -c %u /workspace && df -m /workspace | tail -1",
        )
        .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("0\n"), "the volume, owned by sandbox root: {r:?}");
    // And a sandbox without volumes still comes from the pool and works.
    let quick = host.sandbox("proj", "quick", json!({})).await;
    assert_eq!(
        host.sh("proj", &quick, "echo fast > /workspace/f && cat /workspace/f")
            .await
            .stdout,
        "fast\n"
    );
}

#[tokio::test]
async fn a_sandbox_past_its_expiry_tag_is_deleted_with_its_volume() {
    require_root();
    let host = TestHost::start();
    host.call("POST", &format!("{P}/volumes"), Some(json!({ "name": "short-lived", "mounts": [{ "containerMountPath": "/data" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } }))).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Not waited for: the reaper may delete it before it settles.
    let expired = host.create_sandbox("proj", "mayfly", json!({ "tags": [format!("flankbox-expires-{}", now + 1)], "createOptions": { "volumesToAttach": ["short-lived"] } })).await;
    let kept = host
        .sandbox(
            "proj",
            "tortoise",
            json!({ "tags": [format!("flankbox-expires-{}", now + 3600), "other"] }),
        )
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while host.call("GET", &format!("{P}/volumes/short-lived"), None).await.0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired sandbox's volume is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        host.call("GET", &format!("{P}/services/{expired}"), None).await.0,
        404,
        "the sandbox went first"
    );
    assert_eq!(host.call("GET", &format!("{P}/services/{kept}"), None).await.0, 200);
}

#[tokio::test]
async fn the_playground_gets_a_token_only_in_dev_mode_and_only_same_origin() {
    require_root();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(
        www.path().join("index.html"),
        "<!doctype html><title>playground</title>",
    )
    .unwrap();
    let www_arg = www.path().to_str().unwrap().to_string();
    let dev = TestHost::start_with(&["--dev", "--www", &www_arg]);
    let page = dev.http.get(&dev.base).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>playground</title>"));
    let config = dev
        .http
        .get(format!("{}/playground/config.json", dev.base))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    assert!(
        config.headers().get("access-control-allow-origin").is_none(),
        "no CORS: other sites cannot read it"
    );
    let body: Value = config.json().await.unwrap();
    assert_eq!(body["token"], common::TOKEN);
    assert_eq!(body["projectId"], "playground");
    // Another origin, or a rebinding DNS name, gets a 403.
    let foreign = dev
        .http
        .get(format!("{}/playground/config.json", dev.base))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let rebound = dev
        .http
        .get(format!("{}/playground/config.json", dev.base))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // The page is not readable cross-origin either; the API is.
    let page = dev
        .http
        .get(&dev.base)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
    // Without --dev there are no credentials at all: pages use the edge proxy.
    let plain = TestHost::start_with(&["--www", &www_arg]);
    let config = plain
        .http
        .get(format!("{}/playground/config.json", plain.base))
        .header("Origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    let text = config.text().await.unwrap();
    assert!(!text.contains(common::TOKEN), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (body["mode"].as_str(), body["edgePath"].as_str()),
        (Some("edge"), Some("/edge"))
    );
    // And --dev is refused on a non-loopback address.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flankbox-host"))
        .args(["serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(www.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
