//! Fuzz target for the client's tar reader (files downloaded from a sandbox arrive as tar): any
//! bytes, archives with odd headers (sizes, kinds, pax and GNU long names), and valid archives
//! mutated. Properties: `read` never panics, its errors are the client's `Error` with a message,
//! and `read(write(entries)) == entries` for valid entries. `FUZZ_SECONDS=N` runs it for N seconds.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/fuzz_runner.rs"]
mod fuzz_runner;

use flankbox::error::Error;
use flankbox::tar::{read, write, Entry};
use fuzz_runner::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn reads_or_refuses(bytes: &[u8]) -> Result<(), TestCaseError> {
    match read(bytes) {
        Ok(entries) => {
            for e in entries {
                prop_assert!(!e.path.is_empty());
            }
        }
        Err(e) => {
            prop_assert!(matches!(e, Error::Protocol(_)), "{:?}", e);
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

/// Entries `write` takes and `read` gives back as they were: relative paths of printable
/// characters without `..` parts, permission bits only.
fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let part = prop_oneof!["[a-zA-Z0-9_.-]{1,12}", "[a-z]{40,90}", "[\\PC&&[^/\\x00]]{1,8}"]
        .prop_filter("not a dot part", |p| p != ".." && p != ".");
    let entry = (
        prop::collection::vec(part, 1..4),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..1500)),
        0u32..=0o7777,
    )
        .prop_map(|(parts, data, mode)| Entry {
            path: parts.join("/"),
            data,
            mode,
        });
    prop::collection::vec(entry, 0..5)
}

fn octal_field(n: u64, width: usize) -> Vec<u8> {
    let mut f = format!("{n:o}").into_bytes();
    f.truncate(width - 1);
    f.resize(width, 0);
    f
}

/// One 512-byte header with chosen fields, then `data` padded to blocks.
fn header_block(name: &[u8], size: &[u8], kind: u8, prefix: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(&octal_field(0o644, 8));
    h[124..124 + size.len().min(12)].copy_from_slice(&size[..size.len().min(12)]);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[345..345 + prefix.len().min(155)].copy_from_slice(&prefix[..prefix.len().min(155)]);
    h.extend_from_slice(data);
    h.resize(h.len().div_ceil(512) * 512, 0);
    h
}

/// Archives built header by header with odd fields.
fn odd_archive() -> impl Strategy<Value = Vec<u8>> {
    let size = prop_oneof![
        any::<u64>().prop_map(|n| octal_field(n, 12)),
        prop::collection::vec(any::<u8>(), 0..12),
        prop::sample::select(vec![
            b"77777777777".to_vec(),
            b"9".to_vec(),
            b" 12 ".to_vec(),
            vec![0x80, 1, 2]
        ]),
    ];
    let name = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        prop::sample::select(vec![
            b"./".to_vec(),
            b"../x".to_vec(),
            b"/etc/passwd".to_vec(),
            b".".to_vec()
        ]),
    ];
    let kind = prop::sample::select(vec![b'0', 0, b'5', b'7', b'L', b'x', b'g', b'1', b'2', b'K', 0xff]);
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        "(([0-9]{1,3}) path=[^\\n]{0,40}\\n){0,3}".prop_map(String::into_bytes),
    ];
    let block = (name, size, kind, prop::collection::vec(any::<u8>(), 0..20), data)
        .prop_map(|(n, s, k, p, d)| header_block(&n, &s, k, &p, &d));
    (prop::collection::vec(block, 0..5), any::<bool>()).prop_map(|(blocks, end)| {
        let mut out = blocks.concat();
        if end {
            out.extend_from_slice(&[0u8; 1024]);
        }
        out
    })
}

#[test]
fn tar_reader_reads_anything() {
    fuzz(
        "tar reader, raw and odd headers",
        || prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), odd_archive()],
        |bytes| reads_or_refuses(&bytes),
    );
}

#[test]
fn tar_round_trips_and_survives_mutation() {
    fuzz(
        "tar round trip and mutation",
        || (entries(), byte_edits()),
        |(entries, edits)| {
            let archive = write(&entries).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = read(&archive).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &entries);
            reads_or_refuses(&mutate_bytes(archive, &edits))
        },
    );
}

/// Paths `write` must refuse.
#[test]
fn tar_writer_refuses_escapes() {
    fuzz(
        "tar writer refusals",
        || prop::sample::select(vec!["", "/", "./", "..", "a/../b", "../x", "/.."]),
        |path| {
            let refused = write(&[Entry {
                path: path.to_string(),
                data: Some(Vec::new()),
                mode: 0o644,
            }]);
            prop_assert!(matches!(refused, Err(Error::Invalid(_))), "{} → {:?}", path, refused);
            Ok(())
        },
    );
}
