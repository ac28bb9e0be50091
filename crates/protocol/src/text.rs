//! Output bytes as text.

/// Turns a byte stream into valid UTF-8 text chunks, holding back a character split across
/// reads, and replacing invalid bytes with U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    carry: Vec<u8>,
}

impl Utf8Carry {
    /// Text for `bytes`, with any incomplete trailing character kept for later.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let keep = incomplete_tail(&self.carry);
        let complete = self.carry.len() - keep;
        let text = String::from_utf8_lossy(&self.carry[..complete]).into_owned();
        self.carry.drain(..complete);
        text
    }

    /// Calls `f` with the text for `bytes`, as [`push`](Self::push) makes it, without copying
    /// when nothing is carried and the bytes are valid (the common case for a large read).
    pub fn push_with<R>(&mut self, bytes: &[u8], f: impl FnOnce(&str) -> R) -> R {
        if !self.carry.is_empty() {
            return f(&self.push(bytes));
        }
        let (complete, tail) = bytes.split_at(bytes.len() - incomplete_tail(bytes));
        self.carry.extend_from_slice(tail);
        match std::str::from_utf8(complete) {
            Ok(text) => f(text),
            Err(_) => f(&String::from_utf8_lossy(complete)),
        }
    }

    /// Whatever is left, decoded lossily.
    pub fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned()
    }
}

/// Length of a trailing, incomplete (but so far valid) UTF-8 sequence.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 != 0b1000_0000 {
            let needed = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => return 0,
            };
            return if needed > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_reads_is_kept_whole() {
        let mut t = Utf8Carry::default();
        let snow = "☃".as_bytes();
        assert_eq!(t.push(&[b'a', snow[0]]), "a");
        assert_eq!(t.push(&snow[1..]), "☃");
        assert_eq!(t.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(t.push(&[0xf0, 0x9f]), "");
        assert_eq!(t.finish(), "\u{fffd}");
    }

    #[test]
    fn push_with_gives_what_push_gives() {
        let reads: [&[u8]; 6] = [
            b"plain ",
            &[0xe2, 0x98],
            &[0x83, b'!'],
            &[0xff, b'x', 0xf0],
            &[0x9f],
            b"",
        ];
        let (mut a, mut b) = (Utf8Carry::default(), Utf8Carry::default());
        for r in reads {
            assert_eq!(a.push_with(r, str::to_string), b.push(r));
        }
        assert_eq!(a.finish(), b.finish());
    }
}
