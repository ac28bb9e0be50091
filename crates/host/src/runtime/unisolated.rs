//! A backend with **no isolation at all**: the agent runs as an ordinary child process and so
//! do the commands it starts, with the host's filesystem and network, and no limits.
//!
//! It exists so the API, the exec protocol and the state machine can be tested without root.
//! It is a fake in the isolation sense and must never serve untrusted code; `flankbox-host`
//! only uses it with `--unisolated`, and says so loudly.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::ipc::{self, SetupPlan, AGENT_FD};
use super::{Backend, LaunchSpec, Launched, PrepareSpec, Prepared, Resources, RuntimeError};

/// The unisolated backend.
#[derive(Debug)]
pub struct UnisolatedBackend {
    data_dir: PathBuf,
    agent_program: PathBuf,
}

impl UnisolatedBackend {
    /// A backend keeping its scratch space under `data_dir`.
    pub fn new(data_dir: &Path, agent_program: &Path) -> Self {
        Self {
            data_dir: data_dir.into(),
            agent_program: agent_program.into(),
        }
    }

    fn volume_dir(&self, key: &str) -> PathBuf {
        self.data_dir.join("volumes").join(key)
    }
}

struct ScratchDir(PathBuf);

impl Resources for ScratchDir {
    fn release(self: Box<Self>) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Backend for UnisolatedBackend {
    fn describe(&self) -> String {
        "UNISOLATED (test only: commands run directly on the host)".into()
    }

    fn isolated(&self) -> bool {
        false
    }

    fn prepare(&self, spec: &PrepareSpec) -> Result<Prepared, RuntimeError> {
        let scratch = self.data_dir.join("run").join(&spec.id);
        fs::create_dir_all(&scratch)?;
        let (host_end, agent_end) = ipc::socket_pair()?;
        let agent_fd = agent_end.as_raw_fd();
        let mut cmd = std::process::Command::new(&self.agent_program);
        cmd.env_clear().env(ipc::AGENT_ENV, "1").current_dir(&scratch);
        // SAFETY: the closure runs between fork and exec and only calls dup2/fcntl.
        unsafe {
            cmd.pre_exec(move || {
                if agent_fd == AGENT_FD {
                    libc::fcntl(agent_fd, libc::F_SETFD, 0);
                } else if libc::dup2(agent_fd, AGENT_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        // The sandbox handle reaps the agent through a pidfd; the std handle is not needed.
        drop(child);
        Ok(Prepared::new(
            spec.clone(),
            pid,
            host_end,
            Box::new(ScratchDir(scratch.clone())),
            scratch.clone(),
            scratch,
        ))
    }

    fn finish(&self, prepared: Prepared, spec: &LaunchSpec) -> Result<(Launched, SetupPlan), RuntimeError> {
        prepared.ensure_image(&spec.image)?;
        let plan = SetupPlan {
            isolate: false,
            mounts: Vec::new(),
            hostname: spec.hostname.clone(),
            fallback_cwd: prepared.ephemeral.to_string_lossy().into_owned(),
        };
        Ok((prepared.into_launched(), plan))
    }

    fn create_volume(&self, key: &str, _size_mb: u64, _owner_uid: u32) -> Result<(), RuntimeError> {
        fs::create_dir_all(self.volume_dir(key))?;
        Ok(())
    }

    fn attach_volume(&self, key: &str, _owner_uid: u32) -> Result<PathBuf, RuntimeError> {
        let dir = self.volume_dir(key);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn detach_volume(&self, _key: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn delete_volume(&self, key: &str) -> Result<(), RuntimeError> {
        match fs::remove_dir_all(self.volume_dir(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
