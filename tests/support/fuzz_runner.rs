//! The fuzz targets' runner and JSON generators, shared by every crate's `fuzz*.rs` test (each
//! includes this file with `#[path]`). Stable Rust: proptest, no nightly, no libFuzzer.
//!
//! - By default a target runs `PROPTEST_CASES` cases (256 when unset), so `cargo test` stays fast.
//! - With `FUZZ_SECONDS=N` it runs batches of fresh random cases until N seconds have passed.
//!
//! Either way it prints one tally line, `fuzz <target>: <cases> cases in <s>s, <n> failures`,
//! and a failure panics with the shrunk input.
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value};

/// The long-run duration, if `FUZZ_SECONDS` asks for one.
pub fn fuzz_seconds() -> Option<u64> {
    std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.trim().parse().ok())
}

/// Runs `test` on values of the strategy `make` builds: a bounded number of cases, or for
/// `FUZZ_SECONDS`.
pub fn fuzz<S>(name: &str, make: impl FnOnce() -> S + Send, test: impl Fn(S::Value) -> Result<(), TestCaseError> + Send)
where
    S: Strategy,
    S::Value: Debug,
{
    // Nested strategies take more stack in debug builds than a test thread has.
    std::thread::scope(|scope| {
        let run = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(256 << 20)
            .spawn_scoped(scope, || fuzz_here(name, make(), test))
            .expect("start the fuzz thread");
        if let Err(panic) = run.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

fn fuzz_here<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let seconds = fuzz_seconds();
    let started = Instant::now();
    let mut cases: u64 = 0;
    loop {
        // Config::default() reads PROPTEST_CASES; the long run uses batches of fresh seeds.
        let config = Config {
            cases: if seconds.is_some() {
                256
            } else {
                Config::default().cases
            },
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let batch = u64::from(config.cases);
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, &test) {
            Ok(()) => cases += batch,
            Err(TestError::Fail(why, input)) => {
                println!(
                    "fuzz {name}: {cases}+ cases in {:.1}s, 1 failures",
                    started.elapsed().as_secs_f64()
                );
                panic!("fuzz {name} failed: {why}\nminimal failing input: {input:?}");
            }
            Err(TestError::Abort(why)) => panic!("fuzz {name} aborted: {why}"),
        }
        match seconds {
            Some(s) if started.elapsed().as_secs() < s => {}
            _ => break,
        }
    }
    println!(
        "fuzz {name}: {cases} cases in {:.1}s, 0 failures",
        started.elapsed().as_secs_f64()
    );
}

/// Strings that parsers find hard: empty, huge, unicode, control characters, numbers at the
/// edges, JSON and path punctuation.
pub fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9-]{1,12}",
        "\\PC{0,40}",
        ".{0,40}",
        "[\\x00-\\x1f\"\\\\/.%{}\\[\\]:,=&?#]{0,12}",
        prop::sample::select(vec![
            "0",
            "-1",
            "1e400",
            "18446744073709551616",
            "NaN",
            "null",
            "true",
            "..",
            "../..",
            "/",
            "%00",
            "%ff",
            "\u{feff}",
            "\u{10ffff}",
            "e\u{301}",
            "ﬀ",
            "İ",
            "🦀",
            "\u{202e}x",
            " ",
        ])
        .prop_map(String::from),
        (1usize..=70_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Numbers at and past the edges of every integer type the wire uses.
pub fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            0i128,
            1,
            -1,
            255,
            256,
            65_535,
            65_536,
            i128::from(i32::MAX),
            i128::from(u32::MAX),
            i128::from(u32::MAX) + 1,
            i128::from(i64::MAX),
            i128::from(u64::MAX),
        ])
        .prop_map(|n| { serde_json::from_str(&n.to_string()).unwrap_or(Value::Null) }),
        Just(serde_json::from_str("1e308").unwrap_or(Value::Null)),
        Just(serde_json::from_str("-0.0").unwrap_or(Value::Null)),
    ]
}

/// Any JSON value, a few levels deep.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        odd_number(),
        odd_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((odd_string(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// Replace the value at a path (chosen by the index) with another.
    Replace(usize, Value),
    /// Remove the value at a path.
    Remove(usize),
    /// Add a key to the object at a path.
    Insert(usize, String, Value),
}

/// Edits for [`mutate_json`].
pub fn json_edits() -> impl Strategy<Value = Vec<JsonEdit>> {
    let edit = prop_oneof![
        3 => (any::<usize>(), any_json()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        1 => any::<usize>().prop_map(JsonEdit::Remove),
        1 => (any::<usize>(), odd_string(), any_json()).prop_map(|(i, k, v)| JsonEdit::Insert(i, k, v)),
    ];
    prop::collection::vec(edit, 0..4)
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Calls `f` on the `n`th node of `v` (pre-order); true once it has.
fn visit_nth(v: &mut Value, n: &mut usize, f: &mut Option<impl FnOnce(&mut Value)>) -> bool {
    if *n == 0 {
        if let Some(f) = f.take() {
            f(v);
        }
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| visit_nth(c, n, f)),
        Value::Object(o) => o.values_mut().any(|c| visit_nth(c, n, f)),
        _ => false,
    }
}

fn with_nth(v: &mut Value, index: usize, f: impl FnOnce(&mut Value)) {
    let mut n = index % count(v);
    visit_nth(v, &mut n, &mut Some(f));
}

/// Applies `edits` to `v`: values replaced by odd ones, keys removed and added.
pub fn mutate_json(mut v: Value, edits: &[JsonEdit]) -> Value {
    for e in edits {
        match e {
            JsonEdit::Replace(i, new) => with_nth(&mut v, *i, |slot| *slot = new.clone()),
            JsonEdit::Remove(i) => with_nth(&mut v, *i, |slot| match slot {
                Value::Object(o) if !o.is_empty() => {
                    let key = o.keys().nth(*i % o.len()).cloned().unwrap_or_default();
                    o.remove(&key);
                }
                Value::Array(a) if !a.is_empty() => {
                    a.remove(*i % a.len());
                }
                _ => {}
            }),
            JsonEdit::Insert(i, k, new) => with_nth(&mut v, *i, |slot| {
                if let Value::Object(o) = slot {
                    o.insert(k.clone(), new.clone());
                }
            }),
        }
    }
    v
}

/// One change to a byte string.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    /// Flip bits of one byte.
    Flip(usize, u8),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Delete a run of bytes.
    Delete(usize, usize),
    /// Cut the end off.
    Truncate(usize),
    /// Copy a run of the input elsewhere.
    Splice(usize, usize, usize),
}

/// Edits for [`mutate_bytes`].
pub fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\"".to_vec(),
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"[".to_vec(),
                    b"]".to_vec(),
                    b",".to_vec(),
                    b":".to_vec(),
                    b"\\u0000".to_vec(),
                    b"\\ud800".to_vec(),
                    b"null".to_vec(),
                    b"1e999".to_vec(),
                    b"-".to_vec(),
                    "\u{10ffff}".as_bytes().to_vec(),
                    vec![0xff],
                    vec![0xc3],
                ]),
            ]
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..32).prop_map(|(a, b, n)| ByteEdit::Splice(a, b, n)),
    ];
    prop::collection::vec(edit, 1..4)
}

/// Applies `edits` to `bytes`.
pub fn mutate_bytes(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            ByteEdit::Flip(i, b) if len > 0 => bytes[i % len] ^= b,
            ByteEdit::Insert(i, b) => {
                let at = i % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            ByteEdit::Delete(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            ByteEdit::Truncate(i) => bytes.truncate(i % (len + 1)),
            ByteEdit::Splice(from, to, n) if len > 0 => {
                let from = from % len;
                let run: Vec<u8> = bytes[from..(from + n).min(len)].to_vec();
                let at = to % (len + 1);
                bytes.splice(at..at, run);
            }
            _ => {}
        }
    }
    bytes
}

/// Strings made of JSON tokens and the wire's own words, so that random text reaches past the
/// first byte of a parser.
pub fn json_token_soup(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(words).prop_map(|w| format!("\"{w}\"")),
        4 => prop::sample::select(vec!["{", "}", "[", "]", ":", ",", "\"", "null", "true", "0", "-1", "1.5", "65536", "\"\""])
            .prop_map(String::from),
        1 => odd_string().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        1 => odd_number().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// An object of `fields` (key, value) with some keys left out.
pub fn object(fields: Vec<(&'static str, Value)>, keep: &[bool]) -> Value {
    let mut m = Map::new();
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if keep.get(i).copied().unwrap_or(true) {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}
