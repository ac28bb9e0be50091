//! The wasm client against the real local host, run by wasm-bindgen-test in Node and in
//! headless Chromium (the test command runs this file in both). The host, its token and the
//! helper server come from the environment at build time.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use flankbox::{Northflank, Sandbox, SandboxProcess};
use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

const URL: &str = match option_env!("FLANKBOX_TEST_URL") {
    Some(u) => u,
    None => "http://127.0.0.1:7444",
};
const TOKEN: &str = match option_env!("FLANKBOX_TEST_TOKEN") {
    Some(t) => t,
    None => "client-test-token",
};
const HELPER: &str = match option_env!("FLANKBOX_TEST_HELPER") {
    Some(h) => h,
    None => "http://127.0.0.1:7445",
};

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

/// A project per test run, so Node and Chromium runs never meet.
fn project() -> String {
    format!("wasm-{}", (js_sys::Math::random() * 1e9) as u64)
}

fn client_with(token: &str, base: &str, project: &str) -> Northflank {
    Northflank::new(obj(&[
        ("token", s(token)),
        ("projectId", s(project)),
        ("baseUrl", s(base)),
    ]))
    .unwrap()
}

fn client() -> Northflank {
    client_with(TOKEN, URL, &project())
}

async fn resolve(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

async fn create(nf: &Northflank, opts: JsValue) -> Sandbox {
    let made = resolve(Sandbox::create(nf, opts)).await.expect("Sandbox.create");
    Sandbox::for_service(nf, get(&made, "id").as_string().unwrap(), JsValue::UNDEFINED)
}

async fn exec(sb: &Sandbox, cmd: &str, opts: JsValue) -> JsValue {
    resolve(sb.exec(s(cmd), opts)).await.expect("exec")
}

fn code(err: &JsValue) -> String {
    get(err, "code").as_string().unwrap_or_default()
}

/// An abort's error, as a caller sees it.
fn assert_aborted(err: &JsValue) {
    assert_eq!(
        (code(err), text(&get(err, "name"))),
        ("ABORTED".to_string(), "AbortError".to_string())
    );
}

fn text(v: &JsValue) -> String {
    v.as_string().unwrap_or_default()
}

fn now() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen_test]
async fn the_full_lifecycle_with_a_volume() {
    let nf = client();
    let steps = Rc::new(RefCell::new(Vec::<String>::new()));
    let on_progress = {
        let steps = steps.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| steps.borrow_mut().push(text(&get(&p, "step"))))
    };
    let volume = obj(&[("sizeMb", 1024.into()), ("mountPaths", Array::of1(&s("/data")).into())]);
    let sb = create(
        &nf,
        obj(&[
            ("volume", volume),
            ("onProgress", on_progress.as_ref().clone()),
            ("env", obj(&[("WHO", s("wasm"))])),
        ]),
    )
    .await;
    let steps = steps.borrow().clone();
    assert_eq!(steps.first().map(String::as_str), Some("creating-volume"), "{steps:?}");
    assert!(steps.contains(&"creating".into()) && steps.contains(&"starting".into()));
    assert_eq!(steps.last().map(String::as_str), Some("ready"));

    // Live output: the first line arrives while the command still runs.
    let seen = Rc::new(RefCell::new(Vec::<(f64, String)>::new()));
    let on_stdout = {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |c: JsValue| seen.borrow_mut().push((now(), text(&c))))
    };
    let result = exec(
        &sb,
        "echo first $WHO; sleep 1; echo second; echo oops >&2; exit 4",
        obj(&[("onStdout", on_stdout.as_ref().clone())]),
    )
    .await;
    let done = now();
    assert_eq!(get(&result, "exitCode").as_f64(), Some(4.0));
    assert_eq!(text(&get(&result, "status")), "Failure");
    assert_eq!(text(&get(&result, "stdout")), "first wasm\nsecond\n");
    assert_eq!(text(&get(&result, "stderr")), "oops\n");
    let seen = seen.borrow().clone();
    assert_eq!(seen[0].1, "first wasm\n");
    assert!(
        done - seen[0].0 > 500.0,
        "the first line came {} ms before the end",
        done - seen[0].0
    );

    // Stdin, then data on the volume kept across pause and resume.
    let r = exec(
        &sb,
        "cat > /data/kept && wc -c < /data/kept",
        obj(&[("stdin", s("persisted bytes"))]),
    )
    .await;
    assert_eq!(text(&get(&r, "stdout")).trim(), "15");
    resolve(sb.pause(JsValue::UNDEFINED)).await.unwrap();
    let status = resolve(sb.status(JsValue::UNDEFINED)).await.unwrap();
    assert_eq!(get(&status, "ready").as_bool(), Some(false));
    assert_eq!(get(&status, "instances").as_f64(), Some(0.0));
    let paused = resolve(sb.exec(s("true"), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(code(&paused), "EXEC_FAILED", "{paused:?}");
    resolve(sb.resume(JsValue::UNDEFINED)).await.unwrap();
    assert_eq!(
        text(&get(&exec(&sb, "cat /data/kept", JsValue::UNDEFINED).await, "stdout")),
        "persisted bytes"
    );

    // Ports.
    let url = resolve(sb.expose_port(8080, JsValue::UNDEFINED)).await.unwrap();
    assert!(
        text(&url).starts_with(&format!("http://p8080--{}--", sb.id())),
        "{url:?}"
    );
    let ports = resolve(sb.ports(JsValue::UNDEFINED)).await.unwrap();
    assert_eq!(Array::from(&ports).length(), 1);

    // Destroy, volume included, as a page does on pagehide: from a handle made without a
    // request, sent with fetch keepalive.
    let last = Sandbox::for_service(&nf, sb.id(), JsValue::UNDEFINED);
    resolve(last.destroy(obj(&[("deleteVolume", true.into()), ("keepalive", true.into())])))
        .await
        .unwrap();
    let gone = resolve(Sandbox::connect(&nf, sb.id(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(
        (code(&gone), get(&gone, "status").as_f64()),
        ("NOT_FOUND".to_string(), Some(404.0))
    );
}

#[wasm_bindgen_test]
async fn files_round_trip_byte_for_byte() {
    let nf = client();
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let mut seed = 7u32;
    let blob: Vec<u8> = (0..5 * 1024 * 1024)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        })
        .collect();
    let data = Uint8Array::from(&blob[..]);
    resolve(sb.write_file("/workspace/deep/blob.bin".into(), data.into(), JsValue::UNDEFINED))
        .await
        .unwrap();
    let back = resolve(sb.read_file("/workspace/deep/blob.bin".into(), JsValue::UNDEFINED))
        .await
        .unwrap();
    assert_eq!(back.dyn_into::<Uint8Array>().unwrap().to_vec(), blob);
    let sum = exec(
        &sb,
        "sha256sum /workspace/deep/blob.bin | cut -c1-16",
        JsValue::UNDEFINED,
    )
    .await;
    assert_eq!(text(&get(&sum, "stdout")).len(), 17);

    let files = obj(&[
        ("a.txt", s("alpha\n")),
        ("sub/b.bin", Uint8Array::from(&[0u8, 255, 7][..]).into()),
    ]);
    resolve(sb.upload_dir("/workspace/tree".into(), files, JsValue::UNDEFINED))
        .await
        .unwrap();
    let listing = exec(
        &sb,
        "cd /workspace/tree && find . -type f | sort && cat a.txt",
        JsValue::UNDEFINED,
    )
    .await;
    assert_eq!(text(&get(&listing, "stdout")), "./a.txt\n./sub/b.bin\nalpha\n");
    let entries = Array::from(
        &resolve(sb.download_dir("/workspace/tree".into(), JsValue::UNDEFINED))
            .await
            .unwrap(),
    );
    let mut got: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|e| {
            (
                text(&get(&e, "path")),
                get(&e, "data").dyn_into::<Uint8Array>().unwrap().to_vec(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a.txt".to_string(), b"alpha\n".to_vec()),
            ("sub/b.bin".to_string(), vec![0, 255, 7])
        ]
    );
    let missing = resolve(sb.read_file("/nope".into(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "EXEC_FAILED");
    assert!(text(&get(&missing, "message")).contains("No such file"));
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}

async fn read_until(reader: &web_sys::ReadableStreamDefaultReader, out: &mut String, needle: &str) {
    while !out.contains(needle) {
        let chunk = resolve(reader.read()).await.unwrap();
        assert_eq!(
            get(&chunk, "done").as_bool(),
            Some(false),
            "the stream ended before {needle:?}: {out:?}"
        );
        out.push_str(&String::from_utf8_lossy(
            &get(&chunk, "value").dyn_into::<Uint8Array>().unwrap().to_vec(),
        ));
    }
}

#[wasm_bindgen_test]
async fn spawn_with_a_tty_resizes_and_takes_input() {
    let nf = client();
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let opts = obj(&[("tty", true.into()), ("cols", 100.into()), ("rows", 30.into())]);
    let proc = resolve(sb.spawn(s("stty size; read line; stty size; echo \"got $line\""), opts))
        .await
        .unwrap()
        .into_process();
    let reader: web_sys::ReadableStreamDefaultReader = proc.stdout().get_reader().unchecked_into();
    let mut out = String::new();
    read_until(&reader, &mut out, "30 100").await;
    proc.resize(120, 40).unwrap();
    resolve(proc.write(s("hello\r"))).await.unwrap();
    read_until(&reader, &mut out, "got hello").await;
    assert!(out.contains("40 120"), "{out:?}");
    let exit = resolve(proc.wait()).await.unwrap();
    assert_eq!(get(&exit, "exitCode").as_f64(), Some(0.0));
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}

#[wasm_bindgen_test]
async fn spawn_streams_stdout_and_stderr_apart() {
    let nf = client();
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let script = "printf 'out\\n'; printf 'err\\tone\\n' >&2; printf 'caf\\303\\251\\n' >&2; exit 2";
    let proc = resolve(sb.spawn(s(script), JsValue::UNDEFINED))
        .await
        .unwrap()
        .into_process();
    let (mut out, mut err) = (String::new(), String::new());
    read_to_end(&proc.stdout().get_reader().unchecked_into(), &mut out).await;
    read_to_end(&proc.stderr().get_reader().unchecked_into(), &mut err).await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\tone\ncafé\n"));
    let exit = resolve(proc.wait()).await.unwrap();
    assert_eq!(get(&exit, "exitCode").as_f64(), Some(2.0));
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}

async fn read_to_end(reader: &web_sys::ReadableStreamDefaultReader, out: &mut String) {
    loop {
        let chunk = resolve(reader.read()).await.unwrap();
        if get(&chunk, "done").as_bool() == Some(true) {
            return;
        }
        out.push_str(&String::from_utf8_lossy(
            &get(&chunk, "value").dyn_into::<Uint8Array>().unwrap().to_vec(),
        ));
    }
}

trait IntoProcess {
    fn into_process(self) -> SandboxProcess;
}

impl IntoProcess for JsValue {
    fn into_process(self) -> SandboxProcess {
        use wasm_bindgen::convert::TryFromJsValue;
        SandboxProcess::try_from_js_value(self).unwrap_or_else(|_| panic!("spawn resolves to a SandboxProcess"))
    }
}

#[wasm_bindgen_test]
async fn timeouts_and_aborts_end_the_command() {
    let nf = client();
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let started = now();
    let err = resolve(sb.exec(s("sleep 30"), obj(&[("timeoutMs", 300.into())])))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TIMEOUT");
    assert_eq!(text(&get(&err, "name")), "TimeoutError");
    assert!(now() - started < 5000.0);

    let controller = web_sys::AbortController::new().unwrap();
    let on_stdout = {
        let controller = controller.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| controller.abort())
    };
    let started = now();
    let err = resolve(sb.exec(
        s("echo started; exec sleep 77"),
        obj(&[
            ("signal", controller.signal().into()),
            ("onStdout", on_stdout.as_ref().clone()),
        ]),
    ))
    .await
    .unwrap_err();
    assert_aborted(&err);
    assert!(now() - started < 5000.0);
    // Aborting closed the session, and the host killed the command.
    let mut gone = false;
    for _ in 0..50 {
        let ps = exec(&sb, "ps -eo args", JsValue::UNDEFINED).await;
        if !text(&get(&ps, "stdout")).contains("sleep 77") {
            gone = true;
            break;
        }
        sleep_ms(100).await;
    }
    assert!(gone, "the aborted command still runs");
    // An already-aborted signal fails at once.
    let err = resolve(sb.exec(s("true"), obj(&[("signal", controller.signal().into())])))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ABORTED");
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &js_sys::Function, ms: i32) -> JsValue;
}

async fn sleep_ms(ms: i32) {
    resolve(Promise::new(&mut |r, _| {
        set_timeout(&r, ms);
    }))
    .await
    .unwrap();
}

#[wasm_bindgen_test]
async fn errors_carry_name_code_status_id_and_details() {
    let nf = client();
    let bad = resolve(Sandbox::create(&nf, obj(&[("plan", s("nf-compute-3"))])))
        .await
        .unwrap_err();
    assert_eq!(
        (code(&bad), get(&bad, "status").as_f64()),
        ("BAD_REQUEST".to_string(), Some(400.0))
    );
    assert_eq!(text(&get(&bad, "name")), "NorthflankApiError");
    assert!(text(&get(&bad, "message")).contains("nf-compute-3"));
    assert!(text(&get(&bad, "id")).starts_with("err-"));
    assert_eq!(text(&get(&get(&bad, "details"), "field")), "billing.deploymentPlan");
    assert!(bad.is_instance_of::<js_sys::Error>());

    let gpu = resolve(Sandbox::create(&nf, obj(&[("gpu", obj(&[("type", s("a100-80"))]))])))
        .await
        .unwrap_err();
    assert_eq!(code(&gpu), "BAD_REQUEST");
    assert!(text(&get(&gpu, "message")).contains("a100-80"), "{gpu:?}");

    let intruder = client_with("wrong-token", URL, "whatever");
    let denied = resolve(Sandbox::create(&intruder, JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(
        (code(&denied), get(&denied, "status").as_f64()),
        ("UNAUTHENTICATED".to_string(), Some(401.0))
    );

    // Exec with a wrong token is refused at init, with the same code.
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let sneaky = Sandbox::for_service(
        &client_with("wrong-token", URL, &nf.project_id()),
        sb.id(),
        JsValue::UNDEFINED,
    );
    let refused = resolve(sneaky.exec(s("touch /workspace/pwned"), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "UNAUTHENTICATED");
    assert_eq!(
        text(&get(&exec(&sb, "ls /workspace", JsValue::UNDEFINED).await, "stdout")),
        ""
    );

    // Nothing listens: a network error, after the retries a read gets.
    let nobody = client_with(TOKEN, "http://127.0.0.1:9", "p");
    let offline = resolve(Sandbox::connect(&nobody, "x".into(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code(&offline), "NETWORK");
    // An exec socket that closes before it opens.
    let unreachable = Sandbox::for_service(&nobody, "x".into(), JsValue::UNDEFINED);
    let refused = resolve(unreachable.exec(s("true"), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "NETWORK", "{refused:?}");
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_create_aborted_while_it_starts_deletes_its_service() {
    let nf = client();
    let controller = web_sys::AbortController::new().unwrap();
    let id = Rc::new(RefCell::new(String::new()));
    let on_progress = {
        let (controller, id) = (controller.clone(), id.clone());
        Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
            if text(&get(&p, "step")) == "starting" {
                *id.borrow_mut() = text(&get(&p, "id"));
                // From a timer, so that the abort comes while the create waits (its first
                // readiness poll is 2 ms away), not between its steps.
                let controller = controller.clone();
                let abort = Closure::once_into_js(move || controller.abort());
                set_timeout(abort.unchecked_ref(), 0);
            }
        })
    };
    let err = resolve(Sandbox::create(
        &nf,
        obj(&[
            ("signal", controller.signal().into()),
            ("onProgress", on_progress.as_ref().clone()),
        ]),
    ))
    .await
    .unwrap_err();
    assert_aborted(&err);
    let id = id.borrow().clone();
    assert!(!id.is_empty(), "the create reported no id before its abort");
    // The create deleted its service before it gave up.
    let gone = resolve(Sandbox::connect(&nf, id, JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "NOT_FOUND", "{gone:?}");
}

#[wasm_bindgen_test]
async fn a_dropped_websocket_is_a_lost_stream_not_an_exit() {
    let nf = client_with(TOKEN, HELPER, "p");
    let sb = Sandbox::for_service(&nf, "dropper".into(), JsValue::UNDEFINED);
    let seen = Rc::new(RefCell::new(String::new()));
    let on_stdout = {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |c: JsValue| seen.borrow_mut().push_str(&text(&c)))
    };
    let err = resolve(sb.exec(s("long job"), obj(&[("onStdout", on_stdout.as_ref().clone())])))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "STREAM_LOST", "{err:?}");
    assert_eq!(
        *seen.borrow(),
        "partial output\n",
        "output before the drop still arrived"
    );
    let proc = resolve(sb.spawn(s("long job"), JsValue::UNDEFINED))
        .await
        .unwrap()
        .into_process();
    let lost = resolve(proc.wait()).await.unwrap_err();
    assert_eq!(code(&lost), "STREAM_LOST");
}

#[wasm_bindgen_test]
async fn output_past_the_limit_keeps_head_and_tail() {
    let nf = client();
    let sb = create(&nf, JsValue::UNDEFINED).await;
    let r = exec(
        &sb,
        "echo START; head -c 200000 /dev/zero | tr '\\0' x; echo; echo END",
        obj(&[("outputLimitBytes", 1000.into())]),
    )
    .await;
    let out = text(&get(&r, "stdout"));
    assert_eq!(get(&r, "truncated").as_bool(), Some(true));
    assert!(
        out.starts_with("START\n") && out.ends_with("END\n"),
        "{}",
        &out[..40.min(out.len())]
    );
    assert!(out.len() < 1100 && out.contains("bytes truncated"));
    resolve(sb.destroy(JsValue::UNDEFINED)).await.unwrap();
}
