//! Create: the volume, the service and the wait, and each failure's clean-up.

use super::*;

#[test]
fn create_makes_the_volume_then_the_running_service_and_waits() {
    let t = Memory::new()
        .ok(json!({ "id": "data-box" }))
        .ok(json!({ "id": "box" }))
        .service("IN_PROGRESS", 1)
        .service("COMPLETED", 1);
    let (made, steps) = create_with(
        &t,
        json!({ "name": "box", "volume": { "sizeMb": 1024, "mountPaths": ["/w"] } }),
    );
    let made = made.unwrap();
    assert_eq!((made.id.as_str(), made.volume_id.as_deref()), ("box", Some("data-box")));
    assert_eq!(
        t.calls(),
        [
            "POST /v1/projects/p/volumes",
            "POST /v1/projects/p/services/deployment",
            "GET /v1/projects/p/services/box",
            "GET /v1/projects/p/services/box",
        ]
    );
    let service = t.seen()[1].body.clone().unwrap();
    assert_eq!(service["createOptions"]["volumesToAttach"], json!(["data-box"]));
    assert_eq!(
        service["deployment"]["instances"], 1,
        "it starts with the volume attached"
    );
    let names: Vec<_> = steps.iter().map(|s| (s.step, s.status.clone())).collect();
    assert_eq!(
        names,
        [
            ("creating-volume", None),
            ("creating", None),
            ("starting", None),
            ("waiting", Some("IN_PROGRESS".into())),
            ("ready", None)
        ]
    );
    assert_eq!(steps[2].id.as_deref(), Some("box"));
    assert_eq!(steps[2].capability, None);
}

#[test]
fn a_refused_volume_ends_create_with_nothing_to_clean() {
    let t = Memory::new().answer(400, refused("spec.storageSize: too small"));
    let (made, _) = create_with(&t, json!({ "volume": { "sizeMb": 1, "mountPaths": ["/w"] } }));
    assert_eq!(made.unwrap_err().to_string(), "spec.storageSize: too small");
    assert_eq!(t.calls(), ["POST /v1/projects/p/volumes"]);
}

#[test]
fn a_refused_service_deletes_the_volume_made_for_it() {
    let t = Memory::new()
        .ok(json!({ "id": "data-box" }))
        .answer(409, refused("a service named box exists"))
        .ok(json!({}));
    let (made, _) = create_with(
        &t,
        json!({ "name": "box", "volume": { "sizeMb": 1024, "mountPaths": ["/w"] } }),
    );
    assert_eq!(made.unwrap_err().code(), "CONFLICT");
    assert_eq!(
        t.calls()[2],
        "cleanup DELETE /v1/projects/p/volumes/data-box",
        "the volume goes, with a transport of its own"
    );
}

#[test]
fn a_failed_poll_or_deployment_deletes_the_service() {
    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .answer(403, refused("the token may not read services"))
        .ok(json!({}));
    let (made, _) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "FORBIDDEN");
    assert_eq!(
        t.calls()[2],
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );

    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .service("FAILED", 1)
        .ok(json!({}));
    let (made, _) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "DEPLOYMENT_FAILED");
    assert_eq!(
        t.calls()[2],
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );
}

#[test]
fn a_create_that_times_out_deletes_the_service_despite_the_timeout() {
    let t = Memory::new()
        .ok(json!({ "id": "box" }))
        .service("PENDING", 1)
        .service("IN_PROGRESS", 1)
        .ok(json!({}))
        .time_out_after_sleeps(2);
    let (made, steps) = create_with(&t, json!({ "name": "box" }));
    assert_eq!(made.unwrap_err().code(), "TIMEOUT");
    assert_eq!(
        t.calls().last().unwrap(),
        "cleanup DELETE /v1/projects/p/services/box?delete_child_objects=true"
    );
    assert_eq!(steps.iter().filter(|s| s.step == "waiting").count(), 2);
}

#[test]
fn through_an_edge_proxy_the_answer_names_the_sandbox_and_carries_its_capability() {
    let t = Memory::new()
        .ok(json!({ "id": "fbx-123", "capability": "cap.abc" }))
        .answer(403, refused("capability expired"))
        .ok(json!({}));
    let (made, steps) = create_with(&t, json!({}));
    assert_eq!(made.unwrap_err().code(), "FORBIDDEN");
    let seen = t.seen();
    assert_eq!(seen[0].token, "tok");
    assert_eq!(
        (seen[1].path.as_str(), seen[1].token.as_str()),
        ("/v1/projects/p/services/fbx-123", "cap.abc")
    );
    assert_eq!(
        (seen[2].cleanup, seen[2].token.as_str()),
        (true, "cap.abc"),
        "the clean-up uses the capability"
    );
    let starting = steps.iter().find(|s| s.step == "starting").unwrap();
    assert_eq!(
        (starting.id.as_deref(), starting.capability.as_deref()),
        (Some("fbx-123"), Some("cap.abc"))
    );
}

#[test]
fn bad_options_fail_before_any_request() {
    let t = Memory::new();
    let (made, _) = create_with(&t, json!({ "ports": [{ "port": 80, "protocol": "FTP" }] }));
    assert_eq!(made.unwrap_err().code(), "INVALID_ARGUMENT");
    assert!(t.calls().is_empty());
}
