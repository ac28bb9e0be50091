//! The proxy's decisions, against an in-memory upstream (a fake: these are unit tests of the
//! decisions; the integration tests run the proxy in front of the real host, natively and in
//! workerd).

use std::cell::RefCell;
use std::future::Future;

use serde_json::{json, Value};

use super::*;

mod access_test;
mod create_test;
mod exec_test;
mod upstream_test;
mod volume_test;

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
