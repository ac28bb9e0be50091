//! Output frames as the host writes them: `{"type":"stdOut","data":"…"}` (or `stdErr`), those
//! keys in that order, no blanks, the data escaped as serde_json escapes it, so byte for byte
//! what serde_json makes of the [`ServerFrame`](crate::exec::ServerFrame). Output is the flood
//! of an exec, so the host writes these frames without serde, and the client reads one of this
//! form without a JSON parse when its data holds nothing escaped; any other frame is read as
//! JSON.

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
    stdout_data_range(frame).map(|data| &frame[data])
}

/// Where [`stdout_data`] lies in the frame.
pub fn stdout_data_range(frame: &[u8]) -> Option<std::ops::Range<usize>> {
    let (prefix, suffix) = (prefix(false).as_bytes(), SUFFIX.as_bytes());
    let form = frame.starts_with(prefix) && frame.ends_with(suffix) && frame.len() >= prefix.len() + suffix.len();
    form.then(|| prefix.len()..frame.len() - suffix.len())
}

/// The text that the inside of a JSON string stands for, when nothing in it is escaped: no `\`,
/// no `"` and no control character (which a JSON string must escape), and valid UTF-8. `None`
/// when the inside needs a JSON reader, or is not JSON. Eight bytes at a time: the client's
/// share of a text output flood.
pub fn literal_text(inside: &[u8]) -> Option<&str> {
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

/// Whether any of the eight bytes is a control character, `"` or `\`.
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
    fn text_with_anything_escaped_or_not_utf8_is_left_to_the_json_reader() {
        for inside in [
            &br"a\nb"[..],
            br#"say "hi""#,
            b"tab\there",
            b"0123456789abcdef\x1f",
            b"\xff\xfe not UTF-8 at all",
            b"cut \xe2\x98",
        ] {
            assert_eq!(literal_text(inside), None, "{inside:?}");
        }
        for inside in [
            &b""[..],
            b"x",
            b"plain ASCII text, longer than a word",
            "snow ☃ é".as_bytes(),
        ] {
            assert_eq!(literal_text(inside).map(str::as_bytes), Some(inside));
        }
    }

    proptest::proptest! {
        /// Wherever the literal reading answers, it answers what JSON means, for the host's own
        /// frames and for any bytes between the quotes.
        #[test]
        fn a_literal_reading_is_what_json_means(
            text in "(?s).{0,80}",
            bytes in proptest::collection::vec(0x1cu8..0x7f, 0..40),
            stderr: bool,
        ) {
            let frame = serde_json::to_string(&ServerFrame::StdOut(text.clone())).unwrap();
            let mut written = prefix(false).to_string();
            push_escaped(&mut written, &text);
            written.push_str(SUFFIX);
            proptest::prop_assert_eq!(&written, &frame);
            let inside = stdout_data(frame.as_bytes()).unwrap();
            if let Some(literal) = literal_text(inside) {
                proptest::prop_assert_eq!(literal, &text);
            }
            let odd = [prefix(stderr).as_bytes(), &bytes, SUFFIX.as_bytes()].concat();
            if let Some(literal) = stdout_data(&odd).and_then(literal_text) {
                let read: ServerFrame = serde_json::from_slice(&odd).unwrap();
                proptest::prop_assert_eq!(read, ServerFrame::StdOut(literal.into()));
            }
        }
    }
}
