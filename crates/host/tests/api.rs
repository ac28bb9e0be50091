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
async fn bad_input_gets_a_400_that_names_the_problem() {
    require_root();
    let host = TestHost::start();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "billing": { "deploymentPlan": "nf-compute-3" } }),
            "billing.deploymentPlan",
        ),
        (json!({ "name": "9lives" }), "name"),
        (json!({ "name": "ab" }), "name"),
        (
            json!({ "deployment": { "storage": { "ephemeralStorage": { "storageSize": 100 } } } }),
            "storageSize",
        ),
        (json!({ "deployment": { "storage": { "shmSize": 1 } } }), "shmSize"),
        (json!({ "deployment": { "instances": 5 } }), "deployment.instances"),
        (json!({ "deployment": { "instances": "one" } }), "deployment.instances"),
        (
            json!({ "deployment": { "docker": { "configType": "customCommand", "customCommand": null } } }),
            "customCommand",
        ),
        (
            json!({ "runtimeEnvironment": { "BAD KEY": "x" } }),
            "runtimeEnvironment",
        ),
    ];
    for (patch, field) in cases {
        let mut body = guide_body("valid-name");
        common::merge(&mut body, patch.clone());
        let (code, err) = host.call("POST", &format!("{P}/services/deployment"), Some(body)).await;
        assert_eq!(code, 400, "{patch}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{patch}: {message:?} should name {field}");
        assert!(err["error"]["id"].is_string());
    }
    // Missing fields, and not JSON at all.
    let (code, err) = host
        .call(
            "POST",
            &format!("{P}/services/deployment"),
            Some(json!({ "name": "no-billing", "deployment": { "instances": 1 } })),
        )
        .await;
    assert_eq!(code, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("billing"), "{err}");
    let resp = host
        .http
        .post(format!("{}{P}/services/deployment", host.base))
        .bearer_auth(common::TOKEN)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("JSON"), "{err}");
    // An image the host cannot map: Northflank's wording.
    let mut body = guide_body("odd-image");
    body["deployment"]["external"]["imagePath"] = json!("registry.example.com/team/private:1");
    let (code, err) = host.call("POST", &format!("{P}/services/deployment"), Some(body)).await;
    assert_eq!(code, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to verify external image"),
        "{err}"
    );
    // Volumes.
    let (code, err) = host.call("POST", &format!("{P}/volumes"), Some(json!({ "name": "v1x", "mounts": [{ "containerMountPath": "/proc/x" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } }))).await;
    assert_eq!(code, 400);
    assert_eq!(err["error"]["details"]["field"], "mounts[0].containerMountPath");
    let (code, _) = host.call("POST", &format!("{P}/volumes"), Some(json!({ "name": "v2x", "mounts": [{ "containerMountPath": "/w" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 10 } }))).await;
    assert_eq!(code, 400);
    // Nothing was created by any of it, and the host still serves.
    let (_, list) = host.call("GET", &format!("{P}/services"), None).await;
    assert_eq!(list["data"]["services"], json!([]));
    let (_, vols) = host.call("GET", &format!("{P}/volumes"), None).await;
    assert_eq!(vols["data"], json!([]));
}

#[tokio::test]
async fn gpu_services_are_refused_naming_the_gpu() {
    require_root();
    let host = TestHost::start();
    let mut body = guide_body("jupyter-gpu");
    body["billing"]["deploymentPlan"] = json!("nf-gpu-a100-80-1g");
    body["deployment"]["gpu"] =
        json!({ "enabled": true, "configuration": { "gpuType": "a100-80", "gpuCount": 1, "timesliced": false } });
    body["deployment"]["external"]["imagePath"] = json!("quay.io/jupyter/pytorch-notebook:cuda12-2026-02-09");
    body["deployment"]["storage"] = json!({ "ephemeralStorage": { "storageSize": 256000 }, "shmSize": 174080 });
    let (code, err) = host.call("POST", &format!("{P}/services/deployment"), Some(body)).await;
    assert_eq!(code, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("a100-80") && message.contains("not available"),
        "{message}"
    );
    assert_eq!(
        host.call("GET", &format!("{P}/services/jupyter-gpu"), None).await.0,
        404
    );
}

#[tokio::test]
async fn duplicates_conflict_and_unknown_things_are_404() {
    require_root();
    let host = TestHost::start();
    host.create("proj", guide_body("twin")).await;
    let (code, err) = host
        .call("POST", &format!("{P}/services/deployment"), Some(guide_body("Twin")))
        .await;
    assert_eq!(code, 409, "same derived id: {err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("same derived identifier"));
    for (method, path) in [
        ("GET", "/services/ghost"),
        ("POST", "/services/ghost/scale"),
        ("DELETE", "/services/ghost"),
        ("GET", "/services/ghost/ports"),
        ("GET", "/volumes/ghost"),
        ("DELETE", "/volumes/ghost"),
    ] {
        let (code, body) = host.call(method, &format!("{P}{path}"), Some(json!({}))).await;
        assert_eq!(code, 404, "{method} {path}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let (code, body) = host.call("GET", "/v1/nothing/here", None).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = host.call("PUT", &format!("{P}/services/twin/scale"), None).await;
    assert_eq!(code, 405, "{body}");
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_401_everywhere() {
    require_root();
    let host = TestHost::start();
    for path in [
        format!("{P}/services"),
        format!("{P}/volumes"),
        "/v1/plans".to_string(),
        "/v1/teams/t/projects/p/services/x".to_string(),
    ] {
        let (code, body) = host.call_with_token("GET", &path, None, "wrong").await;
        assert_eq!(code, 401, "{path}");
        assert!(body["error"]["message"].as_str().unwrap().contains("token"));
        let resp = host.http.get(format!("{}{path}", host.base)).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
}

#[tokio::test]
async fn lists_paginate_with_a_cursor_that_ends() {
    require_root();
    let host = TestHost::start();
    for i in 0..5 {
        let mut body = guide_body(&format!("svc-{i}"));
        body["deployment"]["instances"] = json!(0);
        host.create("proj", body).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (code, page) = host.call("GET", &format!("{P}/services?per_page=2{q}"), None).await;
        assert_eq!(code, 200);
        for s in page["data"]["services"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        assert_eq!(
            page["pagination"]["count"],
            page["data"]["services"].as_array().unwrap().len()
        );
        match page["pagination"].get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => {
                assert_eq!(page["pagination"]["hasNextPage"], false);
                break;
            }
        }
    }
    assert_eq!(seen, ["svc-0", "svc-1", "svc-2", "svc-3", "svc-4"]);
    // Created with 0 instances: settled at once, nothing runs.
    assert_eq!(host.wait_settled("proj", "svc-0").await, "COMPLETED");
    // Other projects see none of them; the team-scoped path is the same project.
    let (_, other) = host.call("GET", "/v1/projects/other/services", None).await;
    assert_eq!(other["data"]["services"], json!([]));
    let (_, team) = host
        .call("GET", "/v1/teams/my-team/projects/proj/services?per_page=100", None)
        .await;
    assert_eq!(team["data"]["services"].as_array().unwrap().len(), 5);
    assert_eq!(host.call("GET", &format!("{P}/services?per_page=0"), None).await.0, 400);
}

#[tokio::test]
async fn restart_boots_a_fresh_instance_and_a_dying_main_process_is_restarted() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("proj", "restarter", json!({})).await;
    let (_, before) = host.call("GET", &format!("{P}/services/{id}/containers"), None).await;
    let before = before["data"]["containers"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(
        host.call("POST", &format!("{P}/services/{id}/restart"), None).await.0,
        200
    );
    assert_eq!(host.wait_settled("proj", &id).await, "COMPLETED");
    let (_, after) = host.call("GET", &format!("{P}/services/{id}/containers"), None).await;
    assert_eq!(after["data"]["containers"][0]["status"], "TASK_RUNNING");
    assert_ne!(after["data"]["containers"][0]["name"].as_str().unwrap(), before);

    // A main process that exits ends its instance; the host boots a new one after a backoff.
    let crash = host
        .sandbox(
            "proj",
            "crasher",
            json!({ "deployment": { "docker": { "customCommand": "sleep 2; exit 1" } } }),
        )
        .await;
    let first = host
        .call("GET", &format!("{P}/services/{crash}/containers"), None)
        .await
        .1["data"]["containers"][0]["name"]
        .clone();
    assert!(first.is_string(), "the crasher runs at first: {first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, c) = host
            .call("GET", &format!("{P}/services/{crash}/containers"), None)
            .await;
        // A new instance name proves the reboot; it may already be crashing again.
        if c["data"]["containers"][0]["name"] != first {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted: {c}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn plans_and_regions_are_listed() {
    require_root();
    let host = TestHost::start();
    let (_, plans) = host.call("GET", "/v1/plans", None).await;
    let ids: Vec<&str> = plans["data"]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"nf-compute-20") && ids.contains(&"nf-compute-800-40"));
    let (_, regions) = host.call("GET", "/v1/regions", None).await;
    assert_eq!(regions["data"]["regions"][0]["gpuDevices"], json!([]));
    let resp = host.http.get(&host.base).send().await.unwrap();
    assert_eq!(resp.status(), 200);
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
async fn browsers_get_cors_answers_without_a_token_on_preflight() {
    require_root();
    let host = TestHost::start();
    let resp = host
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}{P}/services/deployment", host.base),
        )
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "http://example.test");
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let resp = host
        .http
        .get(format!("{}{P}/services", host.base))
        .header("Origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the token is still required");
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://example.test",
        "errors are readable by the page"
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
