//! Command-exec WebSocket frames (contract §3).
//!
//! One JSON object per WebSocket message, text or binary. The client sends `init` first, then
//! any number of `payload`, `resize` and at most one `stdInEnd`. The server answers `init`,
//! then `stdOut`/`stdErr`, then exactly one `completion` (or an `error`), then closes.

use serde::{Deserialize, Serialize};

/// The path of the exec WebSocket for a service, relative to the API base.
///
/// Ids are **not** URL-encoded here, as the official SDK does.
pub fn exec_path(team_id: Option<&str>, project_id: &str, service_id: &str) -> String {
    match team_id {
        Some(team) => {
            format!("/v1/command-exec/teams/{team}/projects/{project_id}/services/{service_id}")
        }
        None => format!("/v1/command-exec/projects/{project_id}/services/{service_id}"),
    }
}

/// The argv of an exec without a command: an interactive login shell, bash if the image has
/// it, else sh.
pub fn login_shell_argv() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi".into(),
    ]
}

/// Why a command has no argv.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    /// A string with unbalanced quotes.
    #[error("the command {0:?} has unbalanced quotes")]
    UnbalancedCommand(String),
    /// A shell with unbalanced quotes.
    #[error("the shell {0:?} has unbalanced quotes")]
    UnbalancedShell(String),
    /// An argv that cannot be joined into one shell word.
    #[error("the command cannot be quoted: {0}")]
    Unquotable(String),
    /// No program.
    #[error("the command is empty")]
    Empty,
    /// A NUL byte, which no argv can carry.
    #[error("the command contains a NUL byte")]
    Nul,
}

/// The argv of an exec (contract §3.6):
/// - no command: [`login_shell_argv`];
/// - `shell` `none` or absent: an argv array as is, a string split like a shell would;
/// - any other shell: its words, then the command as one argument (`bash -c "<cmd>"`).
pub fn command_argv(command: Option<&Command>, shell: Option<&str>) -> Result<Vec<String>, ArgvError> {
    let shell = shell.map(str::trim).filter(|s| !s.is_empty() && *s != "none");
    let argv = match (command, shell) {
        (None, _) => login_shell_argv(),
        (Some(Command::Argv(a)), None) => a.clone(),
        (Some(Command::Line(l)), None) => shlex::split(l).ok_or_else(|| ArgvError::UnbalancedCommand(l.clone()))?,
        (Some(command), Some(shell)) => {
            let mut argv = shlex::split(shell).ok_or_else(|| ArgvError::UnbalancedShell(shell.into()))?;
            argv.push(match command {
                Command::Line(l) => l.clone(),
                Command::Argv(a) => {
                    shlex::try_join(a.iter().map(String::as_str)).map_err(|e| ArgvError::Unquotable(e.to_string()))?
                }
            });
            argv
        }
    };
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(ArgvError::Empty);
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ArgvError::Nul);
    }
    Ok(argv)
}

/// A client → server frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "camelCase")]
pub enum ClientFrame {
    /// Always first: the token and what to run.
    Init(Box<InitRequest>),
    /// Stdin data: UTF-8 text, or base64 when `encoding` is `base64` (each message on its own).
    Payload(String),
    /// End of stdin.
    StdInEnd,
    /// New PTY size.
    Resize(TtySize),
}

/// `data` of the client's `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRequest {
    /// Authentication.
    pub auth: InitAuth,
    /// What to run, and how. Absent means an interactive shell with defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ExecContext>,
}

/// `init.data.auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitAuth {
    /// Always `apiToken`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The API token.
    #[serde(rename = "apiToken")]
    pub api_token: String,
}

impl InitAuth {
    /// Token authentication.
    pub fn api_token(token: impl Into<String>) -> Self {
        Self {
            kind: "apiToken".into(),
            api_token: token.into(),
        }
    }
}

/// `init.data.context`: what to run. Keys are sent in this order when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecContext {
    /// Instance to run in; a running one is picked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// Container to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// The command; absent means an interactive shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// `none` runs argv directly; anything else is a shell prefix such as `bash -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// User name or uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<IdOrName>,
    /// Group name or gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IdOrName>,
    /// `base64` switches payloads and output to base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Allocate a PTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Initial PTY columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_columns: Option<u16>,
    /// Initial PTY rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_rows: Option<u16>,
}

impl ExecContext {
    /// Whether data travels as base64.
    pub fn is_base64(&self) -> bool {
        self.encoding.as_deref() == Some("base64")
    }
}

/// A command: one string, or an argv array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// One string.
    Line(String),
    /// An argv array.
    Argv(Vec<String>),
}

/// A user or group: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdOrName {
    /// Numeric id.
    Id(u32),
    /// Name.
    Name(String),
}

/// `data` of `resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TtySize {
    /// Rows.
    pub tty_rows: u16,
    /// Columns.
    pub tty_columns: u16,
}

/// A server → client frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "camelCase")]
pub enum ServerFrame {
    /// Reply to `init`.
    Init(InitReply),
    /// Standard output (text, or base64).
    StdOut(String),
    /// Standard error (text, or base64).
    StdErr(String),
    /// The command ended. Nothing follows but the close.
    Completion(Completion),
    /// The command could not run, or the stream broke.
    Error(ErrorData),
}

/// `data` of the server's `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitReply {
    /// `successful`, or anything else on failure.
    pub auth: String,
    /// Where the command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<InitContext>,
    /// Why authentication failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl InitReply {
    /// The value of `auth` on success.
    pub const SUCCESSFUL: &'static str = "successful";

    /// Whether authentication succeeded.
    pub fn is_successful(&self) -> bool {
        self.auth == Self::SUCCESSFUL
    }
}

/// `init.data.context` of the server's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitContext {
    /// The chosen instance.
    pub instance_name: String,
    /// The chosen container.
    pub container_name: String,
}

/// `data` of `completion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Exit code; 128 + signal when killed by a signal. A completion that names none reads as
    /// [`Completion::NO_EXIT_CODE`]: its status still tells the outcome, so it is not refused.
    #[serde(default = "Completion::no_exit_code")]
    pub exit_code: i32,
    /// `Success` iff the exit code is 0.
    pub status: CompletionStatus,
    /// Extra detail, e.g. the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Completion {
    /// The exit code of a completion that names none, and of a process the client killed.
    pub const NO_EXIT_CODE: i32 = -1;

    fn no_exit_code() -> i32 {
        Self::NO_EXIT_CODE
    }
}

/// `completion.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionStatus {
    /// Exit code 0.
    Success,
    /// Non-zero exit code.
    Failure,
    /// The outcome is not known (the sandbox went away), and any status this side does not know.
    #[serde(other)]
    Unknown,
}

/// `data` of `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_become_argv_by_one_rule() {
        let line = Command::Line("echo hi && ls".into());
        assert_eq!(
            command_argv(Some(&line), Some("bash -c")).unwrap(),
            ["bash", "-c", "echo hi && ls"]
        );
        assert_eq!(
            command_argv(Some(&Command::Line("ls 'a b'".into())), Some("none")).unwrap(),
            ["ls", "a b"]
        );
        let argv = Command::Argv(vec!["echo".into(), "a b".into()]);
        assert_eq!(command_argv(Some(&argv), None).unwrap(), ["echo", "a b"]);
        assert_eq!(
            command_argv(Some(&argv), Some("sh -c")).unwrap(),
            ["sh", "-c", "echo 'a b'"]
        );
        assert_eq!(command_argv(None, Some("bash -c")).unwrap(), login_shell_argv());
        assert_eq!(command_argv(Some(&Command::Argv(vec![])), None), Err(ArgvError::Empty));
        assert_eq!(
            command_argv(Some(&Command::Line("'open".into())), None),
            Err(ArgvError::UnbalancedCommand("'open".into()))
        );
        assert_eq!(
            command_argv(Some(&Command::Argv(vec!["a\0b".into()])), None),
            Err(ArgvError::Nul)
        );
    }

    #[test]
    fn parses_the_sdk_init() {
        let frame: ClientFrame = serde_json::from_value(json!({
            "type": "init",
            "data": {
                "auth": { "type": "apiToken", "apiToken": "t" },
                "context": { "command": ["bash", "-c", "echo hi"], "shell": "none", "user": 0,
                             "group": "g", "encoding": "base64", "tty": true, "ttyColumns": 80, "ttyRows": 24 }
            }
        }))
        .unwrap();
        let ClientFrame::Init(init) = frame else {
            panic!("not init")
        };
        assert_eq!(init.auth.api_token, "t");
        let ctx = init.context.unwrap();
        assert_eq!(
            ctx.command,
            Some(Command::Argv(vec!["bash".into(), "-c".into(), "echo hi".into()]))
        );
        assert_eq!(ctx.user, Some(IdOrName::Id(0)));
        assert_eq!(ctx.group, Some(IdOrName::Name("g".into())));
        assert!(ctx.is_base64());
    }

    #[test]
    fn stdin_end_has_no_data() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"stdInEnd"}"#).unwrap();
        assert_eq!(f, ClientFrame::StdInEnd);
        assert_eq!(
            serde_json::to_string(&ClientFrame::StdInEnd).unwrap(),
            r#"{"type":"stdInEnd"}"#
        );
    }

    #[test]
    fn resize_and_payload_round_trip() {
        let r: ClientFrame =
            serde_json::from_str(r#"{"type":"resize","data":{"ttyRows":30,"ttyColumns":100}}"#).unwrap();
        assert_eq!(
            r,
            ClientFrame::Resize(TtySize {
                tty_rows: 30,
                tty_columns: 100
            })
        );
        let p: ClientFrame = serde_json::from_str(r#"{"type":"payload","data":"aGk="}"#).unwrap();
        assert_eq!(p, ClientFrame::Payload("aGk=".into()));
    }

    #[test]
    fn server_frames_use_the_wire_names() {
        let c = ServerFrame::Completion(Completion {
            exit_code: 0,
            status: CompletionStatus::Success,
            message: None,
        });
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            json!({"type": "completion", "data": {"exitCode": 0, "status": "Success"}})
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::StdErr("x".into())).unwrap(),
            json!({"type": "stdErr", "data": "x"})
        );
        let init = ServerFrame::Init(InitReply {
            auth: "successful".into(),
            context: None,
            message: None,
        });
        assert_eq!(
            serde_json::to_value(init).unwrap(),
            json!({"type": "init", "data": {"auth": "successful"}})
        );
    }

    #[test]
    fn rejects_unknown_frames() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>("not json").is_err());
    }

    #[test]
    fn builds_paths_without_encoding() {
        assert_eq!(exec_path(None, "p1", "s1"), "/v1/command-exec/projects/p1/services/s1");
        assert_eq!(
            exec_path(Some("t"), "p1", "s1"),
            "/v1/command-exec/teams/t/projects/p1/services/s1"
        );
    }
}
