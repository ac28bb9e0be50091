//! Detached processes, built on the exec channel alone so that they work against Northflank as
//! they do against the local host: a process that outlives every connection, a listing of
//! them, and an attach that replays its output from a byte offset and then goes on live.
//!
//! Every operation is one exec of `sh -c` [`SUPERVISOR`] with a subcommand (see the script for
//! the layout it keeps in the sandbox). A client starts a process with [`run_command`], which
//! carries its output live on the exec's own stdout and stderr while that connection lasts (as
//! fast as a plain exec), and resumes after a drop with [`attach_command`], which reads the
//! files the supervisor kept. An image needs `sh`, coreutils (`split`, `tee`, `tail`, `head`,
//! `stat`, `mkfifo`, `sleep` with fractions) and `setsid` (util-linux, in every Debian and
//! Ubuntu image; BusyBox has it too). Where one is missing, a start starts nothing and exits
//! with code 127, naming the tool on stderr.
//!
//! An attach's stdout is a sequence of frames ([`AttachDecoder`]); it is read as bytes (the
//! exec's `base64` encoding), since offsets count bytes.

use std::fmt;

/// The supervisor script; its subcommands are `run`, `spawn`, `list`, `attach`, `signal` and
/// `close-stdin`.
/// (src/detached.sh, less its comments and indentation: see build.rs.)
pub const SUPERVISOR: &str = include_str!(concat!(env!("OUT_DIR"), "/detached.min.sh"));

/// Output kept per stream of a process unless a spawn says otherwise: 16 MiB.
pub const DEFAULT_KEEP_BYTES: u64 = 16 << 20;

/// `$0` of the script, shown by `ps` in the sandbox.
const SCRIPT_NAME: &str = "flankbox-detached";

/// Why a detached-process request or answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetachedError {
    /// A process id that is not 1 to 64 of `[a-z0-9-]`.
    #[error("a process id is 1 to 64 characters of a-z, 0-9 and '-', got {0:?}")]
    BadId(String),
    /// A detached process with a terminal: the exec channel cannot hand a terminal over from
    /// one connection to the next with only `sh` and coreutils in the image.
    #[error("a detached process cannot have a terminal (tty): reattaching a terminal needs more than sh and coreutils in the image")]
    Tty,
    /// The attach stream broke its own framing.
    #[error("the detached-process supervisor sent a malformed frame: {0}")]
    Malformed(String),
}

/// Checks a process id: it names a directory in the sandbox.
pub fn check_id(id: &str) -> Result<(), DetachedError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DetachedError::BadId(id.to_string()))
    }
}

fn script(subcommand: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        SUPERVISOR.to_string(),
        SCRIPT_NAME.to_string(),
        subcommand.to_string(),
    ];
    argv.extend(args);
    argv
}

/// The exec command that starts `argv` detached as process `id`, keeping the last
/// `keep_bytes` of each stream, and ends: for starting without following (the client uses
/// [`run_command`]). `described` is the command as the caller gave it (one line of JSON,
/// shown by [`list_command`]). Its stdout is the id once the process runs.
pub fn spawn_command(
    id: &str,
    keep_bytes: u64,
    described: &str,
    argv: &[String],
) -> Result<Vec<String>, DetachedError> {
    let head = start_args(id, keep_bytes, described)?;
    Ok(script("spawn", head.into_iter().chain(argv.iter().cloned())))
}

/// What every start of process `id` begins with: its id, what it keeps, and its description
/// on one line.
fn start_args(id: &str, keep_bytes: u64, described: &str) -> Result<[String; 3], DetachedError> {
    check_id(id)?;
    Ok([
        id.to_string(),
        keep_bytes.max(1).to_string(),
        described.replace('\n', " "),
    ])
}

/// The exec command that starts `argv` detached as process `id` and follows it live: its
/// stdout is [`RUN_HEADER`] once the process's directory is made, then the process's own
/// stdout; its stderr is the process's stderr (before the header: why the start failed); its
/// exit code is the process's, or 255 when the supervisor could not give one (ask with an
/// attach). With `stdin`, the exec's stdin goes to the process. A dropped connection ends the
/// exec, not the process, which goes on into its files; resume with [`attach_command`].
pub fn run_command(
    id: &str,
    keep_bytes: u64,
    described: &str,
    stdin: bool,
    argv: &[String],
) -> Result<Vec<String>, DetachedError> {
    let head = start_args(id, keep_bytes, described)?;
    let stdin = u8::from(stdin).to_string();
    Ok(script(
        "run",
        head.into_iter().chain([stdin]).chain(argv.iter().cloned()),
    ))
}

/// What a `run` exec prints on stdout before the process's own output.
pub const RUN_HEADER: &[u8] = b"S\n";

/// The exit code of a `run` exec whose supervisor gave none: the real one (or its loss) is
/// then asked for with an attach, since the process may have exited 255 itself.
pub const RUN_CODE_UNKNOWN: i32 = 255;

/// Takes [`RUN_HEADER`] off the front of a `run` exec's stdout, fed in whatever pieces.
#[derive(Debug, Default)]
pub struct RunHeader {
    seen: usize,
}

impl RunHeader {
    /// Whether the whole header came: the process's directory is made and it is starting.
    pub fn complete(&self) -> bool {
        self.seen == RUN_HEADER.len()
    }

    /// Feeds stdout; returns the part that is the process's own output.
    pub fn strip<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], DetachedError> {
        let want = &RUN_HEADER[self.seen..];
        let take = want.len().min(bytes.len());
        if bytes[..take] != want[..take] {
            return Err(DetachedError::Malformed(format!(
                "a run began with {:?}",
                String::from_utf8_lossy(&bytes[..take])
            )));
        }
        self.seen += take;
        Ok(&bytes[take..])
    }
}

/// The exec command that lists every detached process; parse its stdout with [`parse_list`].
pub fn list_command() -> Vec<String> {
    script("list", [])
}

/// Where an attach starts reading, per stream, in bytes since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    /// Into stdout.
    pub stdout: u64,
    /// Into stderr.
    pub stderr: u64,
}

/// The exec command that attaches to process `id` from `from`; with `stdin`, the exec's stdin
/// goes to the process, and its end closes the process's stdin. Decode its stdout with
/// [`AttachDecoder`].
pub fn attach_command(id: &str, from: Offsets, stdin: bool) -> Result<Vec<String>, DetachedError> {
    check_id(id)?;
    let args = [
        id.to_string(),
        from.stdout.to_string(),
        from.stderr.to_string(),
        u8::from(stdin).to_string(),
    ];
    Ok(script("attach", args))
}

/// The exec command that sends `signal` (a name such as `TERM` or `KILL`) to process `id`'s
/// group. Exit code 3: no such process.
pub fn signal_command(id: &str, signal: &str) -> Result<Vec<String>, DetachedError> {
    check_id(id)?;
    let name = signal.trim_start_matches("SIG");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(DetachedError::Malformed(format!("not a signal name: {signal:?}")));
    }
    Ok(script("signal", [id.to_string(), name.to_string()]))
}

/// The exec command that closes process `id`'s stdin. Exit code 3: no such process.
pub fn close_stdin_command(id: &str) -> Result<Vec<String>, DetachedError> {
    check_id(id)?;
    Ok(script("close-stdin", [id.to_string()]))
}

/// One detached process, as [`list_command`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessEntry {
    /// Its id.
    pub id: String,
    /// The command as its spawner described it (JSON; `Null` if that was not JSON).
    pub command: serde_json::Value,
    /// Start, in seconds since the epoch.
    pub started_at: u64,
    /// Still running.
    pub running: bool,
    /// Its exit code once it ended; `None` while it runs, or if its supervisor vanished
    /// (the sandbox restarted) before it could record one.
    pub exit_code: Option<i32>,
}

/// Reads a listing. Lines it cannot read (a process being made at that moment) are skipped.
pub fn parse_list(stdout: &str) -> Vec<ProcessEntry> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '\t');
            let (id, started, state, command) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            check_id(id).ok()?;
            let (running, exit_code) = match state {
                "running" => (true, None),
                "lost" => (false, None),
                other => (false, Some(other.strip_prefix("exited ")?.parse().ok()?)),
            };
            Some(ProcessEntry {
                id: id.to_string(),
                command: serde_json::from_str(command).unwrap_or(serde_json::Value::Null),
                started_at: started.parse().unwrap_or(0),
                running,
                exit_code,
            })
        })
        .collect()
}

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

    #[test]
    fn listings_are_read_and_odd_lines_skipped() {
        let out = "a1\t1700000000\trunning\t[\"sleep\",\"9\"]\n\
                   b2\t1700000001\texited 3\t\"make\"\n\
                   c3\t1700000002\tlost\tnot json\n\
                   Bad\t1\trunning\t[]\n\
                   half\n";
        let list = parse_list(out);
        assert_eq!(list.len(), 3);
        assert_eq!((list[0].running, list[0].exit_code), (true, None));
        assert_eq!(list[0].command, serde_json::json!(["sleep", "9"]));
        assert_eq!(
            (list[1].running, list[1].exit_code, list[1].started_at),
            (false, Some(3), 1700000001)
        );
        assert_eq!(
            (list[2].running, list[2].exit_code, &list[2].command),
            (false, None, &serde_json::Value::Null)
        );
    }

    #[test]
    fn a_run_header_comes_off_in_any_pieces_and_nothing_else_passes_for_it() {
        for piece in 1..5 {
            let mut header = RunHeader::default();
            let mut own = Vec::new();
            for chunk in b"S\nhi\n".chunks(piece) {
                own.extend_from_slice(header.strip(chunk).unwrap());
            }
            assert!(header.complete());
            assert_eq!(own, b"hi\n", "pieces of {piece}");
        }
        assert!(RunHeader::default().strip(b"hello").is_err());
        assert!(RunHeader::default().strip(b"SX").is_err());
        let argv = run_command("p-1", 10, "[\"a\"]", true, &["a".into()]).unwrap();
        assert_eq!(argv[4..], ["run", "p-1", "10", "[\"a\"]", "1", "a"]);
        assert!(run_command("P", 10, "", false, &[]).is_err());
    }

    #[test]
    fn the_shipped_supervisor_is_valid_sh_without_comments() {
        assert!(SUPERVISOR.len() < include_str!("detached.sh").len() * 2 / 3);
        assert!(!SUPERVISOR.lines().any(|l| l.starts_with('#') || l.starts_with(' ')));
        let parsed = std::process::Command::new("sh")
            .args(["-n", "-c", SUPERVISOR])
            .status()
            .unwrap();
        assert!(parsed.success());
    }

    #[test]
    fn ids_and_signals_are_checked() {
        assert!(spawn_command("ok-1", 1, "x", &["true".into()]).is_ok());
        for bad in ["", "UPPER", "a/b", "../x", &"x".repeat(65)] {
            assert_eq!(check_id(bad), Err(DetachedError::BadId(bad.to_string())));
        }
        assert_eq!(signal_command("p", "SIGTERM").unwrap().last().unwrap(), "TERM");
        assert!(signal_command("p", "TERM; rm -rf /").is_err());
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
