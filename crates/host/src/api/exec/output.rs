//! Output frames (`stdOut`/`stdErr`) written straight into one string: the hot path of a
//! flood of output, where serde_json's byte-by-byte escaping and an intermediate string per
//! read cost more than the socket. The bytes are exactly what `serde_json::to_string` of the
//! `ServerFrame` gives (the tests check it).

use axum::extract::ws::Message;
use flankbox_protocol::output_frame::{self, push_escaped};
use flankbox_protocol::text::Utf8Carry;

/// Turns reads of one output stream into frames.
pub(super) struct OutputFrames {
    prefix: &'static str,
    base64: bool,
    text: Utf8Carry,
}

impl OutputFrames {
    pub(super) fn new(stderr: bool, base64: bool) -> Self {
        Self {
            prefix: output_frame::prefix(stderr),
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
            (!text.is_empty()).then(|| wrap(prefix, text.len(), |out| push_escaped(out, text)))
        })
    }

    /// The frame for a character left incomplete at the end, if any.
    pub(super) fn finish(&mut self) -> Option<Message> {
        let rest = self.text.finish();
        (!rest.is_empty()).then(|| wrap(self.prefix, rest.len(), |out| push_escaped(out, &rest)))
    }
}

/// `prefix`, the data `data` writes, and the closing `"}`, in one string sized for `len` bytes
/// of data.
fn wrap(prefix: &str, len: usize, data: impl FnOnce(&mut String)) -> Message {
    let mut out = String::with_capacity(prefix.len() + len + 2);
    out.push_str(prefix);
    data(&mut out);
    out.push_str(output_frame::SUFFIX);
    Message::Text(out.into())
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
