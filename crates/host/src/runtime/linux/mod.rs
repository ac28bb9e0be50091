//! Real isolation on Linux.
//!
//! Each sandbox is a process tree in fresh user, pid, mount, net, ipc, uts and cgroup
//! namespaces. Its root is a read-only assembly (see [`super::mounts`]), its writable paths live
//! on an ext4 image capped at the ephemeral size, its uids map to an unprivileged host range,
//! and its cgroup enforces the plan's CPU, memory and process limits. The agent adds
//! `no_new_privs`, a reduced capability bounding set and a seccomp deny-list.
//!
//! The host must run as root: it writes uid maps for other ranges, cgroups and loop mounts.

pub mod cgroup;
pub mod loopdev;

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use cgroup::{Cgroup, CgroupLayout};

use super::ipc::{self, AgentMessage, AssemblyPlan, HostMessage, SetupPlan, AGENT_FD};
use super::mounts::{self, ImageRoot, WRITABLE_DIRS};
use super::{Backend, LaunchSpec, Launched, PrepareSpec, Prepared, Resources, RuntimeError};

/// Size of each sandbox's uid/gid range.
pub const UID_RANGE: u32 = 65536;
/// First host uid of the first range; range `n` starts at `UID_BASE + n * UID_RANGE`.
pub const UID_BASE: u32 = 100_000;

/// The first uid of the range `uid` falls in.
pub fn range_base(uid: u32) -> u32 {
    if uid < UID_BASE {
        uid
    } else {
        UID_BASE + (uid - UID_BASE) / UID_RANGE * UID_RANGE
    }
}

/// Longest wait for an agent to assemble a root (a few milliseconds, unless the machine is
/// swamped).
const ASSEMBLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The namespaced, cgroup-limited backend.
#[derive(Debug)]
pub struct LinuxBackend {
    data_dir: PathBuf,
    agent: OwnedFd,
    cgroups: CgroupLayout,
    /// Parent cgroup of this host's sandboxes; unique per data directory, so two hosts (tests
    /// run several) never sweep each other's groups.
    cgroup_parent: String,
}

impl LinuxBackend {
    /// Checks that isolation can work here, and cleans up after an earlier run that used the
    /// same data directory. `agent_program` is this binary (`/proc/self/exe`).
    pub fn new(data_dir: &Path, agent_program: &Path) -> Result<Self, RuntimeError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(RuntimeError::Unsupported(
                "isolated sandboxes need root (uid maps, cgroups and loop mounts); run flankbox-host as root, or pass --unisolated for a test-only host that does not isolate".into(),
            ));
        }
        let cgroups = CgroupLayout::detect(Path::new("/sys/fs/cgroup"))?;
        let path = std::ffi::CString::new(agent_program.as_os_str().as_encoded_bytes())
            .map_err(|_| RuntimeError::Unsupported("agent path has a NUL".into()))?;
        // SAFETY: open with a NUL-terminated path; O_PATH only names the file for execveat.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: open returned a new descriptor.
        let agent = unsafe { OwnedFd::from_raw_fd(fd) };
        let cgroup_parent = format!("flankbox-{:08x}", fnv1a(data_dir.to_string_lossy().as_bytes()));
        let backend = Self {
            data_dir: data_dir.to_path_buf(),
            agent,
            cgroups,
            cgroup_parent,
        };
        backend.sweep();
        Ok(backend)
    }

    /// Removes what an earlier run (e.g. one killed with SIGKILL) left: cgroups, ephemeral mounts
    /// and scratch directories. Volume mounts stay: they are reused.
    fn sweep(&self) {
        self.cgroups.sweep(&self.cgroup_parent);
        let run = self.data_dir.join("run");
        if let Ok(entries) = fs::read_dir(&run) {
            for entry in entries.flatten() {
                let _ = loopdev::unmount(&entry.path().join("ephemeral"));
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    fn relative(&self, path: &Path) -> PathBuf {
        // The agent resolves data-dir paths from its working directory (the data dir), so that
        // the directories above it (e.g. /root, mode 0700) need not be open to sandbox uids.
        match path.strip_prefix(&self.data_dir) {
            Ok(rel) => Path::new(".").join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// Has a prepared sandbox's agent assemble its root and waits until it has.
    fn assemble(&self, prepared: &Prepared) -> io::Result<()> {
        let control = prepared
            .control()
            .ok_or_else(|| io::Error::other("the agent is gone"))?;
        let image = match &prepared.spec.image {
            ImageRoot::HostView { usr, etc, hidden } => ImageRoot::HostView {
                usr: usr.clone(),
                etc: self.relative(etc),
                hidden: hidden.clone(),
            },
            other => other.clone(),
        };
        let plan = AssemblyPlan {
            root: self.relative(&prepared.root).to_string_lossy().into_owned(),
            mounts: mounts::plan_prepared(&image, &self.relative(&prepared.ephemeral)),
        };
        ipc::send(control.as_raw_fd(), &HostMessage::Assemble(plan), &[])?;
        let mut buf = vec![0u8; 64 << 10];
        match ipc::recv_within::<AgentMessage>(control.as_raw_fd(), &mut buf, ASSEMBLY_TIMEOUT)? {
            Some((AgentMessage::Assembled, _)) => Ok(()),
            Some((AgentMessage::SetupFailed { message }, _)) => Err(io::Error::other(message)),
            Some((other, _)) => Err(io::Error::other(format!("unexpected answer to Assemble: {other:?}"))),
            None => Err(io::Error::other("the agent exited while assembling")),
        }
    }

    fn volume_paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.data_dir.join("volumes").join(format!("{key}.img")),
            self.data_dir.join("mnt/volumes").join(key),
        )
    }

    fn prepare_ephemeral(&self, run_dir: &Path, spec: &PrepareSpec) -> io::Result<PathBuf> {
        let image = run_dir.join("ephemeral.img");
        let mount = run_dir.join("ephemeral");
        fs::create_dir_all(&mount)?;
        loopdev::create_image(&image, spec.ephemeral_mb, spec.uid_base, loopdev::Journal::Off)?;
        loopdev::mount_image(&image, &mount)?;
        // The image file is not needed once mounted: unlinking it now means nothing is left on
        // disk however the sandbox ends.
        let _ = fs::remove_file(&image);
        for (name, mode) in WRITABLE_DIRS {
            let dir = mount.join(name);
            fs::create_dir_all(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(*mode))?;
            chown(&dir, Some(spec.uid_base), Some(spec.uid_base))?;
        }
        let home = mount.join("home/sandbox");
        fs::create_dir_all(&home)?;
        chown(&home, Some(spec.uid_base + 1000), Some(spec.uid_base + 1000))?;
        Ok(mount)
    }
}

/// A short stable hash (FNV-1a) for names.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

fn mkdir_traversable(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o711))
}

struct LinuxResources {
    cgroup: Option<Cgroup>,
    run_dir: PathBuf,
}

impl Resources for LinuxResources {
    fn set_limits(&self, limits: super::Limits) -> io::Result<()> {
        match &self.cgroup {
            Some(c) => c.set_limits(limits),
            None => Ok(()),
        }
    }

    fn oom_kills(&self) -> Option<u64> {
        self.cgroup.as_ref()?.oom_kills()
    }

    fn release(self: Box<Self>) {
        if let Some(cgroup) = &self.cgroup {
            if let Err(e) = cgroup.destroy() {
                tracing::warn!("cgroup cleanup: {e}");
            }
        }
        if let Err(e) = loopdev::unmount(&self.run_dir.join("ephemeral")) {
            tracing::warn!("ephemeral unmount: {e}");
        }
        let _ = fs::remove_dir_all(&self.run_dir);
    }
}

impl Backend for LinuxBackend {
    fn describe(&self) -> String {
        let cg = match self.cgroups {
            CgroupLayout::V1 { .. } => "cgroup v1",
            CgroupLayout::V2 { .. } => "cgroup v2",
        };
        format!("linux namespaces (user, pid, mount, net, ipc, uts, cgroup) + seccomp + {cg}")
    }

    fn isolated(&self) -> bool {
        true
    }

    fn prepare(&self, spec: &PrepareSpec) -> Result<Prepared, RuntimeError> {
        for dir in [
            self.data_dir.join("run"),
            self.data_dir.join("images"),
            self.data_dir.join("images/host"),
        ] {
            mkdir_traversable(&dir)?;
        }
        mkdir_traversable(&self.data_dir)?;
        let run_dir = self.data_dir.join("run").join(&spec.id);
        mkdir_traversable(&run_dir)?;
        let root = run_dir.join("root");
        fs::create_dir_all(&root)?;
        let mut resources = Box::new(LinuxResources {
            cgroup: None,
            run_dir: run_dir.clone(),
        });
        let result = (|| {
            let ephemeral = self.prepare_ephemeral(&run_dir, spec)?;
            resources.cgroup = Some(self.cgroups.create(&self.cgroup_parent, &spec.id)?);
            let (host_end, agent_end) = ipc::socket_pair()?;
            let pid = clone_agent(
                &self.agent,
                &agent_end,
                &self.data_dir,
                spec.uid_base,
                resources.cgroup.as_ref(),
            )?;
            Ok::<_, io::Error>((pid, host_end, ephemeral))
        })();
        let prepared = match result {
            Ok((pid, control, ephemeral)) => Prepared::new(spec.clone(), pid, control, resources, root, ephemeral),
            Err(e) => {
                resources.release();
                return Err(e.into());
            }
        };
        // On failure, dropping `prepared` kills the agent and frees the rest.
        self.assemble(&prepared)?;
        Ok(prepared)
    }

    fn finish(&self, prepared: Prepared, spec: &LaunchSpec) -> Result<(Launched, SetupPlan), RuntimeError> {
        prepared.ensure_image(&spec.image)?;
        if let Some(r) = prepared.resources() {
            r.set_limits(spec.limits)?;
        }
        let volumes: Vec<(PathBuf, String)> = spec
            .volumes
            .iter()
            .map(|(host, at)| (self.relative(host), at.clone()))
            .collect();
        let plan = SetupPlan {
            isolate: true,
            mounts: mounts::plan_service(&volumes, spec.shm_mb << 20),
            hostname: spec.hostname.clone(),
            fallback_cwd: "/".into(),
        };
        Ok((prepared.into_launched(), plan))
    }

    fn shutdown(&self) {
        // Every sandbox the host knew of is stopped by now. Anything still here belongs to one
        // whose stop was cut short (a task ended with the runtime, a release thread that never
        // ran): clear it as a restart would, rather than leave mounts behind.
        self.sweep();
        self.cgroups.remove_parent(&self.cgroup_parent);
    }

    fn create_volume(&self, key: &str, size_mb: u64, owner_uid: u32) -> Result<(), RuntimeError> {
        let (image, _) = self.volume_paths(key);
        if image.exists() {
            return Err(RuntimeError::Unsupported(format!(
                "volume storage {} already exists",
                image.display()
            )));
        }
        loopdev::create_image(&image, size_mb, owner_uid, loopdev::Journal::On)?;
        Ok(())
    }

    fn attach_volume(&self, key: &str, owner_uid: u32) -> Result<PathBuf, RuntimeError> {
        use std::os::unix::fs::MetadataExt;
        let (image, mount) = self.volume_paths(key);
        for dir in [self.data_dir.join("mnt"), self.data_dir.join("mnt/volumes")] {
            mkdir_traversable(&dir)?;
        }
        if !loopdev::is_mounted(&mount) {
            fs::create_dir_all(&mount)?;
            loopdev::mount_image(&image, &mount)?;
        }
        // The sandbox may have chowned its volume's root, so compare ranges, not owners.
        let from = range_base(fs::metadata(&mount)?.uid());
        if from != owner_uid {
            loopdev::shift_ownership(&mount, from, owner_uid)?;
        }
        Ok(mount)
    }

    fn detach_volume(&self, key: &str) -> Result<(), RuntimeError> {
        let (_, mount) = self.volume_paths(key);
        if loopdev::is_mounted(&mount) {
            loopdev::unmount(&mount)?;
        }
        Ok(())
    }

    fn volume_keys(&self) -> Vec<String> {
        // `volumes/{project}/{id}.img`, as `volume_paths` names them.
        let mut keys = Vec::new();
        for project in fs::read_dir(self.data_dir.join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for image in fs::read_dir(project.path()).into_iter().flatten().flatten() {
                let name = image.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".img") {
                    keys.push(format!("{}/{id}", project.file_name().to_string_lossy()));
                }
            }
        }
        keys
    }

    fn delete_volume(&self, key: &str) -> Result<(), RuntimeError> {
        self.detach_volume(key)?;
        let (image, mount) = self.volume_paths(key);
        let _ = fs::remove_dir(&mount);
        match fs::remove_file(&image) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Clones the agent into new namespaces and starts it.
///
/// The child may only make raw syscalls until it execs (the host is multi-threaded), so it
/// just waits for the parent to write its uid map and move it into its cgroup, switches to the
/// sandbox's root uid, and execs the agent from `exe` with the control channel at fd 3.
fn clone_agent(
    exe: &OwnedFd,
    agent_end: &OwnedFd,
    data_dir: &Path,
    uid_base: u32,
    cgroup: Option<&Cgroup>,
) -> io::Result<i32> {
    let (go_r, go_w) = {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded; both descriptors are ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    };
    let workdir = std::ffi::CString::new(data_dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let argv: [*const libc::c_char; 2] = [c"flankbox-agent".as_ptr(), std::ptr::null()];
    let env_var = std::ffi::CString::new(format!("{}=1", ipc::AGENT_ENV)).map_err(io::Error::other)?;
    let envp: [*const libc::c_char; 2] = [env_var.as_ptr(), std::ptr::null()];
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: clone with a null stack has fork semantics. The child runs only the raw calls in
    // `agent_child`, which never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: we are the freshly cloned child.
        unsafe {
            agent_child(
                exe.as_raw_fd(),
                agent_end.as_raw_fd(),
                go_r.as_raw_fd(),
                go_w.as_raw_fd(),
                &workdir,
                &argv,
                &envp,
            )
        }
    }
    let pid = pid as i32;
    drop(go_r);
    let setup = (|| {
        let map = format!("0 {uid_base} {UID_RANGE}\n");
        fs::write(format!("/proc/{pid}/uid_map"), &map)?;
        fs::write(format!("/proc/{pid}/gid_map"), &map)?;
        if let Some(cgroup) = cgroup {
            cgroup.attach(pid)?;
        }
        // SAFETY: writing one byte from a local to our pipe.
        if unsafe { libc::write(go_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })();
    if let Err(e) = setup {
        // SAFETY: kill and reap our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(e);
    }
    Ok(pid)
}

/// The cloned child, before exec.
///
/// # Safety
/// Must run in the child of `clone`, which shares no threads: only raw system calls and thin
/// wrappers of them. glibc functions that keep process-wide state (the set*id family, which
/// synchronises every thread glibc knows of; malloc; stdio) may block forever here.
unsafe fn agent_child(
    exe: RawFd,
    sock: RawFd,
    go_r: RawFd,
    go_w: RawFd,
    workdir: &std::ffi::CStr,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 2],
) -> ! {
    // SAFETY: raw syscalls on inherited descriptors and valid pointers; see the function contract.
    unsafe {
        libc::close(go_w);
        let mut byte = 0u8;
        // The parent closes its end without writing if it fails: read returns 0 and we leave.
        if libc::read(go_r, (&mut byte as *mut u8).cast(), 1) != 1 {
            libc::_exit(120);
        }
        // Still host uid 0 here, so the data dir is reachable even under a 0700 parent; the
        // agent then works relative to it.
        if libc::chdir(workdir.as_ptr()) != 0 {
            libc::_exit(121);
        }
        // Raw syscalls, not glibc's setresgid/setresuid: glibc applies those to every thread
        // it believes the process has (signalling each and waiting on a futex), and this copy
        // has only one. A thread being created or leaving at clone time made that wait last
        // forever, so a create failed now and then under concurrency (issue 9).
        if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0 || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0 {
            libc::_exit(122);
        }
        if sock == AGENT_FD {
            libc::fcntl(sock, libc::F_SETFD, 0);
        } else if libc::dup2(sock, AGENT_FD) < 0 {
            libc::_exit(123);
        }
        libc::syscall(
            libc::SYS_execveat,
            exe,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        libc::_exit(124)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_start_at_the_base() {
        assert_eq!(range_base(UID_BASE), UID_BASE);
        assert_eq!(range_base(UID_BASE + UID_RANGE + 1000), UID_BASE + UID_RANGE);
        assert_eq!(range_base(UID_BASE + 3 * UID_RANGE), UID_BASE + 3 * UID_RANGE);
    }
}
