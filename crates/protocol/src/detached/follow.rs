//! Reading a detached process: the attach stream's frames ([`AttachDecoder`]) and a
//! [`Follower`] that carries the bytes read across dropped connections.

use std::fmt;

use super::{attach_command, check_id, DetachedError, Offsets};

/// A stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        })
    }
}

/// What an attach reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachEvent {
    /// Bytes of a stream, continuing from the last.
    Output(Stream, Vec<u8>),
    /// The stream's bytes before `kept_from` are no longer kept: what follows starts there.
    Gone {
        /// Which stream.
        stream: Stream,
        /// The oldest byte still kept.
        kept_from: u64,
    },
    /// The process ended: its exit code, or `None` if its supervisor vanished without one.
    Exit(Option<i32>),
    /// There is no process of that id.
    NoSuchProcess,
}

/// Decodes an attach's stdout, fed in whatever pieces the exec delivers.
#[derive(Debug, Default)]
pub struct AttachDecoder {
    pending: Vec<u8>,
    /// Bytes still owed to the stream of the frame being read.
    body: Option<(Stream, usize)>,
}

/// The longest frame header the supervisor writes ("G stderr <offset>").
const MAX_HEADER: usize = 64;

impl AttachDecoder {
    /// A decoder at the start of an attach.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<AttachEvent>, DetachedError> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut at = 0;
        loop {
            if let Some((stream, owed)) = self.body {
                let take = owed.min(self.pending.len() - at);
                if take == 0 {
                    break;
                }
                events.push(AttachEvent::Output(stream, self.pending[at..at + take].to_vec()));
                at += take;
                self.body = (owed > take).then_some((stream, owed - take));
                continue;
            }
            let Some(end) = self.pending[at..].iter().position(|&b| b == b'\n') else {
                if self.pending.len() - at > MAX_HEADER {
                    return Err(DetachedError::Malformed("a header without its end".into()));
                }
                break;
            };
            let header = std::str::from_utf8(&self.pending[at..at + end])
                .map_err(|_| DetachedError::Malformed("a header that is not text".into()))?;
            at += end + 1;
            match header_event(header)? {
                Header::Body(stream, 0) => {
                    let _ = stream;
                }
                Header::Body(stream, len) => self.body = Some((stream, len)),
                Header::Event(event) => events.push(event),
            }
        }
        self.pending.drain(..at);
        Ok(events)
    }
}

enum Header {
    Body(Stream, usize),
    Event(AttachEvent),
}

fn header_event(header: &str) -> Result<Header, DetachedError> {
    let malformed = || DetachedError::Malformed(format!("{header:?}"));
    let mut words = header.split(' ');
    let kind = words.next().ok_or_else(malformed)?;
    let arg = words.next();
    let stream = |name: &str| match name {
        "out" => Ok(Stream::Stdout),
        "err" => Ok(Stream::Stderr),
        _ => Err(malformed()),
    };
    let header = match (kind, arg) {
        ("O", Some(n)) => Header::Body(Stream::Stdout, n.parse().map_err(|_| malformed())?),
        ("E", Some(n)) => Header::Body(Stream::Stderr, n.parse().map_err(|_| malformed())?),
        ("G", Some(name)) => Header::Event(AttachEvent::Gone {
            stream: stream(name)?,
            kept_from: words.next().and_then(|o| o.parse().ok()).ok_or_else(malformed)?,
        }),
        ("X", Some("-")) => Header::Event(AttachEvent::Exit(None)),
        ("X", Some(code)) => Header::Event(AttachEvent::Exit(Some(code.parse().map_err(|_| malformed())?))),
        ("N", None) => Header::Event(AttachEvent::NoSuchProcess),
        _ => return Err(malformed()),
    };
    Ok(header)
}

/// Joins consecutive output of one stream into one event: the same stream as a reader sees it,
/// however the exec cut it into frames (for comparing and logging attaches).
pub fn coalesce(events: impl IntoIterator<Item = AttachEvent>) -> Vec<AttachEvent> {
    let mut out: Vec<AttachEvent> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(AttachEvent::Output(s, acc)), AttachEvent::Output(t, more)) if *s == t => acc.extend(more),
            (_, event) => out.push(event),
        }
    }
    out
}

/// Why a follower stops reading a process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// No detached process has that id.
    #[error("no detached process {0:?}")]
    NoSuchProcess(String),
    /// An attach asked for output older than what is kept.
    #[error("{stream} from byte {asked} is no longer kept; the oldest kept byte is {kept_from}")]
    OffsetGone {
        /// Which stream.
        stream: Stream,
        /// The offset asked for.
        asked: u64,
        /// The oldest byte still kept.
        kept_from: u64,
    },
    /// While resuming, output the reader had not yet had was dropped from the kept window.
    #[error("{stream} bytes {delivered} to {kept_from} were dropped before they could be resumed")]
    OutputLost {
        /// Which stream.
        stream: Stream,
        /// Bytes delivered before the connection dropped.
        delivered: u64,
        /// Where the kept output now starts.
        kept_from: u64,
    },
    /// The supervisor broke its framing.
    #[error(transparent)]
    Detached(#[from] DetachedError),
}

/// What a follower hands its reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Output of a stream: bytes, or text when following as UTF-8 (never half a character).
    Output(Stream, Chunk),
    /// The process ended: its exit code, `None` if that was lost with its supervisor.
    Exit(Option<i32>),
}

/// A piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
}

/// The reading side of a detached process across any number of attaches: it counts the bytes
/// delivered per stream, so that after a dropped connection [`Follower::resume_from`] says
/// where to attach again and nothing is repeated or skipped; and, following as UTF-8, it never
/// splits a character (an offset inside one starts at the next whole character).
#[derive(Debug)]
pub struct Follower {
    id: String,
    /// Bytes of each stream read so far (the next attach starts here).
    read: Offsets,
    /// An attach in progress, and whether it resumes one that dropped.
    decoder: AttachDecoder,
    resuming: bool,
    text: Option<[crate::text::Utf8Carry; 2]>,
    /// Continuation bytes still to skip at a start inside a character.
    skip_partial: [bool; 2],
}

impl Follower {
    /// A follower of process `id` from `from`, as bytes or (`utf8`) as text.
    pub fn new(id: &str, from: Offsets, utf8: bool) -> Result<Self, DetachedError> {
        check_id(id)?;
        Ok(Self {
            id: id.to_string(),
            read: from,
            decoder: AttachDecoder::new(),
            resuming: false,
            text: utf8.then(Default::default),
            skip_partial: [utf8 && from.stdout > 0, utf8 && from.stderr > 0],
        })
    }

    /// The process it follows.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The exec command for the next attach: the first, or a resume after a drop.
    pub fn attach_command(&mut self, stdin: bool) -> Vec<String> {
        self.decoder = AttachDecoder::new();
        // `new` checked the id.
        attach_command(&self.id, self.read, stdin).unwrap_or_default()
    }

    /// Marks the connection as dropped: the next attach resumes at what was read.
    pub fn dropped(&mut self) {
        self.resuming = true;
    }

    /// Where the next attach starts.
    pub fn resume_from(&self) -> Offsets {
        self.read
    }

    /// Feeds an attach's stdout; returns what to hand the reader.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Delivery>, FollowError> {
        let mut out = Vec::new();
        for event in self.decoder.push(bytes)? {
            match event {
                AttachEvent::Output(stream, bytes) => self.output(stream, &bytes, &mut out),
                AttachEvent::Gone { stream, kept_from } => {
                    let asked = self.offset(stream);
                    if kept_from <= asked {
                        continue;
                    }
                    if self.resuming {
                        return Err(FollowError::OutputLost {
                            stream,
                            delivered: asked,
                            kept_from,
                        });
                    }
                    // Replaying "everything still kept" from 0 starts where the window does.
                    if asked != 0 {
                        return Err(FollowError::OffsetGone {
                            stream,
                            asked,
                            kept_from,
                        });
                    }
                    *self.offset_mut(stream) = kept_from;
                    self.skip_partial[stream as usize] = self.text.is_some();
                }
                AttachEvent::Exit(code) => self.exit(code, &mut out),
                AttachEvent::NoSuchProcess => return Err(FollowError::NoSuchProcess(self.id.clone())),
            }
        }
        Ok(out)
    }

    /// Feeds output a `run` exec carried live (its [`RUN_HEADER`] taken off).
    pub fn push_live(&mut self, stream: Stream, bytes: &[u8]) -> Vec<Delivery> {
        let mut out = Vec::new();
        self.output(stream, bytes, &mut out);
        out
    }

    /// The end of a `run` exec that gave the exit code.
    pub fn live_exit(&mut self, code: i32) -> Vec<Delivery> {
        let mut out = Vec::new();
        self.exit(Some(code), &mut out);
        out
    }

    fn output(&mut self, stream: Stream, bytes: &[u8], out: &mut Vec<Delivery>) {
        let i = stream as usize;
        *self.offset_mut(stream) += bytes.len() as u64;
        let mut bytes = bytes;
        if self.skip_partial[i] {
            let whole = bytes.iter().position(|b| b & 0b1100_0000 != 0b1000_0000);
            bytes = &bytes[whole.unwrap_or(bytes.len())..];
            self.skip_partial[i] = whole.is_none();
        }
        if bytes.is_empty() {
            return;
        }
        let chunk = match &mut self.text {
            Some(carries) => Chunk::Text(carries[i].push(bytes)),
            None => Chunk::Bytes(bytes.to_vec()),
        };
        if !matches!(&chunk, Chunk::Text(t) if t.is_empty()) {
            out.push(Delivery::Output(stream, chunk));
        }
    }

    fn exit(&mut self, code: Option<i32>, out: &mut Vec<Delivery>) {
        if let Some(carries) = &mut self.text {
            for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                let rest = carries[i].finish();
                if !rest.is_empty() {
                    out.push(Delivery::Output(stream, Chunk::Text(rest)));
                }
            }
        }
        out.push(Delivery::Exit(code));
    }

    fn offset(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.read.stdout,
            Stream::Stderr => self.read.stderr,
        }
    }

    fn offset_mut(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Stdout => &mut self.read.stdout,
            Stream::Stderr => &mut self.read.stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(bytes: &[u8], piece: usize) -> Vec<AttachEvent> {
        let mut decoder = AttachDecoder::new();
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece) {
            events.extend(decoder.push(chunk).unwrap());
        }
        events
    }

    #[test]
    fn frames_decode_the_same_in_any_pieces() {
        let stream = b"O 6\nline\n\nE 3\ne\nrG err 4096\nO 2\nhiX 7\n";
        let want = vec![
            AttachEvent::Output(Stream::Stdout, b"line\n\n".to_vec()),
            AttachEvent::Output(Stream::Stderr, b"e\nr".to_vec()),
            AttachEvent::Gone {
                stream: Stream::Stderr,
                kept_from: 4096,
            },
            AttachEvent::Output(Stream::Stdout, b"hi".to_vec()),
            AttachEvent::Exit(Some(7)),
        ];
        for piece in 1..stream.len() {
            assert_eq!(coalesce(decode_in_pieces(stream, piece)), want, "pieces of {piece}");
        }
    }

    #[test]
    fn an_exit_without_a_code_and_a_missing_process_are_reported() {
        assert_eq!(decode_in_pieces(b"X -\n", 4), vec![AttachEvent::Exit(None)]);
        assert_eq!(decode_in_pieces(b"N\n", 1), vec![AttachEvent::NoSuchProcess]);
    }

    #[test]
    fn broken_framing_is_an_error() {
        for bad in [&b"Q 1\n"[..], b"O x\n", b"X 1.5\n", b"G foo 1\n", &[b'O'; 100][..]] {
            assert!(AttachDecoder::new().push(bad).is_err(), "{bad:?}");
        }
    }

    fn text(deliveries: &[Delivery]) -> String {
        deliveries
            .iter()
            .map(|d| match d {
                Delivery::Output(Stream::Stdout, Chunk::Text(t)) => t.clone(),
                Delivery::Output(Stream::Stdout, Chunk::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn a_follower_resumes_where_it_was_cut_with_no_gap_or_repeat() {
        let mut f = Follower::new("p", Offsets::default(), false).unwrap();
        assert_eq!(f.attach_command(false).last().unwrap(), "0");
        // Cut inside a frame: the bytes that arrived count, the rest comes with the resume.
        let first = f.push(b"O 10\nhello").unwrap();
        f.dropped();
        assert_eq!(f.resume_from(), Offsets { stdout: 5, stderr: 0 });
        let argv = f.attach_command(false);
        assert_eq!(&argv[argv.len() - 4..], ["p", "5", "0", "0"]);
        let second = f.push(b"O 7\n world\nX 0\n").unwrap();
        assert_eq!(text(&first) + &text(&second), "hello world\n");
        assert_eq!(second.last(), Some(&Delivery::Exit(Some(0))));
    }

    #[test]
    fn lost_output_and_gone_offsets_are_errors_that_say_which() {
        // A resume that finds its next bytes dropped.
        let mut f = Follower::new("p", Offsets { stdout: 100, stderr: 0 }, false).unwrap();
        f.dropped();
        let err = f.push(b"G out 4096\n").unwrap_err();
        assert_eq!(
            err,
            FollowError::OutputLost {
                stream: Stream::Stdout,
                delivered: 100,
                kept_from: 4096
            }
        );
        // An attach from an offset that is gone.
        let mut f = Follower::new("p", Offsets { stdout: 0, stderr: 7 }, false).unwrap();
        let err = f.push(b"G err 4096\n").unwrap_err();
        assert_eq!(
            err,
            FollowError::OffsetGone {
                stream: Stream::Stderr,
                asked: 7,
                kept_from: 4096
            }
        );
        assert!(err.to_string().contains("no longer kept"));
        // From 0, "everything still kept" starts at the window.
        let mut f = Follower::new("p", Offsets::default(), false).unwrap();
        assert!(f.push(b"G out 4096\nO 2\nabX 1\n").is_ok());
        assert_eq!(f.resume_from().stdout, 4098);
        // No such process.
        let mut f = Follower::new("ghost", Offsets::default(), false).unwrap();
        assert_eq!(f.push(b"N\n").unwrap_err(), FollowError::NoSuchProcess("ghost".into()));
    }

    #[test]
    fn as_text_an_offset_inside_a_character_starts_at_the_next_one() {
        // "é" is two bytes; from offset 1 the attach begins with its second byte.
        let mut f = Follower::new("p", Offsets { stdout: 1, stderr: 0 }, true).unwrap();
        let mut got = f.push(b"O 3\n\xa9ab").unwrap();
        got.extend(f.push(b"O 2\n\xe2\x98").unwrap());
        got.extend(f.push(b"O 1\n\x83X 0\n").unwrap());
        assert_eq!(text(&got), "ab\u{2603}");
        assert_eq!(f.resume_from().stdout, 1 + 3 + 2 + 1);
        // A character split by a drop and a resume comes out whole.
        let mut f = Follower::new("p", Offsets::default(), true).unwrap();
        let mut got = f.push(b"O 2\nx\xe2").unwrap();
        f.dropped();
        f.attach_command(false);
        got.extend(f.push(b"O 2\n\x98\x83").unwrap());
        assert_eq!(text(&got), "x\u{2603}");
    }
}
