//! exposePort: the merge of the port list, and its failures.

use super::*;

fn port(port: u32, protocol: Option<&str>) -> PortOptions {
    PortOptions {
        port,
        protocol: protocol.map(str::to_string),
        public: None,
        name: None,
    }
}

#[test]
fn expose_port_replaces_its_number_and_name_keeps_the_rest_and_polls_for_the_name() {
    let t = Memory::new()
        .ok(json!({ "ports": [
            { "id": "a", "name": "p8080", "internalPort": 9000, "protocol": "HTTP", "public": true },
            { "id": "b", "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": true },
            { "id": "c", "name": "db", "internalPort": 5432, "protocol": "TCP", "public": false }
        ] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 8080, "name": "p8080" }] }))
        .ok(json!({ "ports": [{ "internalPort": 8080, "name": "p8080", "dns": "p8080--box.localhost:7420" }] }));
    let url = run(expose_port(&t, &sandbox(), &port(8080, None))).unwrap();
    assert_eq!(url.as_deref(), Some("http://p8080--box.localhost:7420"));
    let posted = t.seen()[1].body.clone().unwrap();
    let kept: Vec<_> = posted["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].clone(), p["name"].clone()))
        .collect();
    assert_eq!(kept, [(json!("c"), json!("db")), (Value::Null, json!("p8080"))]);
}

#[test]
fn expose_port_failures() {
    // A private HTTP port gets no name: nothing to wait for.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 80, "name": "p80" }] }));
    let private = PortOptions {
        public: Some(false),
        ..port(80, None)
    };
    assert_eq!(run(expose_port(&t, &sandbox(), &private)).unwrap(), None);
    // An unknown protocol is refused before any request.
    let t = Memory::new();
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, Some("FTP"))))
            .unwrap_err()
            .code(),
        "INVALID_ARGUMENT"
    );
    assert!(t.calls().is_empty());
    // The update refused.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .answer(400, refused("ports[0].name: too long"));
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, None))).unwrap_err().code(),
        "BAD_REQUEST"
    );
    // A public name that never comes: the call's timeout.
    let t = Memory::new()
        .ok(json!({ "ports": [] }))
        .ok(json!({}))
        .ok(json!({ "ports": [{ "internalPort": 80, "name": "p80" }] }))
        .time_out_after_sleeps(0);
    assert_eq!(
        run(expose_port(&t, &sandbox(), &port(80, None))).unwrap_err().code(),
        "TIMEOUT"
    );
}
