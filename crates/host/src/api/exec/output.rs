//! Output frames (`stdOut`/`stdErr`) written straight into one string: the hot path of a
//! flood of output, where serde_json's byte-by-byte escaping and an intermediate string per
//! read cost more than the socket. The bytes are exactly what `serde_json::to_string` of the
//! `ServerFrame` gives (the tests check it).

use axum::extract::ws::Message;
use flankbox_protocol::text::Utf8Carry;

/// Turns reads of one output stream into frames.
pub(super) struct OutputFrames {
    prefix: &'static str,
    base64: bool,
    text: Utf8Carry,
}

impl OutputFrames {
    pub(super) fn new(stderr: bool, base64: bool) -> Self {
        let prefix = if stderr {
            r#"{"type":"stdErr","data":""#
        } else {
            r#"{"type":"stdOut","data":""#
        };
        Self {
            prefix,
            base64,
            text: Utf8Carry::default(),
        }
    }

    /// The frame for one read; `None` when it holds no whole character yet.
    pub(super) fn frame(&mut self, bytes: &[u8]) -> Option<Message> {
        if self.base64 {
            let len = bytes.len().div_ceil(3) * 4;
            return (!bytes.is_empty()).then(|| {
                wrap(self.prefix, len, |out| {
                    flankbox_protocol::base64::encode_into(bytes, out)
                })
            });
        }
        let prefix = self.prefix;
        self.text.push_with(bytes, |text| {
            (!text.is_empty()).then(|| wrap(prefix, text.len(), |out| push_json_escaped(out, text)))
        })
    }

    /// The frame for a character left incomplete at the end, if any.
    pub(super) fn finish(&mut self) -> Option<Message> {
        let rest = self.text.finish();
        (!rest.is_empty()).then(|| wrap(self.prefix, rest.len(), |out| push_json_escaped(out, &rest)))
    }
}

/// `prefix`, the data `data` writes, and the closing `"}`, in one string sized for `len` bytes
/// of data.
fn wrap(prefix: &str, len: usize, data: impl FnOnce(&mut String)) -> Message {
    let mut out = String::with_capacity(prefix.len() + len + 2);
    out.push_str(prefix);
    data(&mut out);
    out.push_str("\"}");
    Message::Text(out.into())
}

/// Appends `text` as the inside of a JSON string, escaped as serde_json escapes it. Runs
/// needing no escape are found eight bytes at a time and copied whole.
fn push_json_escaped(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !word_needs_escape(word) {
                i += 8;
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
    use flankbox_protocol::exec::ServerFrame;

    fn text_of(m: Option<Message>) -> String {
        match m {
            Some(Message::Text(t)) => t.to_string(),
            other => panic!("not a text frame: {other:?}"),
        }
    }

    fn serde_frame(stderr: bool, data: String) -> String {
        let f = if stderr {
            ServerFrame::StdErr(data)
        } else {
            ServerFrame::StdOut(data)
        };
        serde_json::to_string(&f).unwrap()
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        for text in [all.clone(), all.repeat(3), format!("{all}☃ é\u{2028}"), String::new()] {
            let mut out = String::new();
            push_json_escaped(&mut out, &text);
            assert_eq!(format!("\"{out}\""), serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn a_character_split_across_reads_waits_for_its_end() {
        let mut frames = OutputFrames::new(true, false);
        let snow = "☃".as_bytes();
        assert_eq!(text_of(frames.frame(&[b'a', snow[0]])), serde_frame(true, "a".into()));
        assert!(frames.frame(&snow[1..2]).is_none());
        assert_eq!(text_of(frames.frame(&snow[2..])), serde_frame(true, "☃".into()));
        assert!(frames.frame(&[0xe2]).is_none());
        assert_eq!(text_of(frames.finish()), serde_frame(true, "\u{fffd}".into()));
        assert!(frames.finish().is_none());
    }

    proptest::proptest! {
        /// Byte for byte what serde_json makes of the same frame, text or base64.
        #[test]
        fn frames_match_serde_json(bytes: Vec<u8>, text in "(?s).{0,80}", stderr: bool) {
            let mut frames = OutputFrames::new(stderr, false);
            if !text.is_empty() {
                proptest::prop_assert_eq!(text_of(frames.frame(text.as_bytes())), serde_frame(stderr, text.clone()));
            }
            proptest::prop_assert!(frames.finish().is_none());
            let mut lossy = OutputFrames::new(stderr, false);
            let expected = String::from_utf8_lossy(&bytes).into_owned();
            let got = [lossy.frame(&bytes), lossy.finish()]
                .into_iter()
                .flatten()
                .map(|m| {
                    let v: serde_json::Value = serde_json::from_str(&text_of(Some(m))).unwrap();
                    v["data"].as_str().unwrap().to_string()
                })
                .collect::<String>();
            proptest::prop_assert_eq!(got, expected);
            let mut b64 = OutputFrames::new(stderr, true);
            if !bytes.is_empty() {
                proptest::prop_assert_eq!(
                    text_of(b64.frame(&bytes)),
                    serde_frame(stderr, flankbox_protocol::base64::encode(&bytes))
                );
            }
        }
    }
}
