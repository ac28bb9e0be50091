//! Requests the host refuses or lists, against the real host binary: bad input, GPUs it does
//! not have, duplicates and unknown things, tokens, paginated lists, plans and regions, CORS.

mod common;

use common::{require_root, TestHost};
use serde_json::{json, Value};

const P: &str = "/v1/projects/proj";

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
        let mut body = common::guide_body("valid-name");
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
    let mut body = common::guide_body("odd-image");
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
    let mut body = common::guide_body("jupyter-gpu");
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
    host.create("proj", common::guide_body("twin")).await;
    let (code, err) = host
        .call(
            "POST",
            &format!("{P}/services/deployment"),
            Some(common::guide_body("Twin")),
        )
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
        let mut body = common::guide_body(&format!("svc-{i}"));
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
