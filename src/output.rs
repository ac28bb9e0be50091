//! Output kept within a limit: the first half and the last half of what arrived, never more.
//!
//! The last half sees every byte of a flood, so it keeps the frames the output came in, moved
//! in rather than copied, each with the range of its output. Copying into a ring was a fifth
//! of the client's time in a 200 MB exec (it touched every byte once more, out of cache).

use std::collections::VecDeque;
use std::ops::Range;

/// Small pieces copied in share one allocation up to this size.
const SHARED_PIECE: usize = 16 << 10;

/// A frame with less output than this is copied rather than kept: a trickle of tiny frames kept
/// whole would cost more in frames than in output. So is a frame whose allocation is over half
/// as large again as its output (text read from a JS string reserves room for three bytes per
/// character): the tail's memory stays within 1.5 times what it keeps.
const KEPT_FRAME_MIN: usize = 4 << 10;

/// Output kept within a limit.
#[derive(Debug, Clone)]
pub struct OutputBuffer {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<Piece>,
    tail_len: usize,
    total: u64,
}

/// Output at `bytes[start..end]`: a frame moved in, or bytes copied in. Either is the tail's
/// own, so small copies may be appended to one whose output runs to its end.
#[derive(Debug, Clone)]
struct Piece {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl OutputBuffer {
    /// A buffer keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            tail_len: 0,
            total: 0,
        }
    }

    /// Adds output, copying what is kept.
    pub fn push(&mut self, bytes: &[u8]) {
        let rest = self.push_head(bytes);
        let Some(rest) = self.tail_room(rest) else {
            return;
        };
        let bytes = &bytes[rest];
        match self.tail.back_mut() {
            Some(last) if last.end == last.bytes.len() && last.bytes.len() < SHARED_PIECE => {
                last.bytes.extend_from_slice(bytes);
                last.end = last.bytes.len();
            }
            _ => {
                let mut copy = Vec::with_capacity(bytes.len().max(SHARED_PIECE));
                copy.extend_from_slice(bytes);
                self.tail.push_back(Piece {
                    start: 0,
                    end: copy.len(),
                    bytes: copy,
                });
            }
        }
        self.tail_len += bytes.len();
        self.trim();
    }

    /// Adds the output at `frame[output]`, keeping the frame itself rather than a copy when
    /// the output goes to the tail.
    pub fn push_frame(&mut self, frame: Vec<u8>, output: Range<usize>) {
        if output.len() < KEPT_FRAME_MIN || frame.capacity() > output.len() + output.len() / 2 {
            return self.push(&frame[output]);
        }
        let rest = self.push_head(&frame[output.clone()]);
        let Some(rest) = self.tail_room(rest) else {
            return;
        };
        let (start, end) = (output.start + rest.start, output.start + rest.end);
        self.tail_len += end - start;
        self.tail.push_back(Piece {
            bytes: frame,
            start,
            end,
        });
        self.trim();
    }

    /// Counts `bytes` and fills the head from them; answers the range of `bytes` left over.
    fn push_head(&mut self, bytes: &[u8]) -> Range<usize> {
        self.total += bytes.len() as u64;
        let head_room = (self.limit / 2).saturating_sub(self.head.len());
        let take = head_room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        take..bytes.len()
    }

    /// The part of `rest` that the tail keeps (its last `limit - limit / 2` bytes, none when
    /// empty); the tail is cleared first when that part is all it will hold.
    fn tail_room(&mut self, rest: Range<usize>) -> Option<Range<usize>> {
        let cap = self.tail_cap();
        if rest.is_empty() || cap == 0 {
            return None;
        }
        if rest.len() >= cap {
            self.tail.clear();
            self.tail_len = 0;
            return Some(rest.end - cap..rest.end);
        }
        Some(rest)
    }

    fn tail_cap(&self) -> usize {
        self.limit - self.limit / 2
    }

    /// Drops the oldest tail bytes past its capacity.
    fn trim(&mut self) {
        while self.tail_len > self.tail_cap() {
            let over = self.tail_len - self.tail_cap();
            let Some(front) = self.tail.front_mut() else {
                return;
            };
            let len = front.end - front.start;
            if len <= over {
                self.tail.pop_front();
                self.tail_len -= len;
            } else {
                front.start += over;
                self.tail_len -= over;
            }
        }
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail_len) as u64
    }

    /// Bytes seen in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes kept.
    pub fn kept(&self) -> usize {
        self.head.len() + self.tail_len
    }

    /// The kept output as text, with a marker where bytes were dropped.
    pub fn into_text(self) -> String {
        let dropped = self.total - self.kept() as u64;
        let mut tail = Vec::with_capacity(self.tail_len);
        for piece in &self.tail {
            tail.extend_from_slice(&piece.bytes[piece.start..piece.end]);
        }
        let mut head = self.head;
        if dropped == 0 {
            // Nothing between them: one text, so a character across the seam stays whole.
            head.extend_from_slice(&tail);
            return String::from_utf8_lossy(&head).into_owned();
        }
        let mut text = String::from_utf8_lossy(&head).into_owned();
        text.push_str(&format!("\n[… {dropped} bytes truncated …]\n"));
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_head_and_tail_within_the_limit() {
        let mut b = OutputBuffer::new(10);
        b.push(b"0123");
        b.push(b"456789abcdef");
        b.push(b"XYZ");
        assert!(b.truncated());
        assert_eq!(b.total(), 19);
        assert_eq!(b.into_text(), "01234\n[… 9 bytes truncated …]\nefXYZ");
        let mut small = OutputBuffer::new(100);
        small.push(b"all of it");
        assert!(!small.truncated());
        assert_eq!(small.into_text(), "all of it");
    }

    #[test]
    fn kept_output_decodes_whole_when_nothing_was_dropped() {
        let mut b = OutputBuffer::new(8);
        // 7 bytes: the head (4) ends inside the second "é".
        b.push("aéé".as_bytes());
        b.push("!".as_bytes());
        assert!(!b.truncated());
        assert_eq!(b.into_text(), "aéé!");
    }

    #[test]
    fn a_flood_never_grows_the_buffer() {
        let mut b = OutputBuffer::new(1000);
        for i in 0..10_000 {
            if i % 2 == 0 {
                b.push(&[b'x'; 997]);
            } else {
                b.push_frame(vec![b'x'; 1010], 5..1002);
            }
        }
        assert_eq!(b.kept(), 1000);
        assert!(b.tail.len() <= 2, "{} pieces", b.tail.len());
        assert_eq!(b.total(), 9_970_000);
        for framed in [false, true] {
            let mut drip = OutputBuffer::new(1 << 20);
            for _ in 0..2_000_000 {
                if framed {
                    drip.push_frame(b"{y}".to_vec(), 1..2);
                } else {
                    drip.push(b"y");
                }
            }
            let allocated: usize = drip.tail.iter().map(|p| p.bytes.capacity()).sum();
            assert!(
                allocated < (1 << 19) + 2 * SHARED_PIECE,
                "{allocated} bytes for single bytes"
            );
        }
        let mut roomy = OutputBuffer::new(1 << 20);
        for _ in 0..100 {
            let mut frame = Vec::with_capacity(3 * 8192);
            frame.extend_from_slice(&[b'z'; 8192]);
            roomy.push_frame(frame, 0..8192);
        }
        let allocated: usize = roomy.tail.iter().map(|p| p.bytes.capacity()).sum();
        assert!(allocated <= (1 << 19) * 3 / 2, "{allocated} bytes for 512 KiB");
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// Whatever mix of copies and frames, of whatever sizes: the first half and the last
        /// half of the stream, as a plain copy of it all says.
        #[test]
        fn kept_output_is_the_streams_head_and_tail(
            limit in 0usize..64,
            pushes in proptest::collection::vec((proptest::collection::vec(b'a'..=b'z', 0..40), 0usize..4, proptest::bool::ANY), 0..30),
            big in proptest::collection::vec(5_000usize..20_000, 0..3),
        ) {
            let mut b = OutputBuffer::new(limit);
            let mut all = Vec::new();
            // Frames large enough to be kept whole, among the rest.
            let big = big.into_iter().map(|n| ((b'a'..=b'z').cycle().skip(n % 26).take(n).collect::<Vec<u8>>(), 1, true));
            for (bytes, pad, framed) in pushes.into_iter().chain(big) {
                all.extend_from_slice(&bytes);
                if framed {
                    let frame = [vec![b'{'; pad], bytes.clone(), vec![b'}'; pad]].concat();
                    b.push_frame(frame, pad..pad + bytes.len());
                } else {
                    b.push(&bytes);
                }
            }
            let head = (limit / 2).min(all.len());
            let tail = (limit - limit / 2).min(all.len() - head);
            let dropped = all.len() - head - tail;
            let expected = if dropped == 0 {
                String::from_utf8(all).unwrap()
            } else {
                format!(
                    "{}\n[… {dropped} bytes truncated …]\n{}",
                    String::from_utf8_lossy(&all[..head]),
                    String::from_utf8_lossy(&all[all.len() - tail..])
                )
            };
            proptest::prop_assert_eq!(b.truncated(), dropped > 0);
            proptest::prop_assert_eq!(b.into_text(), expected);
        }
    }
}
