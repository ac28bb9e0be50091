//! Output frames as the host writes them: `{"type":"stdOut","data":"…"}` (or `stdErr`), those
//! keys in that order, no blanks, the data escaped as serde_json escapes it, so byte for byte
//! what serde_json makes of the [`ServerFrame`](crate::exec::ServerFrame). Output is the flood
//! of an exec, so the host writes these frames without serde, and the client reads one of this
//! form without a JSON parse ([`read_text`]); any other frame is read as JSON.

use std::borrow::Cow;

/// What comes before an output frame's data.
pub fn prefix(stderr: bool) -> &'static str {
    if stderr {
        r#"{"type":"stdErr","data":""#
    } else {
        r#"{"type":"stdOut","data":""#
    }
}

/// What comes after an output frame's data.
pub const SUFFIX: &str = r#""}"#;

/// The data of a `stdOut` frame in the host's form, as it stands between the quotes (escaped,
/// or base64).
pub fn stdout_data(frame: &[u8]) -> Option<&[u8]> {
    data_range(frame, false).map(|data| &frame[data])
}

/// Where the data of an output frame in the host's form lies, and whether the frame is
/// `stdErr`'s.
pub fn output_data_range(frame: &[u8]) -> Option<(bool, std::ops::Range<usize>)> {
    [false, true]
        .into_iter()
        .find_map(|stderr| data_range(frame, stderr).map(|at| (stderr, at)))
}

fn data_range(frame: &[u8], stderr: bool) -> Option<std::ops::Range<usize>> {
    let (prefix, suffix) = (prefix(stderr).as_bytes(), SUFFIX.as_bytes());
    let form = frame.starts_with(prefix) && frame.ends_with(suffix) && frame.len() >= prefix.len() + suffix.len();
    form.then(|| prefix.len()..frame.len() - suffix.len())
}

/// The text that the inside of a JSON string stands for, read without a JSON parser: borrowed
/// when nothing in it is escaped, unescaped into a new string when it holds the escapes a JSON
/// writer uses for text (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u` outside the
/// surrogates, which the host writes for other control characters). `None` when the inside needs
/// the full JSON reader (a surrogate pair), or is not JSON (a raw control character or quote, a
/// bad escape, broken UTF-8). Runs needing no escape are found eight bytes at a time: this is
/// the client's share of a text output flood, whose lines end in `\n`.
pub fn read_text(inside: &[u8]) -> Option<Cow<'_, str>> {
    match literal_text(inside) {
        Some(text) => Some(Cow::Borrowed(text)),
        None => unescape(inside).map(Cow::Owned),
    }
}

/// The text when nothing in `inside` is escaped: no `\`, no `"` and no control character, and
/// valid UTF-8.
fn literal_text(inside: &[u8]) -> Option<&str> {
    let mut rest = inside;
    let mut seen = 0;
    // `split_first_chunk` rather than `chunks_exact`: the loop keeps its place in registers
    // (the iterator stayed in memory at `opt-level = "z"`, twice as slow as serde_json).
    while let Some((word, after)) = rest.split_first_chunk::<8>() {
        let word = u64::from_le_bytes(*word);
        if word_needs_escape(word) {
            return None;
        }
        seen |= word;
        rest = after;
    }
    for &b in rest {
        if escape(b).is_some() {
            return None;
        }
        seen |= u64::from(b);
    }
    if seen & HIGHS == 0 {
        // SAFETY: no byte has its high bit set: all are ASCII, which is UTF-8. (The reader's
        // second pass over the text was a sixth of the client's time in a flood.)
        return Some(unsafe { std::str::from_utf8_unchecked(inside) });
    }
    std::str::from_utf8(inside).ok()
}

/// The text of an inside that holds escapes, or `None` as [`read_text`] says.
fn unescape(inside: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(inside.len());
    let mut rest = inside;
    loop {
        let run = plain_run(rest);
        out.extend_from_slice(&rest[..run]);
        let Some((&b, after)) = rest[run..].split_first() else {
            break;
        };
        if b != b'\\' {
            return None;
        }
        let (&e, after) = after.split_first()?;
        rest = after;
        let byte = match e {
            b'"' | b'\\' | b'/' => e,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (hex, after) = rest.split_first_chunk::<4>()?;
                let code = hex
                    .iter()
                    .try_fold(0, |code, &h| Some(code << 4 | char::from(h).to_digit(16)?))?;
                let c = char::from_u32(code)?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                rest = after;
                continue;
            }
            _ => return None,
        };
        out.push(byte);
    }
    String::from_utf8(out).ok()
}

/// How many leading bytes of `bytes` need no escape, found eight at a time.
fn plain_run(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    while let Some((word, after)) = rest.split_first_chunk::<8>() {
        if word_needs_escape(u64::from_le_bytes(*word)) {
            break;
        }
        rest = after;
    }
    bytes.len() - rest.len() + rest.iter().take_while(|&&b| !needs_escape(b)).count()
}

/// Appends `text` as the inside of a JSON string, escaped as serde_json escapes it. Runs
/// needing no escape are found sixteen bytes at a time and copied whole. (The host's side: a
/// fold over sixteen bytes, which the native build vectorizes, ran at twice the eight-byte
/// words; the wasm build has no vector instructions, so the reader keeps the words.)
pub fn push_escaped(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes[i..].first_chunk::<16>() {
            if !chunk.iter().fold(false, |any, &b| any | needs_escape(b)) {
                i += 16;
                continue;
            }
        }
        let b = bytes[i];
        if let Some(escaped) = escape(b) {
            // `b` is ASCII, so both ends of the run are character boundaries.
            out.push_str(&text[run..i]);
            match escaped {
                Escape::Short(c) => {
                    out.push('\\');
                    out.push(char::from(c));
                }
                Escape::Unicode => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 15)]));
                }
            }
            run = i + 1;
        }
        i += 1;
    }
    out.push_str(&text[run..]);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes is a control character, `"` or `\`. Always inlined: with two
/// callers, the wasm build (`opt-level = "z"`) made it a call per word, 13 % slower.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    // `(x - ONES * n) & !x & HIGHS` is nonzero iff some byte of `x` is below `n` (n <= 0x80).
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let control = below(w, 0x20);
    let quote = below(w ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(w ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

/// Whether JSON escapes `b`, as [`escape`] says, in a form the compiler can vectorize.
fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

enum Escape {
    /// `\` and this character.
    Short(u8),
    /// `\u00XX`.
    Unicode,
}

fn escape(b: u8) -> Option<Escape> {
    Some(match b {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        0x09 => Escape::Short(b't'),
        0x0a => Escape::Short(b'n'),
        0x0c => Escape::Short(b'f'),
        0x0d => Escape::Short(b'r'),
        0..0x20 => Escape::Unicode,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ServerFrame;

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        assert!((0..=255).all(|b| needs_escape(b) == escape(b).is_some()));
        for text in [all.clone(), all.repeat(3), format!("{all}☃ é\u{2028}"), String::new()] {
            let mut out = String::new();
            push_escaped(&mut out, &text);
            assert_eq!(format!("\"{out}\""), serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn text_is_read_as_it_stands_unescaped_or_left_to_the_json_reader() {
        for inside in [
            &b""[..],
            b"x",
            b"plain ASCII text, longer than a word",
            "snow ☃ é".as_bytes(),
        ] {
            assert_eq!(
                read_text(inside),
                Some(Cow::Borrowed(std::str::from_utf8(inside).unwrap()))
            );
        }
        for (inside, text) in [
            (&br"line one\nline two\n"[..], "line one\nline two\n"),
            (br#"say \"hi\" \\ \/ \b\f\r\t"#, "say \"hi\" \\ / \u{8}\u{c}\r\t"),
            (br"\u001b[1m \u00e9\u2603", "\u{1b}[1m é☃"),
            ("é\\n☃".as_bytes(), "é\n☃"),
        ] {
            assert_eq!(read_text(inside), Some(Cow::Owned(text.to_string())), "{inside:?}");
        }
        for inside in [
            &br"\ud83d\ude00"[..], // a surrogate pair: the JSON reader's
            br#"say "hi""#,
            b"tab\there",
            b"0123456789abcdef\x1f",
            br"\x41",
            br"\u00e",
            br"\u+0e9",
            br"ends in \",
            b"\xff\xfe not UTF-8 at all",
            b"cut \xe2\x98",
            b"cut \xe2\x98\\n",
        ] {
            assert_eq!(read_text(inside), None, "{inside:?}");
        }
    }

    proptest::proptest! {
        /// The host's own frames read back as the text they carry; any bytes between the quotes
        /// read as JSON reads them, or are left to the JSON reader.
        #[test]
        fn a_reading_is_what_json_means(
            text in "(?s).{0,80}",
            picks in proptest::collection::vec(0usize..16, 0..40),
            stderr: bool,
        ) {
            let frame = serde_json::to_string(&ServerFrame::StdOut(text.clone())).unwrap();
            let mut written = prefix(false).to_string();
            push_escaped(&mut written, &text);
            written.push_str(SUFFIX);
            proptest::prop_assert_eq!(&written, &frame);
            let inside = stdout_data(frame.as_bytes()).unwrap();
            let read = read_text(inside);
            proptest::prop_assert_eq!(read.as_deref(), Some(text.as_str()));
            // Pieces of escapes, of UTF-8 and of JSON's forbidden bytes, in any order.
            const PIECES: &[&[u8]] = &[b"a", b"\\", b"n", b"u", b"0", b"\"", b"/", b"\xc3", b"\xa9", b"d", b"8", b"F", b"t", b"\x01", br"\u00e9", br"\ud83d"];
            let bytes: Vec<u8> = picks.iter().flat_map(|&k| PIECES[k].iter().copied()).collect();
            let odd = [prefix(stderr).as_bytes(), &bytes, SUFFIX.as_bytes()].concat();
            let json = serde_json::from_slice::<ServerFrame>(&odd);
            let read = output_data_range(&odd).and_then(|(is_err, at)| Some((is_err, read_text(&odd[at])?)));
            match read {
                Some((is_err, read)) => {
                    proptest::prop_assert_eq!(is_err, stderr);
                    let read = read.into_owned();
                    let expected = if stderr { ServerFrame::StdErr(read) } else { ServerFrame::StdOut(read) };
                    proptest::prop_assert_eq!(json.unwrap(), expected);
                }
                // Only a surrogate escape, which the JSON reader may take, is left to it.
                None => proptest::prop_assert!(
                    json.is_err() || bytes.windows(3).any(|w| w == br"\ud" || w == br"\uD"),
                    "{:?}", String::from_utf8_lossy(&bytes)
                ),
            }
        }
    }
}
