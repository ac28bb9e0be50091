//! What an exec runs: its argv and the identity it runs as, from the `init`'s context.

use flankbox_protocol::exec::{ExecContext, IdOrName};

use crate::host::ExecTargetError;
use crate::runtime::images::{GROUPS, USERS};

/// Why an exec's context cannot run; the message is the sentence the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The command has no argv (the rule is the protocol's).
    #[error(transparent)]
    Argv(#[from] flankbox_protocol::exec::ArgvError),
    /// No such user in the sandbox's `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// No such group in the sandbox's `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// Ids past the sandbox's range.
    #[error("user {uid}:{gid} is outside the sandbox's id range (0-65535)")]
    OutOfRange {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
    },
    /// The service has no sandbox to run it in.
    #[error(transparent)]
    Target(#[from] ExecTargetError),
}

/// Who an exec runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id inside the sandbox.
    pub uid: u32,
    /// Group id inside the sandbox.
    pub gid: u32,
    /// Home directory, also the working directory.
    pub home: String,
    /// User name (`USER`).
    pub name: String,
}

/// The argv for an exec context, by the protocol's rule (contract §3.6).
pub(crate) fn command_argv(ctx: &ExecContext) -> Result<Vec<String>, SetupError> {
    Ok(flankbox_protocol::exec::command_argv(
        ctx.command.as_ref(),
        ctx.shell.as_deref(),
    )?)
}

/// The identity for the exec's `user`/`group`: names from the sandbox's `/etc/passwd` and
/// `/etc/group`, or numbers inside the sandbox's range.
pub(crate) fn identity(user: Option<&IdOrName>, group: Option<&IdOrName>) -> Result<Identity, SetupError> {
    let (uid, default_gid, home, name) = match user {
        None => (0, 0, "/root".to_string(), "root".to_string()),
        Some(IdOrName::Id(id)) => match USERS.iter().find(|u| u.1 == *id) {
            Some(u) => (u.1, u.2, u.3.to_string(), u.0.to_string()),
            None => (*id, *id, "/".into(), id.to_string()),
        },
        Some(IdOrName::Name(n)) => {
            if let Ok(id) = n.parse::<u32>() {
                return identity(Some(&IdOrName::Id(id)), group);
            }
            let u = USERS
                .iter()
                .find(|u| u.0 == n)
                .ok_or_else(|| SetupError::UnknownUser(n.clone()))?;
            (u.1, u.2, u.3.to_string(), u.0.to_string())
        }
    };
    let gid = match group {
        None => default_gid,
        Some(IdOrName::Id(g)) => *g,
        Some(IdOrName::Name(n)) => match n.parse::<u32>() {
            Ok(g) => g,
            Err(_) => GROUPS
                .iter()
                .find(|g| g.0 == n)
                .map(|g| g.1)
                .ok_or_else(|| SetupError::UnknownGroup(n.clone()))?,
        },
    };
    if uid >= 65536 || gid >= 65536 {
        return Err(SetupError::OutOfRange { uid, gid });
    }
    Ok(Identity { uid, gid, home, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flankbox_protocol::exec::{ArgvError, Command};

    fn ctx(command: Option<Command>, shell: Option<&str>) -> ExecContext {
        ExecContext {
            command,
            shell: shell.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn shells_wrap_the_command_as_one_argument() {
        let argv = command_argv(&ctx(Some(Command::Line("echo hi && ls /".into())), Some("bash -c"))).unwrap();
        assert_eq!(argv, ["bash", "-c", "echo hi && ls /"]);
        let argv = command_argv(&ctx(
            Some(Command::Argv(vec!["echo".into(), "a b".into()])),
            Some("sh -c"),
        ))
        .unwrap();
        assert_eq!(argv, ["sh", "-c", "echo 'a b'"]);
    }

    #[test]
    fn no_shell_runs_argv_directly() {
        let argv = command_argv(&ctx(
            Some(Command::Argv(vec!["tar".into(), "--version".into()])),
            Some("none"),
        ))
        .unwrap();
        assert_eq!(argv, ["tar", "--version"]);
        let argv = command_argv(&ctx(Some(Command::Line("ls -lah 'my dir'".into())), None)).unwrap();
        assert_eq!(argv, ["ls", "-lah", "my dir"]);
    }

    #[test]
    fn no_command_is_an_interactive_shell() {
        let argv = command_argv(&ctx(None, None)).unwrap();
        assert_eq!(argv[0], "/bin/sh");
        assert!(argv[2].contains("bash -l"));
    }

    #[test]
    fn bad_commands_are_refused() {
        let refused = |c: Command, shell| command_argv(&ctx(Some(c), shell)).unwrap_err();
        assert_eq!(
            refused(Command::Argv(vec![]), Some("none")),
            SetupError::Argv(ArgvError::Empty)
        );
        assert_eq!(
            refused(Command::Line("echo 'oops".into()), None),
            SetupError::Argv(ArgvError::UnbalancedCommand("echo 'oops".into()))
        );
        assert_eq!(
            refused(Command::Line(String::new()), None),
            SetupError::Argv(ArgvError::Empty)
        );
        assert_eq!(
            refused(Command::Argv(vec!["a\0b".into()]), None),
            SetupError::Argv(ArgvError::Nul)
        );
        assert_eq!(
            refused(Command::Line("x".into()), Some("sh '-c")).to_string(),
            "the shell \"sh '-c\" has unbalanced quotes"
        );
    }

    #[test]
    fn identities_resolve_names_and_ranges() {
        assert_eq!(
            identity(None, None).unwrap(),
            Identity {
                uid: 0,
                gid: 0,
                home: "/root".into(),
                name: "root".into()
            }
        );
        assert_eq!(
            identity(Some(&IdOrName::Name("sandbox".into())), None).unwrap().uid,
            1000
        );
        assert_eq!(
            identity(Some(&IdOrName::Id(1000)), Some(&IdOrName::Name("users".into())))
                .unwrap()
                .gid,
            100
        );
        assert_eq!(
            identity(Some(&IdOrName::Name("mallory".into())), None),
            Err(SetupError::UnknownUser("mallory".into()))
        );
        assert_eq!(
            identity(Some(&IdOrName::Id(70000)), None),
            Err(SetupError::OutOfRange { uid: 70000, gid: 70000 })
        );
        assert_eq!(identity(Some(&IdOrName::Name("0".into())), None).unwrap().uid, 0);
    }
}
