//! Exec init checks and the relay's frame limit.

use super::*;

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
