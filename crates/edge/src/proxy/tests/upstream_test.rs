//! What goes upstream, odd upstream answers, and routing.

use super::*;

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
