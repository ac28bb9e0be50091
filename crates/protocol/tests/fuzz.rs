//! Fuzz targets for every wire type read from outside: exec frames both ways, log tail frames,
//! detached-process attach frames,
//! and the REST bodies (create service, scale, ports, volume create, attach) with their checks.
//!
//! Properties: decoding never panics; a decoded value serialises and decodes to itself; a check
//! either passes or names a field with a message. `FUZZ_SECONDS=N` runs each target for N
//! seconds (see tests/support/fuzz_runner.rs).

#[path = "../../../tests/support/fuzz_runner.rs"]
mod fuzz_runner;

use flankbox_protocol::detached::{coalesce, AttachDecoder, AttachEvent, Stream};
use flankbox_protocol::exec::{
    ClientFrame, Command, Completion, CompletionStatus, ErrorData, ExecContext, IdOrName, InitAuth, InitContext,
    InitReply, InitRequest, ServerFrame, TtySize,
};
use flankbox_protocol::logs::{LogLine, TailClientFrame, TailInit, TailServerFrame};
use flankbox_protocol::service::{CreateDeployment, PortList, PortSpec, ScaleRequest};
use flankbox_protocol::validate::{check_create_deployment, check_create_volume, check_ports, check_scale};
use flankbox_protocol::volume::{AttachRequest, CreateVolume};
use flankbox_protocol::ValidationError;
use fuzz_runner::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// The wire's words, for [`json_token_soup`].
const WORDS: &[&str] = &[
    "type",
    "data",
    "init",
    "payload",
    "stdInEnd",
    "resize",
    "auth",
    "apiToken",
    "context",
    "command",
    "shell",
    "user",
    "group",
    "encoding",
    "base64",
    "tty",
    "ttyColumns",
    "ttyRows",
    "instanceName",
    "containerName",
    "stdOut",
    "stdErr",
    "completion",
    "error",
    "exitCode",
    "status",
    "Success",
    "Failure",
    "message",
    "successful",
    "log-lines",
    "containerId",
    "log",
    "ts",
];

/// Decoding `bytes` as `T` never panics, and what decodes round-trips.
fn decode_round_trips<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => round_trips(&v),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(())
        }
    }
}

fn round_trips<T>(v: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(v).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
    let back: T = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("re-decode {text}: {e}")))?;
    if back != *v {
        // serde_json (without its float_roundtrip feature) may read a float one ULP off; opaque
        // JSON fields (`domains`, `security`, `internal`) carry such floats. Anything else differs.
        let (a, b) = (
            serde_json::to_value(&back).unwrap_or_default(),
            serde_json::to_value(v).unwrap_or_default(),
        );
        prop_assert!(same_json(&a, &b), "{:?} came back as {:?} through {}", v, back, text);
    }
    Ok(())
}

/// Equal, with floats equal to within a few ULPs.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn id_or_name() -> impl Strategy<Value = IdOrName> {
    prop_oneof![
        any::<u32>().prop_map(IdOrName::Id),
        odd_string().prop_map(IdOrName::Name)
    ]
}

fn exec_context() -> impl Strategy<Value = ExecContext> {
    (
        (
            prop::option::of(odd_string()),
            prop::option::of(odd_string()),
            prop::option::of(prop_oneof![
                odd_string().prop_map(Command::Line),
                prop::collection::vec(odd_string(), 0..4).prop_map(Command::Argv),
            ]),
            prop::option::of(prop_oneof![
                Just("none".to_string()),
                Just("bash -c".to_string()),
                odd_string()
            ]),
        ),
        (
            prop::option::of(id_or_name()),
            prop::option::of(id_or_name()),
            prop::option::of(prop_oneof![Just("base64".to_string()), odd_string()]),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<u16>()),
            prop::option::of(any::<u16>()),
        ),
    )
        .prop_map(
            |((instance_name, container_name, command, shell), (user, group, encoding, tty, tty_columns, tty_rows))| {
                ExecContext {
                    instance_name,
                    container_name,
                    command,
                    shell,
                    user,
                    group,
                    encoding,
                    tty,
                    tty_columns,
                    tty_rows,
                }
            },
        )
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (odd_string(), odd_string(), prop::option::of(exec_context())).prop_map(|(kind, token, context)| {
            ClientFrame::Init(Box::new(InitRequest {
                auth: InitAuth { kind, api_token: token },
                context,
            }))
        }),
        odd_string().prop_map(ClientFrame::Payload),
        Just(ClientFrame::StdInEnd),
        (any::<u16>(), any::<u16>())
            .prop_map(|(tty_rows, tty_columns)| ClientFrame::Resize(TtySize { tty_rows, tty_columns })),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let status = prop::sample::select(vec![
        CompletionStatus::Success,
        CompletionStatus::Failure,
        CompletionStatus::Unknown,
    ]);
    prop_oneof![
        (
            odd_string(),
            prop::option::of((odd_string(), odd_string())),
            prop::option::of(odd_string())
        )
            .prop_map(|(auth, context, message)| ServerFrame::Init(InitReply {
                auth,
                context: context.map(|(instance_name, container_name)| InitContext {
                    instance_name,
                    container_name
                }),
                message,
            })),
        odd_string().prop_map(ServerFrame::StdOut),
        odd_string().prop_map(ServerFrame::StdErr),
        (any::<i32>(), status, prop::option::of(odd_string())).prop_map(|(exit_code, status, message)| {
            ServerFrame::Completion(Completion {
                exit_code,
                status,
                message,
            })
        }),
        odd_string().prop_map(|message| ServerFrame::Error(ErrorData { message })),
    ]
}

fn tail_server_frame() -> impl Strategy<Value = TailServerFrame> {
    prop_oneof![
        (odd_string(), prop::option::of(odd_string())).prop_map(|(auth, message)| TailServerFrame::Init(InitReply {
            auth,
            context: None,
            message
        })),
        prop::collection::vec((odd_string(), odd_string(), odd_string()), 0..4).prop_map(|lines| {
            TailServerFrame::LogLines(
                lines
                    .into_iter()
                    .map(|(container_id, log, ts)| LogLine { container_id, log, ts })
                    .collect(),
            )
        }),
        odd_string().prop_map(|message| TailServerFrame::Error(ErrorData { message })),
    ]
}

/// Arbitrary bytes, and JSON made of the wire's own words.
fn raw_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_token_soup(WORDS).prop_map(String::into_bytes),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        (
            prop::sample::select(vec![
                "init",
                "payload",
                "stdInEnd",
                "resize",
                "stdOut",
                "stdErr",
                "completion",
                "error",
                "log-lines"
            ]),
            any_json()
        )
            .prop_map(|(t, data)| json!({ "type": t, "data": data }).to_string().into_bytes()),
    ]
}

/// A valid frame, serialised, then mutated byte-wise.
fn mutated<T: Serialize + std::fmt::Debug>(frame: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<u8>> {
    (frame, byte_edits()).prop_map(|(f, edits)| mutate_bytes(serde_json::to_vec(&f).unwrap_or_default(), &edits))
}

#[test]
fn exec_client_frames_from_any_bytes() {
    fuzz("exec client frames, raw", raw_input, |b| {
        decode_round_trips::<ClientFrame>(&b)
    });
}

#[test]
fn exec_client_frames_round_trip_and_survive_mutation() {
    fuzz(
        "exec client frames, structured",
        || (client_frame(), byte_edits()),
        |(f, edits)| {
            round_trips(&f)?;
            let bytes = mutate_bytes(serde_json::to_vec(&f).unwrap_or_default(), &edits);
            decode_round_trips::<ClientFrame>(&bytes)
        },
    );
}

#[test]
fn exec_server_frames_from_any_bytes() {
    fuzz("exec server frames, raw", raw_input, |b| {
        decode_round_trips::<ServerFrame>(&b)
    });
}

#[test]
fn exec_server_frames_round_trip_and_survive_mutation() {
    fuzz(
        "exec server frames, structured",
        || (server_frame(), byte_edits()),
        |(f, edits)| {
            round_trips(&f)?;
            let bytes = mutate_bytes(serde_json::to_vec(&f).unwrap_or_default(), &edits);
            decode_round_trips::<ServerFrame>(&bytes)
        },
    );
}

fn tail_init() -> impl Strategy<Value = TailClientFrame> {
    (odd_string(), odd_string()).prop_map(|(kind, api_token)| {
        TailClientFrame::Init(TailInit {
            auth: InitAuth { kind, api_token },
        })
    })
}

#[test]
fn log_tail_frames() {
    fuzz(
        "log tail frames",
        || {
            let input = prop_oneof![raw_input(), mutated(tail_init()), mutated(tail_server_frame())];
            (tail_init(), tail_server_frame(), input)
        },
        |(i, s, bytes): (TailClientFrame, TailServerFrame, Vec<u8>)| {
            round_trips(&i)?;
            round_trips(&s)?;
            decode_round_trips::<TailClientFrame>(&bytes)?;
            decode_round_trips::<TailServerFrame>(&bytes)
        },
    );
}

/// Parses `body` as `T` and checks it; a refusal names a field and says why.
fn body_parses_and_checks<T>(
    body: &Value,
    check: impl Fn(&T) -> Result<(), ValidationError>,
) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // From a Value (as the host does) and from text (as the client does) alike.
    let text = body.to_string();
    decode_round_trips::<T>(text.as_bytes())?;
    let Ok(parsed) = serde_json::from_value::<T>(body.clone()) else {
        return Ok(());
    };
    let again: T = serde_json::from_value(serde_json::to_value(&parsed).unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("re-decode: {e}")))?;
    if again != parsed {
        let (a, b) = (
            serde_json::to_value(&again).unwrap_or_default(),
            serde_json::to_value(&parsed).unwrap_or_default(),
        );
        prop_assert!(same_json(&a, &b), "{:?} came back as {:?}", parsed, again);
    }
    if let Err(e) = check(&parsed) {
        prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{:?}", e);
        prop_assert!(e.to_string().contains(&e.field));
    }
    Ok(())
}

fn plan() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec!["nf-compute-20", "nf-compute-200", "nf-compute-400-16", "nf-gpu-h100-80-1g"]).prop_map(Value::from),
        1 => any_json(),
    ]
}

/// A create-service body, mostly valid, before mutation.
fn create_body() -> impl Strategy<Value = Value> {
    (
        ("[a-z][a-z0-9-]{2,20}", plan(), 0u32..3, any::<u64>(), 0u64..3000),
        (
            prop::sample::select(vec!["customCommand", "default", "customEntrypoint", "customEntrypointCustomCommand"]),
            odd_string(),
            prop::collection::vec((odd_string(), odd_string()), 0..3),
            prop::collection::vec(any::<bool>(), 10),
            odd_string(),
        ),
    )
        .prop_map(|((name, plan, instances, size, shm), (config_type, command, env, keep, gpu))| {
            let env: serde_json::Map<String, Value> = env.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            object(
                vec![
                    ("name", Value::from(name)),
                    ("description", Value::from("a sandbox")),
                    ("tags", json!(["a", "b"])),
                    ("billing", json!({ "deploymentPlan": plan, "gpu": { "enabled": true, "configuration": { "gpuType": gpu, "gpuCount": 1 } } })),
                    (
                        "deployment",
                        json!({
                            "instances": instances,
                            "docker": { "configType": config_type, "customCommand": command, "customEntrypoint": "/bin/sh" },
                            "external": { "imagePath": "ubuntu:22.04" },
                            "storage": { "ephemeralStorage": { "storageSize": size }, "shmSize": shm },
                            "gracePeriodSeconds": 30,
                        }),
                    ),
                    ("ports", json!([{ "name": "web", "internalPort": 8080, "protocol": "HTTP", "public": true }])),
                    ("runtimeEnvironment", Value::Object(env)),
                    ("createOptions", json!({ "volumesToAttach": ["data-1"] })),
                ],
                &keep,
            )
        })
}

fn ports_body() -> impl Strategy<Value = Value> {
    let port = (
        "[a-z0-9-]{0,16}",
        prop_oneof![0u32..70_000, any::<u32>()],
        prop::sample::select(vec!["HTTP", "HTTP/2", "HTTP2", "TCP", "UDP", "SCTP", ""]),
        any::<bool>(),
    )
        .prop_map(|(name, internal, protocol, public)| {
            json!({ "name": name, "internalPort": internal, "protocol": protocol, "public": public, "domains": [], "security": {} })
        });
    prop::collection::vec(port, 0..5).prop_map(|ports| json!({ "ports": ports }))
}

fn scale_body() -> impl Strategy<Value = Value> {
    (
        any::<u32>(),
        plan(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(any::<bool>(), 4),
    )
        .prop_map(|(instances, plan, size, grace, keep)| {
            object(
                vec![
                    ("instances", Value::from(instances % 4)),
                    ("deploymentPlan", plan),
                    ("storage", json!({ "ephemeralStorage": { "storageSize": size } })),
                    ("gracePeriodSeconds", Value::from(grace % 700)),
                ],
                &keep,
            )
        })
}

fn volume_body() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{2,20}",
        prop::collection::vec(prop_oneof!["/[a-z]{1,8}(/[a-z.]{1,4}){0,2}", odd_string()], 0..3),
        prop::sample::select(vec!["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]),
        prop_oneof![1024u64..20_000, any::<u64>()],
        prop::option::of(odd_string()),
    )
        .prop_map(|(name, paths, mode, size, sub)| {
            let mounts: Vec<Value> = paths
                .into_iter()
                .map(|p| json!({ "containerMountPath": p, "volumeMountPath": sub }))
                .collect();
            json!({
                "name": name,
                "mounts": mounts,
                "spec": { "accessMode": mode, "storageClassName": "ssd", "storageSize": size },
                "attachedObjects": [{ "id": "sandbox-1", "type": "service" }],
                "tags": ["t"]
            })
        })
}

fn attach_body() -> impl Strategy<Value = Value> {
    (odd_string(), odd_string(), any::<bool>()).prop_map(
        |(id, kind, legacy)| json!({ if legacy { "owningObject" } else { "nfObject" }: { "id": id, "type": kind } }),
    )
}

/// A body from `valid`, mutated; or any JSON at all.
fn body(valid: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (valid, json_edits()).prop_map(|(v, edits)| mutate_json(v, &edits)),
        1 => any_json(),
    ]
}

#[test]
fn create_service_bodies() {
    fuzz(
        "REST create service",
        || body(create_body()),
        |b| {
            body_parses_and_checks::<CreateDeployment>(&b, check_create_deployment)?;
            if let Ok(req) = serde_json::from_value::<CreateDeployment>(b) {
                let _ = flankbox_protocol::validate::requested_gpu(&req);
            }
            Ok(())
        },
    );
}

#[test]
fn scale_bodies() {
    fuzz(
        "REST scale",
        || body(scale_body()),
        |b| body_parses_and_checks::<ScaleRequest>(&b, check_scale),
    );
}

#[test]
fn ports_bodies() {
    fuzz(
        "REST ports",
        || body(ports_body()),
        |b| body_parses_and_checks::<PortList<PortSpec>>(&b, |l| check_ports(&l.ports, "ports")),
    );
}

#[test]
fn volume_create_bodies() {
    fuzz(
        "REST volume create",
        || body(volume_body()),
        |b| body_parses_and_checks::<CreateVolume>(&b, check_create_volume),
    );
}

#[test]
fn attach_bodies() {
    fuzz(
        "REST attach",
        || body(attach_body()),
        |b| body_parses_and_checks::<AttachRequest>(&b, |_| Ok(())),
    );
}

#[test]
fn names_and_ids() {
    fuzz("names and ids", odd_string, |s| {
        let _ = flankbox_protocol::names::check_resource_name(&s);
        let _ = flankbox_protocol::names::check_port_name(&s);
        let id = flankbox_protocol::names::derive_id(&s);
        let _ = flankbox_protocol::names::is_plausible_id(&id);
        let _ = flankbox_protocol::plans::find_plan(&s);
        let _ = flankbox_protocol::plans::parse_gpu_plan(&s);
        let _ = flankbox_protocol::validate::check_mount_path(&s, "f");
        Ok(())
    });
}

/// Frames a detached-process supervisor could write, as (frame bytes, the event they mean).
fn attach_frame() -> impl Strategy<Value = (Vec<u8>, Option<AttachEvent>)> {
    let stream = prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr)];
    prop_oneof![
        (stream.clone(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(s, body)| {
            let mut frame = format!("{} {}\n", if s == Stream::Stdout { "O" } else { "E" }, body.len()).into_bytes();
            frame.extend(&body);
            let event = (!body.is_empty()).then_some(AttachEvent::Output(s, body));
            (frame, event)
        }),
        (stream, any::<u32>()).prop_map(|(s, at)| {
            let name = if s == Stream::Stdout { "out" } else { "err" };
            let event = AttachEvent::Gone {
                stream: s,
                kept_from: u64::from(at),
            };
            (format!("G {name} {at}\n").into_bytes(), Some(event))
        }),
        any::<u8>().prop_map(|c| (
            format!("X {c}\n").into_bytes(),
            Some(AttachEvent::Exit(Some(i32::from(c))))
        )),
    ]
}

#[test]
fn detached_attach_frames_decode_in_any_pieces_and_odd_bytes_never_panic() {
    fuzz(
        "detached attach frames",
        || (prop::collection::vec(attach_frame(), 0..12), 1usize..16, raw_input()),
        |(frames, piece, junk)| {
            let bytes: Vec<u8> = frames.iter().flat_map(|(b, _)| b.clone()).collect();
            let want = coalesce(frames.into_iter().filter_map(|(_, e)| e));
            let mut decoder = AttachDecoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(piece) {
                got.extend(decoder.push(chunk).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            prop_assert_eq!(coalesce(got), want);
            // Anything at all: events or an error, never a panic.
            let _ = AttachDecoder::new().push(&junk);
            Ok(())
        },
    );
}
