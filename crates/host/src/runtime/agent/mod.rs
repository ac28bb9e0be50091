//! The agent: PID 1 of every sandbox.
//!
//! The host starts its own binary in the sandbox's fresh namespaces with [`ipc::AGENT_ENV`] set;
//! `main` hands over to [`main`] before anything else runs, so the agent is single-threaded and
//! may start commands with `clone(CLONE_VM | CLONE_VFORK)` ([`child`]). It assembles the root
//! from the host's [`AssemblyPlan`] while it waits in the warm pool, finishes it from the
//! [`SetupPlan`] at boot, locks itself down (`no_new_privs`, a reduced capability bounding set,
//! seccomp, not dumpable), then starts and reaps processes on request until the host says stop
//! or goes away. When PID 1 exits, the kernel kills everything else in the sandbox.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

mod child;

use super::ipc::{self, AgentMessage, AssemblyPlan, HostMessage, SetupPlan, SpawnRequest, AGENT_FD};
use super::mounts::{self, LinuxSys};
use super::seccomp;

/// Capabilities sandbox processes keep in their bounding set (Docker's default list). The rest,
/// CAP_SYS_ADMIN and CAP_SYS_PTRACE among them, are gone for good.
const KEPT_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// Runs the agent; never returns.
pub fn main() -> ! {
    // Stdio came from the host; nothing of the host's may reach sandbox processes.
    redirect_stdio_to_null();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"flankbox-agent".as_ptr()) };
    // SAFETY: AGENT_FD was placed by the launcher and is owned by nobody else in this process.
    let control = unsafe { OwnedFd::from_raw_fd(AGENT_FD) };
    let code = match Agent::new(control).and_then(|mut a| a.run()) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    // SAFETY: leaving the process; nothing needs unwinding.
    unsafe { libc::_exit(code) }
}

fn redirect_stdio_to_null() {
    // SAFETY: open/dup2/close on descriptors this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == -1 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

struct Agent {
    control: OwnedFd,
    buf: Vec<u8>,
    /// Sandbox pid → host's request id.
    running: HashMap<i32, u64>,
    /// Request id → sandbox pid (process group).
    groups: HashMap<u64, i32>,
    isolated: bool,
    /// Where a command starts when its own directory does not exist (from the setup plan).
    fallback_cwd: CString,
    sigchld: OwnedFd,
    child_stack: child::ChildStack,
}

impl Agent {
    fn new(control: OwnedFd) -> io::Result<Self> {
        // SIGCHLD arrives through a signalfd, so one poll loop serves both inputs.
        // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset before use.
        let sigchld = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            check(fd, "signalfd")?;
            OwnedFd::from_raw_fd(fd)
        };
        Ok(Self {
            control,
            buf: vec![0; ipc::MAX_MESSAGE],
            running: HashMap::new(),
            groups: HashMap::new(),
            isolated: false,
            fallback_cwd: c"/".into(),
            sigchld,
            child_stack: child::ChildStack::new()?,
        })
    }

    fn send(&self, message: &AgentMessage, fds: &[RawFd]) -> io::Result<()> {
        ipc::send(self.control.as_raw_fd(), message, fds)
    }

    /// Launched → (`Assemble` → assembled) → `Setup` → ready, then serving. An isolated
    /// sandbox is assembled while it waits in the warm pool, so that a boot only finishes it.
    fn run(&mut self) -> io::Result<()> {
        let mut root = None;
        let plan = loop {
            match ipc::recv::<HostMessage>(self.control.as_raw_fd(), &mut self.buf)? {
                Some((HostMessage::Assemble(assembly), _)) if root.is_none() => {
                    self.report(assemble(&assembly), AgentMessage::Assembled)?;
                    root = Some(assembly.root);
                }
                Some((HostMessage::Setup(plan), _)) => break plan,
                _ => return Err(io::Error::other("expected one Assemble, then Setup")),
            }
        };
        self.isolated = plan.isolate;
        let setup = CString::new(plan.fallback_cwd.as_bytes())
            .map_err(io::Error::other)
            .and_then(|cwd| {
                self.fallback_cwd = cwd;
                match (plan.isolate, &root) {
                    (true, Some(root)) => finish_sandbox(root, &plan),
                    (true, None) => Err(io::Error::other("an isolated sandbox must be assembled first")),
                    (false, _) => not_isolated(),
                }
            });
        self.report(setup, AgentMessage::Ready)?;
        self.serve()
    }

    /// Tells the host how a setup step went: `done`, or `SetupFailed` and the error back.
    fn report<T>(&self, step: io::Result<T>, done: AgentMessage) -> io::Result<T> {
        match step {
            Ok(value) => {
                self.send(&done, &[])?;
                Ok(value)
            }
            Err(e) => {
                self.send(&AgentMessage::SetupFailed { message: e.to_string() }, &[])?;
                Err(e)
            }
        }
    }

    fn serve(&mut self) -> io::Result<()> {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.control.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sigchld.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return Err(io::Error::last_os_error());
            }
            if fds[1].revents != 0 {
                self.reap()?;
            }
            if fds[0].revents != 0 {
                match ipc::recv::<HostMessage>(self.control.as_raw_fd(), &mut self.buf) {
                    Ok(Some((message, passed))) => {
                        if let Some(grace) = self.handle(message, passed)? {
                            self.shutdown(grace);
                            return Ok(());
                        }
                    }
                    // The host is gone: so is the sandbox.
                    Ok(None) | Err(_) => {
                        self.shutdown(Duration::ZERO);
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Handles one host message; returns the grace period when the host asks to stop.
    fn handle(&mut self, message: HostMessage, passed: Vec<OwnedFd>) -> io::Result<Option<Duration>> {
        match message {
            HostMessage::Assemble(_) | HostMessage::Setup(_) => {}
            HostMessage::Spawn(req) => {
                let id = req.id;
                match self.spawn(&req, passed) {
                    Ok((pid, master)) => {
                        self.running.insert(pid, id);
                        self.groups.insert(id, pid);
                        let fds: Vec<RawFd> = master.iter().map(|m| m.as_raw_fd()).collect();
                        self.send(&AgentMessage::Spawned { id, pid }, &fds)?;
                    }
                    Err(SpawnError { errno, message }) => {
                        self.send(&AgentMessage::SpawnFailed { id, errno, message }, &[])?
                    }
                }
            }
            HostMessage::Signal { id, signal } => {
                if let Some(&pid) = self.groups.get(&id) {
                    // SAFETY: kill takes plain integers. The group first (the process called
                    // setsid), then the process itself in case it left its group.
                    unsafe {
                        libc::kill(-pid, signal);
                        libc::kill(pid, signal);
                    }
                }
            }
            HostMessage::Dial { id, port } => match dial_loopback(port) {
                Ok(socket) => self.send(&AgentMessage::Dialed { id }, &[socket.as_raw_fd()])?,
                Err(e) => self.send(
                    &AgentMessage::DialFailed {
                        id,
                        errno: e.raw_os_error().unwrap_or(libc::EIO),
                    },
                    &[],
                )?,
            },
            HostMessage::Shutdown { grace_ms } => return Ok(Some(Duration::from_millis(grace_ms))),
        }
        Ok(None)
    }

    fn reap(&mut self) -> io::Result<()> {
        // Drain the signalfd; the waitpid loop below finds every exited child.
        let mut info = [0u8; 128];
        // SAFETY: reading into a local buffer of the stated size.
        while unsafe { libc::read(self.sigchld.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) } > 0 {}
        loop {
            let mut status = 0;
            // SAFETY: status is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return Ok(());
            }
            if let Some(id) = self.running.remove(&pid) {
                self.groups.remove(&id);
                let (code, signal) = if libc::WIFEXITED(status) {
                    (Some(libc::WEXITSTATUS(status)), None)
                } else {
                    (None, Some(libc::WTERMSIG(status)))
                };
                self.send(&AgentMessage::Exited { id, code, signal }, &[])?;
            }
        }
    }

    /// Asks every process to stop, waits up to `grace`, then returns (PID 1's exit kills the rest).
    fn shutdown(&mut self, grace: Duration) {
        let signal = if grace.is_zero() { libc::SIGKILL } else { libc::SIGTERM };
        self.signal_all(signal);
        let deadline = Instant::now() + grace;
        while !self.running.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            let _ = self.reap();
        }
        self.signal_all(libc::SIGKILL);
    }

    fn signal_all(&self, signal: i32) {
        if self.isolated {
            // SAFETY: as PID 1 of its own pid namespace, kill(-1) reaches only this sandbox.
            unsafe { libc::kill(-1, signal) };
        } else {
            for pid in self.groups.values() {
                // SAFETY: kill on our own children's process groups.
                unsafe { libc::kill(-pid, signal) };
            }
        }
    }

    /// Starts a command ([`child`]). Returns its pid, and the PTY master when it has a terminal.
    fn spawn(&mut self, req: &SpawnRequest, passed: Vec<OwnedFd>) -> Result<(i32, Option<OwnedFd>), SpawnError> {
        let invalid = |what: &str| SpawnError::new(libc::EINVAL, format!("{what} contains a NUL byte"));
        if req.argv.is_empty() {
            return Err(SpawnError::new(libc::EINVAL, "empty command"));
        }
        let c_strings = |items: &[String], what: &str| -> Result<Vec<CString>, SpawnError> {
            items
                .iter()
                .map(|a| CString::new(a.as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|_| invalid(what))
        };
        let argv = c_strings(&req.argv, "an argument")?;
        let env = c_strings(&req.env, "the environment")?;
        let cwd = CString::new(req.cwd.as_bytes()).map_err(|_| invalid("the working directory"))?;
        let candidates = program_candidates(&req.argv[0], &req.env).map_err(|_| invalid("the command"))?;

        let (stdio, master): (Vec<OwnedFd>, Option<OwnedFd>) = match req.tty {
            Some((cols, rows)) => {
                let (master, slave) = open_pty(cols, rows).map_err(|e| {
                    SpawnError::new(
                        e.raw_os_error().unwrap_or(libc::EIO),
                        format!("cannot open a terminal: {e}"),
                    )
                })?;
                (vec![slave], Some(master))
            }
            None if passed.len() == 3 => (passed, None),
            None => {
                return Err(SpawnError::new(
                    libc::EINVAL,
                    "a command without a terminal needs three stdio descriptors",
                ))
            }
        };

        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        let launch = child::Launch {
            stdio: &stdio,
            argv: &argv_ptrs,
            env: &env_ptrs,
            candidates: &candidates,
            cwd: &cwd,
            fallback_cwd: &self.fallback_cwd,
            uid: req.uid,
            gid: req.gid,
        };
        let spawned = child::spawn(&mut self.child_stack, &launch);
        drop(stdio);
        match spawned {
            Ok(pid) => Ok((pid, master)),
            Err(child::Failed::Clone(errno)) => Err(SpawnError::new(errno, "clone")),
            Err(child::Failed::Child { pid, errno }) => {
                let mut status = 0;
                // SAFETY: reaping our own child, which has exited already.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                let message = match errno {
                    libc::ENOENT => format!("{}: executable file not found in $PATH", req.argv[0]),
                    libc::EACCES => format!("{}: permission denied", req.argv[0]),
                    _ => format!("{}: {}", req.argv[0], io::Error::from_raw_os_error(errno)),
                };
                Err(SpawnError::new(errno, message))
            }
        }
    }
}

/// Connects to `127.0.0.1:port` in this network namespace. Loopback connects finish at once
/// (accepted or refused), unless the server's backlog is full: then the kernel drops the SYN
/// and retries for minutes, so the wait is bounded, since the agent's one loop waits with it.
fn dial_loopback(port: u16) -> io::Result<OwnedFd> {
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let stream = std::net::TcpStream::connect_timeout(&addr, DIAL_TIMEOUT)?;
    Ok(OwnedFd::from(stream))
}

/// The longest the agent waits for a loopback connect.
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Paths to try for `program`: itself if it has a slash, else each `PATH` entry of the
/// command's own environment (the agent's environment is not the sandbox's).
fn program_candidates(program: &str, env: &[String]) -> Result<Vec<CString>, std::ffi::NulError> {
    if program.contains('/') {
        return Ok(vec![CString::new(program)?]);
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| CString::new(format!("{}/{program}", dir.trim_end_matches('/'))))
        .collect()
}

/// Opens a PTY pair in the sandbox's own devpts, with the given size.
fn open_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r/open follow their contracts; the name
    // buffer is NUL-terminated by ptsname_r; descriptors are owned right after creation.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        check(master, "posix_openpt")?;
        let master = OwnedFd::from_raw_fd(master);
        check(libc::grantpt(master.as_raw_fd()), "grantpt")?;
        check(libc::unlockpt(master.as_raw_fd()), "unlockpt")?;
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        check(slave, "open pty slave")?;
        let slave = OwnedFd::from_raw_fd(slave);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        Ok((master, slave))
    }
}

/// Without isolation (the test runtime) the agent still reaps orphans of its commands.
fn not_isolated() -> io::Result<()> {
    // SAFETY: prctl with constant arguments.
    check(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        "subreaper",
    )
}

/// Why a process could not start: the errno of the failed step, and a sentence for the user
/// (`docker exec`'s, for a missing program).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct SpawnError {
    errno: i32,
    message: String,
}

impl SpawnError {
    fn new(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno,
            message: message.into(),
        }
    }
}

/// Builds what does not depend on the service: cgroup namespace, the assembly's mounts, loopback.
fn assemble(assembly: &AssemblyPlan) -> io::Result<()> {
    // SAFETY: each call below is a plain syscall with valid, NUL-terminated arguments.
    unsafe {
        // The launcher put us in our cgroups already; now they look like the root.
        check(libc::unshare(libc::CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)")?;
        // Nothing we mount may propagate back to the host.
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            "make / private",
        )?;
    }
    mounts::apply(&mut LinuxSys, Path::new(&assembly.root), &assembly.mounts)?;
    loopback_up()
}

/// Finishes an assembled sandbox for its service: its mounts, host name, pivot_root, then the
/// lock-down.
fn finish_sandbox(root: &str, plan: &SetupPlan) -> io::Result<()> {
    mounts::apply(&mut LinuxSys, Path::new(root), &plan.mounts)?;
    let root = CString::new(root).map_err(|_| io::Error::other("bad root"))?;
    let hostname = CString::new(plan.hostname.as_bytes()).map_err(|_| io::Error::other("bad hostname"))?;
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        check(libc::sethostname(hostname.as_ptr(), plan.hostname.len()), "sethostname")?;
        // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
        // nothing of the host reachable.
        check(libc::chdir(root.as_ptr()), "chdir to the new root")?;
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as libc::c_int,
            "pivot_root",
        )?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH), "detach the old root")?;
        check(libc::chdir(c"/".as_ptr()), "chdir /")?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")?;
        for cap in 0..=63u32 {
            if !KEPT_CAPS.contains(&cap) {
                // Caps this kernel does not know fail with EINVAL: nothing to drop.
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
        }
    }
    seccomp::apply().map_err(io::Error::other)?;
    // Not dumpable: sandbox processes (same uid, no CAP_SYS_PTRACE) cannot open /proc/1/mem
    // or /proc/1/fd, so they cannot take over the agent's control channel.
    // SAFETY: prctl with constant arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }, "dumpable")?;
    Ok(())
}

/// Brings `lo` up in the sandbox's network namespace: the only interface it has.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket for the ioctl, an ifreq zeroed then named "lo", and ioctls
    // that read/write that ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(sock, "socket")?;
        let sock = OwnedFd::from_raw_fd(sock);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr),
            "SIOCGIFFLAGS",
        )?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_looked_up_in_the_commands_path() {
        let env = vec!["PATH=/opt/x/bin:/usr/bin".to_string()];
        let c = program_candidates("python3", &env).unwrap();
        assert_eq!(
            c,
            vec![
                CString::new("/opt/x/bin/python3").unwrap(),
                CString::new("/usr/bin/python3").unwrap()
            ]
        );
        assert_eq!(
            program_candidates("./run.sh", &env).unwrap(),
            vec![CString::new("./run.sh").unwrap()]
        );
    }
}
