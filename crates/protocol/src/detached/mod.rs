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

mod follow;

pub use follow::*;

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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(SUPERVISOR.len() < include_str!("../detached.sh").len() * 2 / 3);
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
}
