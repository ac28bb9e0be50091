//! Creates: naming, the lifetime, the policy, the per-client quota and its races, scaling.

use super::*;

#[test]
fn create_names_the_owner_caps_the_lifetime_and_grants_a_capability() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let r = create(&edge, &up, &create_body());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .headers
        .contains(&("Access-Control-Allow-Origin".into(), "https://app.example".into())));
    let data = &json_of(&r)["data"];
    let id = data["id"].as_str().unwrap();
    let (owner, expires) = parse_sandbox_name(id).unwrap();
    assert_eq!(owner, edge.owner("203.0.113.7"));
    assert_eq!(expires, NOW + 30 * 60, "asked for more than the policy's 30 minutes");
    assert_eq!(data["expiresAt"], expires);
    let cap = Capability::open(SECRET, data["capability"].as_str().unwrap()).unwrap();
    assert_eq!(
        (cap.sandbox_id.as_str(), cap.expires_at, cap.origin.as_deref()),
        (id, expires, Some("https://app.example"))
    );
    // Upstream got the proxy's project, name and tags, not the client's.
    let (_, path, body) = up.calls.borrow().iter().find(|c| c.0 == "POST").unwrap().clone();
    assert_eq!(path, "/v1/projects/real/services/deployment");
    let sent: Value = serde_json::from_str(body.as_deref().unwrap()).unwrap();
    assert_eq!(
        sent["tags"],
        json!(["mine", "flankbox-edge", format!("flankbox-expires-{expires}")])
    );
    // A shorter lifetime is kept.
    let mut short = create_body();
    short["tags"] = json!([format!("flankbox-expires-{}", NOW + 60)]);
    let data = json_of(&create(&edge, &up, &short))["data"].clone();
    assert_eq!(data["expiresAt"], NOW + 60);
}

#[test]
fn the_policy_refuses_images_plans_gpus_and_public_ports() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let cases: [(&str, Value, &str); 5] = [
        ("/deployment/external/imagePath", json!("alpine:3"), "image alpine:3"),
        (
            "/billing/deploymentPlan",
            json!("nf-compute-400"),
            "plan nf-compute-400",
        ),
        ("/billing/deploymentPlan", json!("nf-gpu-a100-80-1g"), "GPU"),
        (
            "/billing/gpu",
            json!({ "enabled": true, "configuration": { "gpuType": "h100-80", "gpuCount": 1 } }),
            "h100-80",
        ),
        (
            "/ports",
            json!([{ "name": "web", "internalPort": 80, "public": true, "protocol": "HTTP" }]),
            "public ports",
        ),
    ];
    for (pointer, value, words) in cases {
        let mut body = create_body();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        target[key] = value;
        let r = create(&edge, &up, &body);
        assert_eq!(r.status, 403, "{pointer}: {}", r.body);
        assert_eq!(json_of(&r)["error"]["details"]["code"], "POLICY");
        assert!(r.body.contains(words), "{pointer}: {}", r.body);
    }
    assert!(up.calls.borrow().iter().all(|c| c.0 != "POST"), "nothing was created");
    let allowing = proxy(json!({
        "allowedOrigins": ["https://app.example"],
        "allowPublicPorts": true,
        "allowGpu": true,
        "plans": ["nf-gpu-a100-80-1g"]
    }));
    let mut gpu = create_body();
    gpu["billing"]["deploymentPlan"] = json!("nf-gpu-a100-80-1g");
    let r = create(&allowing, &up, &gpu);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn each_client_may_hold_only_so_many_live_sandboxes_and_expired_ones_go() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let owner = edge.owner("203.0.113.7");
    // One expired sandbox of this client, one of another client, one not ours.
    let expired = format!("fbx-{owner}-{}-old001", base36(NOW - 1));
    up.services.borrow_mut().extend([
        (expired.clone(), expired.clone()),
        (
            "fbx-0000000000-zzzzzz-other1".into(),
            "fbx-0000000000-zzzzzz-other1".into(),
        ),
        ("unrelated".into(), "unrelated".into()),
    ]);
    assert_eq!(create(&edge, &up, &create_body()).status, 200);
    assert_eq!(create(&edge, &up, &create_body()).status, 200);
    let third = create(&edge, &up, &create_body());
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.body.contains("2 live sandboxes"));
    let names: Vec<String> = up.services.borrow().iter().map(|s| s.1.clone()).collect();
    assert!(!names.contains(&expired), "the expired sandbox was destroyed");
    assert!(names.contains(&"unrelated".to_string()));
    // The sweep leaves the live ones.
    assert_eq!(block_on(edge.sweep(NOW, &up)).unwrap(), 3);
    assert_eq!(
        block_on(edge.sweep(NOW + 31 * 60, &up)).unwrap(),
        1,
        "only the other client's, far in the future, is left"
    );
}

#[test]
fn scaling_passes_only_the_instance_count_and_storage_is_capped_at_create() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let mut body = create_body();
    body["deployment"]["storage"] = json!({ "ephemeralStorage": { "storageSize": 1_000_000 } });
    let huge = create(&edge, &up, &body);
    assert_eq!(huge.status, 403, "{}", huge.body);
    assert!(
        huge.body
            .contains("1000000 MB of ephemeral storage is over the limit of 4096 MB"),
        "{}",
        huge.body
    );

    let created = json_of(&create(&edge, &up, &create_body()));
    let (id, cap) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["capability"].as_str().unwrap(),
    );
    let auth = format!("Bearer {cap}");
    let call = |action: &str, body: Value| {
        let path = format!("/v1/projects/any/services/{id}/{action}");
        let body = body.to_string();
        block_on(edge.handle(&request("POST", &path, &body, Some(&auth)), &up))
    };
    for (action, body) in [
        (
            "scale",
            json!({ "instances": 1, "deploymentPlan": "nf-gpu-h100-80-1g" }),
        ),
        ("resume", json!({ "deploymentPlan": "nf-compute-400" })),
        (
            "scale",
            json!({ "instances": 1, "storage": { "ephemeralStorage": { "storageSize": 1_000_000 } } }),
        ),
        ("resume", json!({ "instances": 5 })),
    ] {
        let r = call(action, body.clone());
        assert_eq!(r.status, 403, "{action} {body}: {}", r.body);
    }
    assert_eq!(
        call("scale", json!({ "instances": 1, "gracePeriodSeconds": 5 })).status,
        200
    );
    let forwarded = up.calls.borrow().last().unwrap().2.clone();
    assert_eq!(
        forwarded.as_deref(),
        Some(r#"{"instances":1}"#),
        "only the count goes upstream"
    );
}

#[test]
fn one_ipv6_client_is_its_slash_64() {
    let edge = proxy(open_policy());
    assert_eq!(edge.owner("2001:db8:1:2::1"), edge.owner("2001:db8:1:2:ffff::9"));
    assert_ne!(edge.owner("2001:db8:1:2::1"), edge.owner("2001:db8:1:3::1"));
    assert_ne!(edge.owner("203.0.113.7"), edge.owner("203.0.113.8"));
}

#[test]
fn creates_racing_in_one_process_take_the_free_slots_in_turn() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let body = create_body().to_string();
    let requests: Vec<EdgeRequest<'_>> = (0..5)
        .map(|_| request("POST", "/v1/projects/any/services/deployment", &body, None))
        .collect();
    let answers = join_all(requests.iter().map(|r| edge.handle(r, &up)).collect());
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    assert_eq!(up.services.borrow().len(), 2);
    assert!(
        up.calls.borrow().iter().all(|(m, _, _)| m != "DELETE"),
        "none had to undo itself"
    );
    // The slots are free again once the creates are done.
    assert!(edge.creating.lock().unwrap().in_flight.is_empty());
}

#[test]
fn a_create_that_loses_a_race_past_the_limit_undoes_itself() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let owner = edge.owner("203.0.113.7");
    assert_eq!(create(&edge, &up, &create_body()).status, 200);
    // One slot is left; another create of the same client lands while this one runs.
    let rival = format!("fbx-{owner}-{}-rival1", base36(NOW + 600));
    up.racing.borrow_mut().push(rival.clone());
    let late = create(&edge, &up, &create_body());
    assert_eq!(late.status, 429, "{}", late.body);
    let names: Vec<String> = up.services.borrow().iter().map(|s| s.1.clone()).collect();
    assert_eq!(names.len(), 2, "the limit holds: {names:?}");
    assert!(names.contains(&rival));
    let deleted = up.calls.borrow().iter().filter(|(m, _, _)| m == "DELETE").count();
    assert_eq!(deleted, 1, "the late create was deleted again");
}
