//! Sandboxes: how they are launched and isolated, and how the host talks to them.
//!
//! - [`Backend`] is the seam between the host and the operating system. [`linux::LinuxBackend`]
//!   isolates for real (namespaces, cgroups, seccomp, loop-mounted ext4); [`unisolated::UnisolatedBackend`]
//!   runs the same agent with no isolation at all, so the API can be tested without root. It is a
//!   fake and says so.
//! - The agent ([`agent`]) is PID 1 inside each sandbox; [`sandbox::Sandbox`] is the host's
//!   handle on it, over the control channel of [`ipc`].
//! - [`mounts`] turns a sandbox's layout into a list of mount steps, [`seccomp`] holds the
//!   syscall filter, [`images`] maps image names to root filesystems.

pub mod agent;
pub mod images;
pub mod ipc;
pub mod linux;
pub mod mounts;
pub mod sandbox;
pub mod seccomp;
pub mod unisolated;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use linux::cgroup::Limits;
pub use mounts::ImageRoot;
pub use sandbox::{ExitStatus, Process, ProcessSpec, Sandbox};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An OS call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The sandbox could not be built.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// A process could not start.
    #[error("{message}")]
    Spawn {
        /// errno of the failure.
        errno: i32,
        /// What failed.
        message: String,
    },
    /// The sandbox is no longer running.
    #[error("the sandbox is not running")]
    Gone,
    /// The agent said something that makes no sense.
    #[error("agent protocol error: {0}")]
    Protocol(String),
    /// The host cannot provide what was asked for.
    #[error("{0}")]
    Unsupported(String),
}

/// What a sandbox needs before anyone knows what it will run: scratch space, a uid range, its
/// writable storage, and its agent waiting in fresh namespaces. Prepared sandboxes are made
/// ahead of time by the host's warm pool.
#[derive(Debug, Clone)]
pub struct PrepareSpec {
    /// Unique id; names its cgroup and scratch directory.
    pub id: String,
    /// First host uid of the sandbox's range (its root).
    pub uid_base: u32,
    /// Size of the writable ephemeral area, MB.
    pub ephemeral_mb: u64,
    /// The root filesystem its root is assembled from, ahead of time. A service of another
    /// image cannot take it.
    pub image: ImageRoot,
}

/// The rest of a sandbox, known once a service boots.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Host name inside.
    pub hostname: String,
    /// Root filesystem.
    pub image: ImageRoot,
    /// CPU, memory and process limits.
    pub limits: Limits,
    /// Size of `/dev/shm`, MB.
    pub shm_mb: u64,
    /// Volumes, already attached on the host: host directory and sandbox path.
    pub volumes: Vec<(PathBuf, String)>,
}

/// A prepared sandbox: its agent runs in its namespaces, its root assembled (by an isolating
/// backend), and waits for the service's plan. Dropping it kills the agent and frees everything.
pub struct Prepared {
    /// What it was prepared with.
    pub spec: PrepareSpec,
    /// Host pid of the agent.
    pub pid: i32,
    /// Where its root is assembled (host path).
    pub root: PathBuf,
    /// Its mounted ephemeral filesystem (host path).
    pub ephemeral: PathBuf,
    control: Option<OwnedFd>,
    resources: Option<Box<dyn Resources>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("spec", &self.spec)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// A prepared sandbox from its parts.
    pub fn new(
        spec: PrepareSpec,
        pid: i32,
        control: OwnedFd,
        resources: Box<dyn Resources>,
        root: PathBuf,
        ephemeral: PathBuf,
    ) -> Self {
        Self {
            spec,
            pid,
            root,
            ephemeral,
            control: Some(control),
            resources: Some(resources),
        }
    }

    /// The host end of its agent's control channel, until it is launched.
    fn control(&self) -> Option<&OwnedFd> {
        self.control.as_ref()
    }

    /// Refuses to finish a sandbox whose root was assembled for another image.
    pub fn ensure_image(&self, image: &ImageRoot) -> Result<(), RuntimeError> {
        if self.spec.image == *image {
            Ok(())
        } else {
            Err(RuntimeError::Setup(format!(
                "sandbox {} was prepared for another image",
                self.spec.id
            )))
        }
    }

    /// Its resources, to set limits on.
    pub fn resources(&self) -> Option<&dyn Resources> {
        self.resources.as_deref()
    }

    /// Hands the agent over to a [`Sandbox`].
    pub fn into_launched(mut self) -> Launched {
        let (control, resources) = (self.control.take(), self.resources.take());
        match (control, resources) {
            (Some(control), Some(resources)) => Launched {
                pid: self.pid,
                control,
                resources,
            },
            // Both are only taken here, and `self` is consumed.
            _ => unreachable!("a prepared sandbox is launched once"),
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if self.control.is_some() {
            // SAFETY: kill and reap our own child, the agent, which no one else waits for.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(r) = self.resources.take() {
            r.release();
        }
    }
}

/// A launched agent, waiting for its setup plan.
pub struct Launched {
    /// Host pid of the agent.
    pub pid: i32,
    /// Host end of the control channel.
    pub control: OwnedFd,
    /// What to free once the sandbox is gone.
    pub resources: Box<dyn Resources>,
}

/// Host resources held by one sandbox (cgroup, ephemeral filesystem, scratch directory).
pub trait Resources: Send + Sync {
    /// Applies CPU, memory and process limits.
    fn set_limits(&self, _limits: Limits) -> std::io::Result<()> {
        Ok(())
    }
    /// Processes the memory limit has killed, when known.
    fn oom_kills(&self) -> Option<u64> {
        None
    }
    /// Frees everything. Called once the agent has exited.
    fn release(self: Box<Self>);
}

/// The seam between the host and the operating system.
pub trait Backend: Send + Sync + 'static {
    /// A short description for logs and the README ("namespaces+seccomp+cgroup v1", …).
    fn describe(&self) -> String;
    /// Whether sandboxes are really isolated.
    fn isolated(&self) -> bool;
    /// Prepares a sandbox: storage, uid range, cgroup, its agent in fresh namespaces, and (when
    /// isolating) its root assembled for `spec.image`. Blocking, for a few milliseconds unless
    /// the machine is swamped.
    fn prepare(&self, spec: &PrepareSpec) -> Result<Prepared, RuntimeError>;
    /// Applies `spec` to a prepared sandbox: limits now, and the plan its agent must carry out.
    /// Fails for a sandbox prepared for another image.
    fn finish(&self, prepared: Prepared, spec: &LaunchSpec) -> Result<(Launched, ipc::SetupPlan), RuntimeError>;
    /// Creates the storage of a volume, `size_mb` large, owned by `owner_uid`. Blocking.
    fn create_volume(&self, key: &str, size_mb: u64, owner_uid: u32) -> Result<(), RuntimeError>;
    /// Makes a volume available on the host, owned by `owner_uid`, and returns its directory.
    /// Blocking.
    fn attach_volume(&self, key: &str, owner_uid: u32) -> Result<PathBuf, RuntimeError>;
    /// Releases a volume's host mount while no sandbox uses it. Blocking.
    fn detach_volume(&self, key: &str) -> Result<(), RuntimeError>;
    /// Deletes a volume's storage. Blocking.
    fn delete_volume(&self, key: &str) -> Result<(), RuntimeError>;
    /// The keys of every volume whose storage exists, for finding storage no record owns
    /// (a `kill -9` between making the storage and recording the volume, or between
    /// forgetting it and deleting the storage). Blocking.
    fn volume_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// Frees host-wide resources once every sandbox has stopped.
    fn shutdown(&self) {}
    /// GPU types this host can give sandboxes (none: no backend passes GPUs in yet).
    fn gpu_types(&self) -> Vec<String> {
        Vec::new()
    }
    /// NVIDIA devices on this machine (`/dev/nvidiaN`), given to sandboxes or not: what a
    /// refused GPU request is told.
    fn gpu_devices(&self) -> usize {
        nvidia_devices(Path::new("/dev"))
    }
}

/// How many `nvidiaN` devices `dev` holds.
fn nvidia_devices(dev: &Path) -> usize {
    let is_gpu = |name: &str| {
        name.strip_prefix("nvidia")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    std::fs::read_dir(dev)
        .map(|d| d.flatten().filter(|e| is_gpu(&e.file_name().to_string_lossy())).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_nvidia_devices_count() {
        let dev = std::env::temp_dir().join(format!("flankbox-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dev).unwrap();
        for name in ["nvidia0", "nvidia12", "nvidiactl", "nvidia-uvm", "nvidia", "sda"] {
            std::fs::write(dev.join(name), "").unwrap();
        }
        assert_eq!(nvidia_devices(&dev), 2);
        std::fs::remove_dir_all(&dev).unwrap();
        assert_eq!(nvidia_devices(&dev), 0);
    }
}
