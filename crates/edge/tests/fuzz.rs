//! Fuzz targets for what the edge proxy reads from outside: capability strings (forged, altered,
//! and authentic ones with odd bodies), the policy JSON, routes, sandbox names, and the browser's
//! exec `init`.
//!
//! Properties: nothing panics; refusals are [`EdgeError`]s with a message and a 4xx status
//! (500 only for a bad policy, which is the operator's configuration); minted capabilities open
//! to themselves. `FUZZ_SECONDS=N` runs each target for N seconds.

#[path = "../../../tests/support/fuzz_runner.rs"]
mod fuzz_runner;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use flankbox_edge::proxy::parse_sandbox_name;
use flankbox_edge::{Capability, Edge, EdgeError, ExecGrant, Op, Ops, Policy};
use fuzz_runner::*;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-fuzz";

fn ops() -> impl Strategy<Value = Ops> {
    prop::collection::vec(prop::sample::select(Op::ALL.to_vec()), 0..8).prop_map(|o| o.into_iter().collect())
}

fn capability() -> impl Strategy<Value = Capability> {
    // An empty origin mints as unbound (the format cannot tell them apart); only a program can
    // send `Origin: ""`, and a program can claim any origin anyway.
    let origin = prop::option::of(odd_string().prop_filter("non-empty", |o| !o.is_empty()));
    ("[a-z0-9-]{0,30}", ops(), any::<u64>(), origin).prop_map(|(sandbox_id, ops, expires_at, origin)| Capability {
        sandbox_id,
        ops,
        expires_at,
        origin,
    })
}

/// Signs `body` as the proxy would, so that the parsing after the MAC check is reached.
fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body.as_bytes());
    format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// A refusal is a client error with a message, in the Northflank shape.
fn well_formed(e: &EdgeError, statuses: &[u16]) -> Result<(), TestCaseError> {
    prop_assert!(statuses.contains(&e.status()), "{:?} has status {}", e, e.status());
    prop_assert!(!e.to_string().is_empty());
    let body: Value = serde_json::from_str(&e.body()).map_err(|x| TestCaseError::fail(x.to_string()))?;
    prop_assert_eq!(body["error"]["status"].as_u64(), Some(u64::from(e.status())));
    prop_assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    Ok(())
}

/// Strings shaped like capabilities: the prefix, dots, base64 and numbers in odd places.
fn capability_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("fbx1".to_string()),
        "[a-z0-9-]{0,12}",
        "[sxprdol]{0,9}",
        "[0-9]{0,22}",
        "[A-Za-z0-9_-]{0,44}",
        odd_string(),
    ];
    prop::collection::vec(part, 0..8).prop_map(|p| p.join("."))
}

#[test]
fn capabilities_round_trip_and_refuse_tampering() {
    fuzz(
        "capabilities, minted and mutated",
        || (capability(), byte_edits()),
        |(cap, edits)| {
            let token = cap.mint(SECRET);
            let opened = Capability::open(SECRET, &token).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&opened, &cap);
            let changed = String::from_utf8_lossy(&mutate_bytes(token.clone().into_bytes(), &edits)).into_owned();
            match Capability::open(SECRET, &changed) {
                // Only an edit that changed nothing the MAC covers may pass (a base64 tail bit).
                Ok(c) => prop_assert_eq!(c, cap),
                Err(e) => {
                    prop_assert_eq!(&e, &EdgeError::InvalidCapability);
                    well_formed(&e, &[401])?;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn capability_strings_from_anywhere() {
    fuzz(
        "capabilities, arbitrary and authentic-but-odd",
        || {
            (
                prop_oneof![capability_like(), odd_string()],
                any::<u64>(),
                odd_string(),
                prop::option::of(odd_string()),
            )
        },
        |(text, now, sandbox, origin)| {
            // Unsigned: always refused. Signed by us with any body: parsed or refused, never a panic.
            prop_assert!(Capability::open(SECRET, &text).is_err());
            match Capability::open(SECRET, &sign(&text)) {
                Ok(cap) => {
                    for op in Op::ALL {
                        if let Err(e) = cap.check(&sandbox, op, now, origin.as_deref()) {
                            well_formed(&e, &[401, 403])?;
                        }
                    }
                }
                Err(e) => well_formed(&e, &[401])?,
            }
            Ok(())
        },
    );
}

/// A policy document, mostly well-typed, before mutation.
fn policy_json() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(odd_string(), 0..3),
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
        prop::collection::vec(prop_oneof![prop::sample::select(vec!["status", "exec", "logs", "nope"]).prop_map(String::from), odd_string()], 0..4),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        prop::collection::vec(any::<bool>(), 14),
    )
        .prop_map(|(images, ttl, max, flag, operations, (frame, idle, mb), keep)| {
            object(
                vec![
                    ("images", json!(images)),
                    ("plans", json!(["nf-compute-20"])),
                    ("maxTtlSeconds", json!(ttl)),
                    ("maxSandboxesPerClient", json!(max)),
                    ("allowPublicPorts", json!(flag)),
                    ("allowGpu", json!(!flag)),
                    ("maxVolumeMb", json!(mb)),
                    ("maxEphemeralMb", json!(mb / 3)),
                    ("allowedOrigins", json!(["*", "https://a.example"])),
                    ("bindOrigin", json!(flag)),
                    ("operations", json!(operations)),
                    (
                        "exec",
                        json!({ "maxFrameBytes": frame, "idleTimeoutSeconds": idle, "allowTty": flag, "users": ["sandbox"] }),
                    ),
                ],
                &keep,
            )
        })
}

#[test]
fn policies_from_json() {
    fuzz(
        "policy JSON",
        || {
            prop_oneof![
                4 => (policy_json(), json_edits()).prop_map(|(v, e)| mutate_json(v, &e).to_string()),
                1 => json_token_soup(&["images", "plans", "maxTtlSeconds", "exec", "maxFrameBytes", "operations", "users"]),
                1 => any_json().prop_map(|v| v.to_string()),
            ]
        },
        |text| {
            match Policy::from_json(&text) {
                Ok(p) => {
                    prop_assert!(p.check().is_ok());
                    let _ = p.granted();
                    let _ = p.origin_allowed("https://a.example", None);
                    // A usable policy makes a usable proxy.
                    prop_assert!(Edge::new(SECRET, "token", "p", None, p).is_ok());
                }
                Err(e) => {
                    prop_assert!(matches!(e, EdgeError::Config(_)), "{:?}", e);
                    prop_assert!(e.to_string().starts_with("edge proxy configuration: policy"), "{}", e);
                }
            }
            Ok(())
        },
    );
}

fn path_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        prop::sample::select(vec![
            "v1",
            "command-exec",
            "projects",
            "teams",
            "services",
            "deployment",
            "volumes",
            "scale",
            "pause",
            "resume",
            "restart",
            "ports",
            "logs",
            "containers",
            "",
            "..",
            "p",
            "fbx-0123456789-abc-x1",
        ])
        .prop_map(String::from),
        odd_string(),
    ];
    prop::collection::vec(segment, 0..9).prop_map(|s| format!("/{}", s.join("/")))
}

#[test]
fn routes_and_sandbox_names() {
    fuzz(
        "routes and sandbox names",
        || {
            (
                prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", ""]),
                path_like(),
                odd_string(),
            )
        },
        |(method, path, name)| {
            if let Err(e) = Edge::route(method, &path) {
                well_formed(&e, &[400, 403, 404, 405])?;
            }
            let edge = Edge::new(SECRET, "token", "p", None, Policy::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Err(e) = edge.open_exec(&path, Some(&name), None) {
                well_formed(&e, &[400, 403, 404])?;
            }
            let _ = parse_sandbox_name(&name);
            let _ = parse_sandbox_name(&path);
            Ok(())
        },
    );
}

/// The browser's exec `init`, with a capability good, forged or for another sandbox.
fn exec_init_message() -> impl Strategy<Value = String> {
    let context = prop_oneof![
        Just(Value::Null),
        any_json(),
        (
            any::<bool>(),
            prop_oneof![Just(json!("sandbox")), Just(json!(0)), any_json()],
            any_json()
        )
            .prop_map(
                |(tty, user, group)| json!({ "command": "ls", "tty": tty, "user": user, "group": group, "smuggled": 1 })
            ),
    ];
    let token = prop_oneof![
        (
            ops(),
            prop_oneof![Just("sbx".to_string()), "[a-z]{1,4}".prop_map(String::from)]
        )
            .prop_map(|(ops, id)| {
                Capability {
                    sandbox_id: id,
                    ops,
                    expires_at: u64::MAX,
                    origin: None,
                }
                .mint(SECRET)
            }),
        capability_like(),
    ];
    prop_oneof![
        4 => (token, context, json_edits()).prop_map(|(t, c, edits)| {
            mutate_json(json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": t }, "context": c } }), &edits).to_string()
        }),
        1 => json_token_soup(&["type", "init", "data", "auth", "apiToken", "context", "tty", "user", "group", "payload"]),
    ]
}

#[test]
fn exec_init_messages() {
    let mut policy = Policy::default();
    policy.exec.users = vec!["sandbox".into()];
    policy.exec.allow_tty = false;
    let edge = Edge::new(SECRET, "real-token", "p", None, policy).expect("edge");
    let grant = ExecGrant {
        sandbox_id: "sbx".into(),
        upstream_path: "/v1/command-exec/projects/p/services/sbx".into(),
    };
    fuzz("edge exec init", exec_init_message, |message| {
        match edge.exec_init(&grant, &message, None, 1) {
            Ok(rewritten) => {
                // Passed on only with the real token, as a well-formed init.
                let frame: Value = serde_json::from_str(&rewritten).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&frame["type"], "init");
                prop_assert_eq!(&frame["data"]["auth"]["apiToken"], "real-token");
            }
            Err(e) => well_formed(&e, &[400, 401, 403, 413])?,
        }
        Ok(())
    });
}
