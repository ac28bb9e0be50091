//! Fuzz targets for the host's parsers, without a running host: request bodies as every JSON
//! route reads them (then as create, scale, ports, volume create and attach), the query
//! parameters of logs and lists, the log tail's `init`, and the exec context (argv, user,
//! payloads), through `flankbox_host::api::fuzz_support`.
//!
//! Properties: nothing panics; every refusal is a 4xx with a Northflank-shaped body whose
//! `error.status` is the HTTP status and whose message says something; what is accepted obeys
//! its limits. `FUZZ_SECONDS=N` runs each target for N seconds.

#[path = "../../../tests/support/fuzz_runner.rs"]
mod fuzz_runner;

use flankbox_host::api::fuzz_support::{self, Refusal};
use flankbox_host::host::parse_body;
use flankbox_protocol::exec::{Command, ExecContext, IdOrName};
use flankbox_protocol::logs::TailClientFrame;
use flankbox_protocol::service::{CreateDeployment, PortList, PortSpec, ScaleRequest};
use flankbox_protocol::validate::{check_create_deployment, check_create_volume, check_ports, check_scale};
use flankbox_protocol::volume::{AttachRequest, CreateVolume};
use fuzz_runner::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A refusal is a 4xx with `{"error": {"status": <the status>, "message": "…"}}`.
fn northflank_4xx(refusal: &Refusal) -> Result<(), TestCaseError> {
    let (status, body) = refusal;
    prop_assert!((400..500).contains(status), "status {} ({:?})", status, body);
    let body = body
        .as_ref()
        .map_err(|text| TestCaseError::fail(format!("a {status} whose body is not JSON: {text:?}")))?;
    prop_assert_eq!(body["error"]["status"].as_u64(), Some(u64::from(*status)), "{}", body);
    prop_assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        body
    );
    Ok(())
}

fn host_error(e: &flankbox_host::Error) -> Result<(), TestCaseError> {
    let status = e.status().as_u16();
    let body = serde_json::to_value(e.body()).map_err(|x| TestCaseError::fail(x.to_string()))?;
    northflank_4xx(&(status, Ok(body)))
}

/// The body, through the route's reader and then as `T` with its check: refusals are 400s.
fn as_body<T: serde::de::DeserializeOwned>(
    value: &Value,
    check: impl Fn(&T) -> Result<(), flankbox_protocol::ValidationError>,
) -> Result<(), TestCaseError> {
    match parse_body::<T>(value.clone()) {
        Ok(parsed) => {
            if let Err(v) = check(&parsed) {
                let e = flankbox_host::Error::Invalid(v);
                prop_assert_eq!(e.status().as_u16(), 400);
                host_error(&e)?;
            }
        }
        Err(e) => {
            prop_assert_eq!(e.status().as_u16(), 400);
            host_error(&e)?;
        }
    }
    Ok(())
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = json!({
        "name": "sandbox-1",
        "billing": { "deploymentPlan": "nf-compute-200" },
        "deployment": {
            "instances": 1,
            "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
            "external": { "imagePath": "ubuntu:22.04" },
            "storage": { "ephemeralStorage": { "storageSize": 2048 } }
        },
        "ports": [{ "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": false }],
        "mounts": [{ "containerMountPath": "/data" }],
        "spec": { "accessMode": "ReadWriteOnce", "storageSize": 2048 },
        "nfObject": { "id": "sandbox-1", "type": "service" },
        "instances": 0,
    });
    prop_oneof![
        4 => json_edits().prop_map(move |e| mutate_json(valid.clone(), &e).to_string().into_bytes()),
        1 => (Just(b"{\"name\":\"x\"}".to_vec()), byte_edits()).prop_map(|(b, e)| mutate_bytes(b, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::sample::select(vec!["", "  \n\t", "null", "[]", "\"\"", "1e999", "{\"a\":", "\u{feff}{}"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => (1usize..200).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
    ]
}

#[test]
fn request_bodies() {
    fuzz("host request bodies", body_bytes, |bytes| {
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        match block_on(fuzz_support::body(bytes)) {
            Ok(None) => prop_assert!(blank),
            Ok(Some(v)) => {
                as_body::<CreateDeployment>(&v, check_create_deployment)?;
                as_body::<ScaleRequest>(&v, check_scale)?;
                as_body::<PortList<PortSpec>>(&v, |l| check_ports(&l.ports, "ports"))?;
                as_body::<CreateVolume>(&v, check_create_volume)?;
                as_body::<AttachRequest>(&v, |_| Ok(()))?;
            }
            Err(r) => northflank_4xx(&r)?,
        }
        Ok(())
    });
}

/// Query strings made of the route's own keys (some repeated), odd values, and odd encodings.
fn query_string(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let value = prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "100",
            "101",
            "5000",
            "5001",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "o0",
            "o18446744073709551615",
            "o-1",
            "range",
            "tail",
            "forward",
            "backward",
            "2026-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "(",
            "a{99999}",
            "[",
            "%",
            "%zz",
            "%ff",
            "%00",
            "+",
            "=",
            "&",
        ])
        .prop_map(String::from),
        odd_string().prop_map(|s| s.chars().take(200).collect()),
        odd_string().prop_map(|s| s.bytes().take(100).map(|b| format!("%{b:02X}")).collect()),
    ];
    let pair = (prop::sample::select(keys), value).prop_map(|(k, v)| format!("{k}={v}"));
    prop::collection::vec(prop_oneof![9 => pair, 1 => odd_string()], 0..6).prop_map(|p| p.join("&"))
}

const LOG_KEYS: &[&str] = &[
    "queryType",
    "startTime",
    "endTime",
    "lineLimit",
    "containerName",
    "textIncludes",
    "textNotIncludes",
    "regexIncludes",
    "regexNotIncludes",
    "direction",
    "duration",
    "type",
];

#[test]
fn logs_query_parameters() {
    let lines: Vec<(u64, String)> = (0..300).map(|i| (i * 997, format!("line {i} ünï"))).collect();
    fuzz(
        "logs query parameters",
        || query_string(LOG_KEYS),
        |q| {
            match block_on(fuzz_support::logs_query(&q, &lines)) {
                None => {}
                Some(Ok((range, backlog))) => {
                    prop_assert!(range <= lines.len() && backlog <= lines.len());
                }
                Some(Err(r)) => northflank_4xx(&r)?,
            }
            Ok(())
        },
    );
}

#[test]
fn list_pagination_parameters() {
    fuzz(
        "list pagination parameters",
        || (query_string(&["per_page", "page", "cursor"]), 0usize..300),
        |(q, items)| {
            match block_on(fuzz_support::page_query(&q, items)) {
                None => {}
                Some(Ok((page, pagination))) => {
                    prop_assert!(page.len() <= 100);
                    prop_assert_eq!(pagination.count, page.len());
                    prop_assert_eq!(pagination.cursor.is_some(), pagination.has_next_page);
                }
                Some(Err(r)) => northflank_4xx(&r)?,
            }
            Ok(())
        },
    );
}

#[test]
fn log_tail_init_messages() {
    let init = json!({ "type": "init", "data": { "auth": { "type": "apiToken", "apiToken": "test-token" } } });
    fuzz(
        "log tail init messages",
        move || {
            prop_oneof![
                json_edits().prop_map(move |e| mutate_json(init.clone(), &e).to_string().into_bytes()),
                byte_edits().prop_map(|e| mutate_bytes(
                    br#"{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"t"}}}"#.to_vec(),
                    &e
                )),
                json_token_soup(&["type", "init", "data", "auth", "apiToken"]).prop_map(String::into_bytes),
            ]
        },
        |bytes| {
            // As the tail reads its first message, text or binary.
            let from_bytes = serde_json::from_slice::<TailClientFrame>(&bytes).ok();
            if let Ok(text) = std::str::from_utf8(&bytes) {
                prop_assert_eq!(serde_json::from_str::<TailClientFrame>(text).ok(), from_bytes);
            }
            Ok(())
        },
    );
}

fn id_or_name() -> impl Strategy<Value = IdOrName> {
    prop_oneof![
        any::<u32>().prop_map(IdOrName::Id),
        prop::sample::select(vec![
            "root",
            "sandbox",
            "nobody",
            "users",
            "0",
            "65535",
            "65536",
            "4294967296",
            "-1"
        ])
        .prop_map(|s| IdOrName::Name(s.into())),
        odd_string().prop_map(IdOrName::Name),
    ]
}

#[test]
fn exec_contexts() {
    let context = || {
        (
            prop::option::of(prop_oneof![
                odd_string().prop_map(Command::Line),
                "[a-z '\"\\\\$]{0,20}".prop_map(Command::Line),
                prop::collection::vec(odd_string(), 0..4).prop_map(Command::Argv),
            ]),
            prop::option::of(prop_oneof![
                Just("none".to_string()),
                Just("bash -c".to_string()),
                "[a-z '\"-]{0,10}",
                odd_string()
            ]),
            prop::option::of(id_or_name()),
            prop::option::of(id_or_name()),
            odd_string(),
            any::<bool>(),
        )
    };
    fuzz(
        "exec contexts",
        context,
        |(command, shell, user, group, payload, base64)| {
            let ctx = ExecContext {
                command,
                shell,
                ..Default::default()
            };
            if let Ok(argv) = fuzz_support::exec_argv(&ctx) {
                prop_assert!(argv.first().is_some_and(|a| !a.is_empty()));
                prop_assert!(argv.iter().all(|a| !a.contains('\0')));
            }
            if let Ok(fuzz_support::Identity { uid, gid, home, .. }) =
                fuzz_support::exec_identity(user.as_ref(), group.as_ref())
            {
                prop_assert!(uid < 65536 && gid < 65536);
                prop_assert!(home.starts_with('/'));
            }
            let _ = fuzz_support::exec_payload(&payload, base64);
            let name = fuzz_support::host_name(&payload);
            prop_assert!(payload.contains(name));
            Ok(())
        },
    );
}

/// Found by fuzzing: `duration` in seconds overflowed when turned into milliseconds (a panic,
/// so a 500 on a range query and a dropped tail).
#[test]
fn regression_logs_duration_overflow() {
    for q in ["duration=18446744073709551615", "duration=18446744073709552"] {
        let got = block_on(fuzz_support::logs_query(q, &[(5, "x".into())])).expect("a query");
        assert_eq!(got.ok(), Some((1, 1)), "{q}");
    }
}

/// Found by fuzzing: a huge `page` overflowed into the offset (a panic, so a 500 on lists).
#[test]
fn regression_page_number_overflow() {
    for q in ["page=18446744073709551615", "page=18446744073709551615&per_page=100"] {
        let (page, pagination) = block_on(fuzz_support::page_query(q, 3))
            .expect("a query")
            .expect("a page");
        assert!(page.is_empty() && !pagination.has_next_page, "{q}");
    }
}

/// Found by fuzzing: axum refuses a repeated query key (and a bad path or upgrade) in plain text;
/// the routes now answer such refusals in Northflank's shape.
#[test]
fn regression_repeated_query_keys_are_northflank_shaped() {
    let (status, body) = block_on(fuzz_support::page_query("per_page=1&per_page=2", 3))
        .expect("a query")
        .expect_err("a refusal");
    assert_eq!(status, 400);
    let body = body.expect("JSON");
    assert_eq!(body["error"]["status"], 400, "{body}");
    let refusal = block_on(fuzz_support::logs_query("lineLimit=1&lineLimit=2", &[]))
        .expect("a query")
        .expect_err("a refusal");
    assert_eq!(refusal.0, 400);
    assert!(refusal
        .1
        .is_ok_and(|b| b["error"]["message"].as_str().is_some_and(|m| m.contains("duplicate"))));
}
