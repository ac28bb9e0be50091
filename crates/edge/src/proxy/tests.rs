//! The proxy's decisions, against an in-memory upstream (a fake: these are unit tests of the
//! decisions; the integration tests run the proxy in front of the real host, natively and in
//! workerd).

use std::cell::RefCell;
use std::future::Future;

use serde_json::{json, Value};

use super::*;

const SECRET: &[u8] = b"unit-test-secret-unit-test-secret";
const NOW: u64 = 1_800_000_000;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Pending once, then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Runs futures side by side, polling each in turn.
fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while done.iter().any(Option::is_none) {
        for (f, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                    *out = Some(v);
                }
            }
        }
    }
    done.into_iter().flatten().collect()
}

/// Services by (id, name); every call recorded.
#[derive(Default)]
struct Upstream {
    services: RefCell<Vec<(String, String)>>,
    calls: RefCell<Vec<(String, String, Option<String>)>>,
    /// Names that appear with the next create, as if other creates raced it.
    racing: RefCell<Vec<String>>,
    /// Volumes by (id, name, attached service).
    volumes: RefCell<Vec<(String, String, Option<String>)>>,
}

impl Io for Upstream {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), EdgeError> {
        // Every call lets other requests run first, as a network call would.
        YieldOnce(false).await;
        self.calls.borrow_mut().push((method.into(), path.into(), body.clone()));
        let mut services = self.services.borrow_mut();
        let answer = match (method, path.split('?').next().unwrap()) {
            ("GET", "/v1/projects/real/services") => {
                let list: Vec<Value> = services
                    .iter()
                    .map(|(id, name)| {
                        json!({ "id": id, "name": name, "appId": format!("/t/real/{id}"), "projectId": "real",
                                "tags": [], "serviceType": "deployment", "disabledCI": true, "disabledCD": true,
                                "status": {} })
                    })
                    .collect();
                json!({ "data": { "services": list }, "pagination": { "hasNextPage": false, "count": list.len() } })
            }
            ("POST", "/v1/projects/real/services/deployment") => {
                let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
                let name = body["name"].as_str().unwrap().to_string();
                for v in body["createOptions"]["volumesToAttach"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for vol in self.volumes.borrow_mut().iter_mut().filter(|(i, _, _)| i == v) {
                        vol.2 = Some(name.clone());
                    }
                }
                services.push((name.clone(), name.clone()));
                services.extend(self.racing.borrow_mut().drain(..).map(|n| (n.clone(), n)));
                json!({ "data": { "id": name, "name": name } })
            }
            ("GET", "/v1/projects/real/volumes") => {
                let list: Vec<Value> = self
                    .volumes
                    .borrow()
                    .iter()
                    .map(|(id, name, on)| {
                        let attached: Vec<Value> = on.iter().map(|s| json!({ "id": s, "type": "service" })).collect();
                        json!({ "id": id, "name": name, "attachedObjects": attached, "status": "AVAILABLE",
                                "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 },
                                "createdAt": "2027-01-15T08:00:00Z", "updatedAt": "2027-01-15T08:00:00Z" })
                    })
                    .collect();
                json!({ "data": list, "pagination": { "hasNextPage": false, "count": list.len() } })
            }
            ("POST", "/v1/projects/real/volumes") => {
                let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
                let name = body["name"].as_str().unwrap().to_string();
                self.volumes.borrow_mut().push((name.clone(), name.clone(), None));
                json!({ "data": { "id": name, "name": name, "tags": body["tags"] } })
            }
            ("DELETE", p) if p.starts_with("/v1/projects/real/volumes/") => {
                let id = p.rsplit('/').next().unwrap();
                self.volumes.borrow_mut().retain(|(i, _, _)| i != id);
                json!({ "data": {} })
            }
            ("DELETE", p) => {
                let id = p.rsplit('/').next().unwrap();
                services.retain(|(i, _)| i != id);
                // Child objects go with it.
                self.volumes.borrow_mut().retain(|(_, _, on)| on.as_deref() != Some(id));
                json!({ "data": {} })
            }
            _ => json!({ "data": { "forwarded": path } }),
        };
        Ok((200, answer.to_string()))
    }

    fn nonce(&self) -> String {
        format!("n{:05}", self.calls.borrow().len())
    }
}

fn proxy(policy: Value) -> Edge {
    Edge::new(
        SECRET,
        "real-token",
        "real",
        None,
        Policy::from_json(&policy.to_string()).unwrap(),
    )
    .unwrap()
}

fn create_body() -> Value {
    json!({
        "name": "whatever",
        "billing": { "deploymentPlan": "nf-compute-200" },
        "deployment": { "instances": 0, "external": { "imagePath": "ubuntu:22.04" },
                        "docker": { "configType": "customCommand", "customCommand": "sleep infinity" } },
        "tags": ["mine", "flankbox-expires-1900000000"]
    })
}

fn request<'a>(method: &'a str, path: &'a str, body: &'a str, auth: Option<&'a str>) -> EdgeRequest<'a> {
    EdgeRequest {
        method,
        path,
        query: "",
        authorization: auth,
        origin: Some("https://app.example"),
        own_origin: Some("https://edge.example"),
        client: "203.0.113.7",
        body,
        now: NOW,
    }
}

fn json_of(r: &EdgeResponse) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

fn create(edge: &Edge, up: &Upstream, body: &Value) -> EdgeResponse {
    let body = body.to_string();
    block_on(edge.handle(
        &request("POST", "/v1/projects/any/services/deployment", &body, None),
        up,
    ))
}

fn open_policy() -> Value {
    json!({ "allowedOrigins": ["https://app.example"] })
}

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
fn only_what_was_checked_goes_upstream() {
    let (edge, up) = (
        proxy(json!({ "allowedOrigins": ["https://app.example"], "allowPublicPorts": true })),
        Upstream::default(),
    );
    let mut body = create_body();
    body["deployment"]["gpu"] = json!({ "enabled": false, "configuration": { "gpuType": "h100-80", "gpuCount": 8 } });
    body["deployment"]["external"]["credentials"] = json!("team-registry-secret");
    body["deployment"]["storage"] = json!({ "usePdSsdStorage": true });
    let created = json_of(&create(&edge, &up, &body));
    let sent = up
        .calls
        .borrow()
        .iter()
        .find(|c| c.0 == "POST")
        .unwrap()
        .2
        .clone()
        .unwrap();
    for word in ["gpu", "credentials", "usePdSsdStorage"] {
        assert!(!sent.contains(word), "{word} was passed on: {sent}");
    }
    let (id, cap) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["capability"].as_str().unwrap(),
    );
    let ports = json!({ "ports": [{ "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": true,
                                    "domains": ["mine.example"], "security": { "policies": [] }, "extra": 1 }] })
    .to_string();
    let path = format!("/v1/projects/any/services/{id}/ports");
    let r = block_on(edge.handle(&request("POST", &path, &ports, Some(&format!("Bearer {cap}"))), &up));
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = up.calls.borrow().last().unwrap().2.clone().unwrap();
    assert!(
        sent.contains("8080") && !sent.contains("domains") && !sent.contains("security") && !sent.contains("extra"),
        "{sent}"
    );
}

/// An upstream that answers every call with the same body.
struct Odd(&'static str);

impl Io for Odd {
    async fn call(&self, _: &str, _: &str, _: Option<String>) -> Result<(u16, String), EdgeError> {
        Ok((200, self.0.to_string()))
    }
    fn nonce(&self) -> String {
        "n00001".into()
    }
}

/// An upstream that answers a create with the same body, and the rest as [`Upstream`].
struct OddCreate<'a>(&'a Upstream, &'static str);

impl Io for OddCreate<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), EdgeError> {
        if path.ends_with("/services/deployment") {
            return Ok((200, self.1.to_string()));
        }
        self.0.call(method, path, body).await
    }
    fn nonce(&self) -> String {
        "n00001".into()
    }
}

#[test]
fn odd_upstream_answers_are_errors_not_panics() {
    let edge = proxy(open_policy());
    let body = create_body().to_string();
    // A listing of another shape cannot be counted: the create is refused as an upstream
    // error, before anything is made, and the sweep fails the same way.
    for odd in [
        "[]",
        r#"{"data":"x"}"#,
        r#"{"data":[1,2]}"#,
        "null",
        r#"{"data":{"services":5}}"#,
    ] {
        let r = block_on(edge.handle(
            &request("POST", "/v1/projects/any/services/deployment", &body, None),
            &Odd(odd),
        ));
        assert_eq!(r.status, 502, "{odd}: {}", r.body);
        assert_eq!(json_of(&r)["error"]["details"]["code"], "UPSTREAM");
        let swept = block_on(edge.sweep(NOW, &Odd(odd)));
        assert_eq!(swept.map_err(|e| e.code()), Err("UPSTREAM"), "{odd}");
    }
    // A create answered without a data object is an upstream error too.
    let up = Upstream::default();
    let create = |odd: &'static str| {
        let r = block_on(edge.handle(
            &request("POST", "/v1/projects/any/services/deployment", &body, None),
            &OddCreate(&up, odd),
        ));
        (r.status, r.body)
    };
    for odd in [r#"{"data":"x"}"#, "[]", "null"] {
        assert_eq!(create(odd).0, 502, "{odd}");
    }
    assert_eq!(create(r#"{"data":{"id":"x"}}"#).0, 200);
    // And the proxy never prints its secrets.
    let shown = format!("{edge:?}");
    assert!(
        !shown.contains("real-token") && !shown.contains("unit-test-secret"),
        "{shown}"
    );
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

#[test]
fn capabilities_guard_every_sandbox_operation() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let data = json_of(&create(&edge, &up, &create_body()))["data"].clone();
    let (id, cap) = (data["id"].as_str().unwrap(), data["capability"].as_str().unwrap());
    let bearer = format!("Bearer {cap}");
    let call = |method: &str, path: &str, body: &str, auth: Option<&str>| {
        block_on(edge.handle(&request(method, path, body, auth), &up))
    };
    let get = format!("/v1/projects/any/services/{id}");
    let ok = call("GET", &get, "", Some(&bearer));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        json_of(&ok)["data"]["forwarded"],
        format!("/v1/projects/real/services/{id}")
    );

    let refused = |r: EdgeResponse, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(json_of(&r)["error"]["details"]["code"], code, "{}", r.body);
    };
    refused(call("GET", &get, "", None), 401, "CAPABILITY_REQUIRED");
    refused(
        call("GET", &get, "", Some("Bearer fbx1.forged.sxd.9999999999..AAAA")),
        401,
        "CAPABILITY_INVALID",
    );
    let real_token = call("GET", &get, "", Some("Bearer real-token"));
    refused(real_token, 401, "CAPABILITY_INVALID");
    refused(
        call("GET", "/v1/projects/any/services/other-sandbox", "", Some(&bearer)),
        403,
        "CAPABILITY_SCOPE",
    );
    // Scale to 0 is a pause; more than one instance is never allowed.
    let scale = format!("{get}/scale");
    assert_eq!(call("POST", &scale, r#"{"instances":0}"#, Some(&bearer)).status, 200);
    refused(call("POST", &scale, r#"{"instances":3}"#, Some(&bearer)), 403, "POLICY");
    // Ports: public ones refused by this policy.
    let ports = format!("{get}/ports");
    let public = r#"{"ports":[{"name":"web","internalPort":8080,"public":true,"protocol":"HTTP"}]}"#;
    refused(call("POST", &ports, public, Some(&bearer)), 403, "POLICY");
    // A capability without destroy cannot delete.
    let narrow = Capability {
        ops: [Op::Status].into_iter().collect(),
        ..Capability::open(SECRET, cap).unwrap()
    };
    refused(
        call("DELETE", &get, "", Some(&format!("Bearer {}", narrow.mint(SECRET)))),
        403,
        "CAPABILITY_SCOPE",
    );
    // Destroy deletes everything upstream.
    assert_eq!(call("DELETE", &get, "", Some(&bearer)).status, 200);
    assert!(up
        .calls
        .borrow()
        .iter()
        .any(|c| c.0 == "DELETE" && c.1 == format!("/v1/projects/real/services/{id}?delete_child_objects=true")));
    // Logs keep only the range query's parameters.
    let logs = block_on(edge.handle(
        &EdgeRequest {
            query: "lineLimit=5&evil=1&queryType=tail",
            ..request("GET", &format!("{get}/logs"), "", Some(&bearer))
        },
        &up,
    ));
    assert_eq!(
        json_of(&logs)["data"]["forwarded"],
        format!("/v1/projects/real/services/{id}/logs?queryType=range&lineLimit=5")
    );
}

#[test]
fn an_expired_capability_destroys_its_sandbox() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let data = json_of(&create(&edge, &up, &create_body()))["data"].clone();
    let (id, cap) = (data["id"].as_str().unwrap(), data["capability"].as_str().unwrap());
    let path = format!("/v1/projects/p/services/{id}");
    let late = EdgeRequest {
        now: NOW + 3600,
        ..request("GET", &path, "", None)
    };
    let bearer = format!("Bearer {cap}");
    let r = block_on(edge.handle(
        &EdgeRequest {
            authorization: Some(&bearer),
            ..late
        },
        &up,
    ));
    assert_eq!(r.status, 401);
    assert!(r.body.contains("expired"));
    assert!(up.services.borrow().is_empty(), "destroyed on access");
}

#[test]
fn foreign_origins_get_no_cors_and_a_403() {
    let (edge, up) = (proxy(open_policy()), Upstream::default());
    let evil = EdgeRequest {
        origin: Some("https://evil.example"),
        ..request("OPTIONS", "/v1/projects/p/services/deployment", "", None)
    };
    let r = block_on(edge.handle(&evil, &up));
    assert_eq!(
        (r.status, json_of(&r)["error"]["details"]["code"].clone()),
        (403, json!("ORIGIN"))
    );
    assert!(r.headers.iter().all(|(k, _)| !k.starts_with("Access-Control")));
    let preflight = block_on(edge.handle(&request("OPTIONS", "/v1/projects/p/services/deployment", "", None), &up));
    assert_eq!(preflight.status, 204);
    assert!(preflight
        .headers
        .iter()
        .any(|(k, v)| k == "Access-Control-Allow-Headers" && v.contains("authorization")));
    // The proxy's own origin is always fine.
    let own = EdgeRequest {
        origin: Some("https://edge.example"),
        ..request("OPTIONS", "/v1/projects/p/services/deployment", "", None)
    };
    assert_eq!(block_on(edge.handle(&own, &up)).status, 204);
    assert!(up.calls.borrow().is_empty());
}

#[test]
fn exec_init_is_checked_and_gets_the_real_token() {
    let edge = proxy(
        json!({ "allowedOrigins": ["*"], "exec": { "users": ["sandbox"], "allowTty": false, "maxFrameBytes": 2048 } }),
    );
    let up = Upstream::default();
    let data = json_of(&create(&edge, &up, &create_body()))["data"].clone();
    let (id, cap) = (data["id"].as_str().unwrap(), data["capability"].as_str().unwrap());
    let grant = edge
        .open_exec(
            &format!("/v1/command-exec/projects/any/services/{id}"),
            Some("https://app.example"),
            None,
        )
        .unwrap();
    assert_eq!(
        grant.upstream_path,
        format!("/v1/command-exec/projects/real/services/{id}")
    );
    let init = |token: &str, context: Value| {
        json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": token }, "context": context, "extra": "dropped" } }).to_string()
    };
    let origin = Some("https://app.example");
    let good = edge
        .exec_init(
            &grant,
            &init(cap, json!({ "command": ["id"], "user": "sandbox" })),
            origin,
            NOW,
        )
        .unwrap();
    let sent: Value = serde_json::from_str(&good).unwrap();
    assert_eq!(sent["data"]["auth"]["apiToken"], "real-token");
    assert_eq!(sent["data"]["context"]["command"], json!(["id"]));
    assert!(!good.contains("extra") && !good.contains(cap));
    let err = |r: Result<String, EdgeError>| r.unwrap_err().code();
    assert_eq!(
        err(edge.exec_init(&grant, &init("real-token", json!({ "user": "sandbox" })), origin, NOW)),
        "CAPABILITY_INVALID"
    );
    assert_eq!(
        err(edge.exec_init(&grant, &init(cap, json!({ "command": ["id"] })), origin, NOW)),
        "POLICY",
        "root by default"
    );
    assert_eq!(
        err(edge.exec_init(&grant, &init(cap, json!({ "user": 0 })), origin, NOW)),
        "POLICY"
    );
    // No context at all is the default shell as root: refused the same way.
    let bare = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": cap } } }).to_string();
    assert_eq!(err(edge.exec_init(&grant, &bare, origin, NOW)), "POLICY", "no context");
    assert_eq!(
        err(edge.exec_init(
            &grant,
            &init(cap, json!({ "user": "sandbox", "group": 0 })),
            origin,
            NOW
        )),
        "POLICY",
        "a chosen group"
    );
    assert_eq!(
        err(edge.exec_init(
            &grant,
            &init(cap, json!({ "user": "sandbox", "tty": true })),
            origin,
            NOW
        )),
        "POLICY"
    );
    assert_eq!(
        err(edge.exec_init(&grant, r#"{"type":"payload","data":"x"}"#, origin, NOW)),
        "BAD_REQUEST"
    );
    assert_eq!(
        err(edge.exec_init(
            &grant,
            &init(cap, json!({ "user": "sandbox" })),
            Some("https://evil.example"),
            NOW
        )),
        "CAPABILITY_SCOPE"
    );
    assert_eq!(
        err(edge.exec_init(&grant, &init(cap, json!({ "user": "sandbox" })), origin, NOW + 3600)),
        "CAPABILITY_EXPIRED"
    );
    let other = edge
        .open_exec("/v1/command-exec/projects/any/services/someone-else", None, None)
        .unwrap();
    assert_eq!(
        err(edge.exec_init(&other, &init(cap, json!({ "user": "sandbox" })), origin, NOW)),
        "CAPABILITY_SCOPE"
    );
    assert_eq!(edge.check_frame(4096).unwrap_err().code(), "FRAME_TOO_LARGE");
    assert!(edge.check_frame(2048).is_ok());
}

#[test]
fn routes() {
    let r = |m, p| Edge::route(m, p);
    assert_eq!(
        r("POST", "/v1/teams/t/projects/p/services/deployment"),
        Ok(Route::Create)
    );
    assert_eq!(
        r("POST", "/v1/projects/p/services/abc/restart").map(|r| matches!(r, Route::Sandbox { op: Op::Resume, .. })),
        Ok(true)
    );
    assert_eq!(r("POST", "/v1/projects/p/volumes"), Ok(Route::CreateVolume));
    for (m, p) in [
        ("GET", "/v1/plans"),
        ("GET", "/v1/projects/p/volumes"),
        ("DELETE", "/v1/projects/p/volumes/v"),
        ("POST", "/v1/projects/p/volumes/v/attach"),
        ("GET", "/v1/projects/p/services/Bad_Id"),
        ("PUT", "/v1/projects/p/services/a"),
        ("GET", "/etc/passwd"),
    ] {
        assert_eq!(r(m, p).unwrap_err().status(), 404, "{m} {p}");
    }
    assert_eq!(base36(35), "z");
    assert_eq!(
        parse_sandbox_name(&format!("fbx-0123456789-{}-abc123", base36(NOW))),
        Some(("0123456789", NOW))
    );
    assert_eq!(parse_sandbox_name("fbx-short-1-a"), None);
}
