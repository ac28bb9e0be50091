//! Capabilities on every sandbox operation, their expiry, and origins.

use super::*;

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
