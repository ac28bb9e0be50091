//! Volumes: sizes, names and attachment per client, the quota and the sweep.

use super::*;

fn volume_body(size: u64) -> Value {
    json!({ "name": "data-mine", "mounts": [{ "containerMountPath": "/data" }],
            "spec": { "accessMode": "ReadWriteOnce", "storageSize": size } })
}

fn create_volume(edge: &Edge, up: &Upstream, body: &Value, client: &str) -> EdgeResponse {
    let body = body.to_string();
    let mut req = request("POST", "/v1/projects/any/volumes", &body, None);
    req.client = client;
    block_on(edge.handle(&req, up))
}

#[test]
fn volumes_are_refused_unless_the_policy_sizes_them() {
    let up = Upstream::default();
    let closed = create_volume(&proxy(open_policy()), &up, &volume_body(512), "203.0.113.7");
    assert_eq!(closed.status, 403, "{}", closed.body);
    assert!(closed.body.contains("volumes are not allowed"), "{}", closed.body);
    let edge = proxy(json!({ "allowedOrigins": ["https://app.example"], "maxVolumeMb": 1024 }));
    let big = create_volume(&edge, &up, &volume_body(2048), "203.0.113.7");
    assert_eq!(big.status, 403);
    assert!(
        big.body.contains("2048 MB is over the limit of 1024 MB"),
        "{}",
        big.body
    );
    let mut body = volume_body(512);
    body["attachedObjects"] = json!([{ "id": "someone-elses", "type": "service" }]);
    let sneaky = create_volume(&edge, &up, &body, "203.0.113.7");
    assert_eq!(sneaky.status, 403, "{}", sneaky.body);
    assert!(up.volumes.borrow().is_empty(), "nothing was made");
}

#[test]
fn a_volume_is_named_for_its_client_and_attaches_only_to_that_clients_sandbox() {
    let up = Upstream::default();
    let edge = proxy(json!({ "allowedOrigins": ["https://app.example"], "maxVolumeMb": 1024 }));
    let made = create_volume(&edge, &up, &volume_body(512), "203.0.113.7");
    assert_eq!(made.status, 200, "{}", made.body);
    let id = json_of(&made)["data"]["id"].as_str().unwrap().to_string();
    let (owner, expires) = parse_sandbox_name(&id).unwrap();
    assert_eq!(owner, edge.owner("203.0.113.7"));
    assert_eq!(expires, NOW + 30 * 60 + VOLUME_GRACE_SECONDS);
    assert!(json_of(&made)["data"]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!(EDGE_TAG)));

    // Another client cannot attach it, nor can anyone attach a volume the proxy did not make.
    for (client, volume) in [("198.51.100.1", id.as_str()), ("203.0.113.7", "admins-data")] {
        let mut body = create_body();
        body["createOptions"] = json!({ "volumesToAttach": [volume] });
        let body = body.to_string();
        let mut req = request("POST", "/v1/projects/any/services/deployment", &body, None);
        req.client = client;
        let r = block_on(edge.handle(&req, &up));
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("was not made by this client"), "{}", r.body);
    }
    assert!(up.services.borrow().is_empty());

    // Its own client can, and destroying the sandbox takes the volume along.
    let mut body = create_body();
    body["createOptions"] = json!({ "volumesToAttach": [id] });
    let created = create(&edge, &up, &body);
    assert_eq!(created.status, 200, "{}", created.body);
    let created = json_of(&created);
    let (sandbox, cap) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["capability"].as_str().unwrap(),
    );
    assert_eq!(up.volumes.borrow()[0].2.as_deref(), Some(sandbox));
    let path = format!("/v1/projects/any/services/{sandbox}");
    let gone = block_on(edge.handle(&request("DELETE", &path, "", Some(&format!("Bearer {cap}"))), &up));
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(up.volumes.borrow().is_empty(), "the volume went with its sandbox");
}

#[test]
fn each_client_holds_only_so_many_volumes_and_the_sweep_takes_unclaimed_expired_ones() {
    let up = Upstream::default();
    let edge = proxy(json!({ "allowedOrigins": ["https://app.example"], "maxVolumeMb": 1024 }));
    for _ in 0..2 {
        assert_eq!(create_volume(&edge, &up, &volume_body(256), "203.0.113.7").status, 200);
    }
    let third = create_volume(&edge, &up, &volume_body(256), "203.0.113.7");
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.body.contains("TOO_MANY_VOLUMES"), "{}", third.body);
    // Another client's creates, all at once: two of them.
    let body = volume_body(256).to_string();
    let requests: Vec<EdgeRequest<'_>> = (0..4)
        .map(|_| EdgeRequest {
            client: "198.51.100.1",
            ..request("POST", "/v1/projects/any/volumes", &body, None)
        })
        .collect();
    let statuses: Vec<u16> = join_all(requests.iter().map(|r| edge.handle(r, &up)).collect())
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(up.volumes.borrow().len(), 4);
    up.volumes.borrow_mut().truncate(2);
    // One is taken by a sandbox; past their expiry, the sweep deletes only the other.
    up.volumes.borrow_mut()[0].2 = Some("in-use".into());
    let later = NOW + 30 * 60 + VOLUME_GRACE_SECONDS + 1;
    block_on(edge.sweep(later, &up)).unwrap();
    let left: Vec<_> = up.volumes.borrow().iter().map(|v| v.2.clone()).collect();
    assert_eq!(left, [Some("in-use".to_string())]);
}
