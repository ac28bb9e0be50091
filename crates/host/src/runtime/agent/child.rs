//! Starting a command: `clone(CLONE_VM | CLONE_VFORK)` onto a stack of its own, the child's
//! setup, then `execve`.
//!
//! The child shares the agent's memory until it execs, as in `posix_spawn`, so nothing is
//! copied: a `fork` copied the agent's page tables and then tore them down at the exec, which
//! made the start of a command about 0.3 ms slower here. The agent is suspended until the child
//! has exec'd or exited, so the child can leave the errno of a failed step in shared memory
//! instead of a pipe. The child makes raw system calls only: no allocation, no locks, no libc
//! wrapper that would look at other threads.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's stack; it only sets up and execs.
const STACK_BYTES: usize = 256 << 10;

/// A stack for the child, with a guard page below it so an overflow faults instead of writing
/// into the agent's memory. Reused: the child is done with it when `clone` returns.
pub(super) struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    pub(super) fn new() -> io::Result<Self> {
        let len = STACK_BYTES + page_size();
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base, len };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which is page-aligned and so 16-byte aligned.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this value owns.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf with a constant name.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// What the child needs, all prepared by the agent before the clone.
pub(super) struct Launch<'a> {
    /// The terminal (one descriptor) or stdin, stdout and stderr (three).
    pub stdio: &'a [OwnedFd],
    /// NULL-terminated.
    pub argv: &'a [*const libc::c_char],
    /// NULL-terminated.
    pub env: &'a [*const libc::c_char],
    /// Paths to try for the program, in order.
    pub candidates: &'a [CString],
    pub cwd: &'a CString,
    /// Where to start when `cwd` does not exist.
    pub fallback_cwd: &'a CString,
    pub uid: u32,
    pub gid: u32,
}

/// The child's argument: the launch, and where it leaves the errno of a failed step.
struct Shared<'a> {
    launch: &'a Launch<'a>,
    failed: AtomicI32,
}

/// Why a command did not start.
pub(super) enum Failed {
    /// `clone` itself failed, with this errno: there is no child.
    Clone(i32),
    /// A step before the exec, or the exec, failed with `errno`; the child has exited (127)
    /// and is still to be reaped.
    Child { pid: i32, errno: i32 },
}

/// Starts the command; its pid once it has exec'd.
pub(super) fn spawn(stack: &mut ChildStack, launch: &Launch<'_>) -> Result<i32, Failed> {
    let shared = Shared {
        launch,
        failed: AtomicI32::new(0),
    };
    // SAFETY: CLONE_VM | CLONE_VFORK suspends this (single-threaded) agent until the child has
    // exec'd or exited, so `shared` and the stack outlive the child's use of them, and the
    // stack is used by nobody else meanwhile. `child_main` only makes raw system calls.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&shared).cast_mut().cast(),
        )
    };
    if pid < 0 {
        return Err(Failed::Clone(super::errno()));
    }
    match shared.failed.load(Ordering::SeqCst) {
        0 => Ok(pid),
        errno => Err(Failed::Child { pid, errno }),
    }
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` that `spawn` keeps alive while it is suspended.
    let shared = unsafe { &*arg.cast::<Shared<'_>>() };
    let errno = setup_and_exec(shared.launch);
    shared.failed.store(errno, Ordering::SeqCst);
    // SAFETY: leaving the child without running anything of the agent's.
    unsafe { libc::_exit(127) }
}

/// The child's side: default signals, a session, stdio, identity, directory, then the exec.
/// Returns only on failure, with the errno.
fn setup_and_exec(l: &Launch<'_>) -> i32 {
    // SAFETY: plain system calls on values the child owns or the agent lent it; the shared
    // memory is only read (and errno written, which the agent does not read meanwhile).
    unsafe {
        // Dispositions were copied (no CLONE_SIGHAND): reset them, then unblock, so no handler
        // of the agent's could run here.
        for sig in [libc::SIGPIPE, libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::setsid();
        if let [tty] = l.stdio {
            libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(tty.as_raw_fd(), fd);
            }
        } else {
            // Move the passed descriptors above 2 first, so one dup2 cannot clobber another.
            let mut high = [-1; 3];
            for (slot, fd) in high.iter_mut().zip(l.stdio) {
                *slot = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10);
            }
            for (target, fd) in high.iter().enumerate() {
                if *fd < 0 || libc::dup2(*fd, target as RawFd) < 0 {
                    return super::errno();
                }
            }
        }
        // Raw calls: glibc's wrappers would signal the agent's other threads, were there any.
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0 && super::errno() != libc::EPERM
        {
            return super::errno();
        }
        if libc::syscall(libc::SYS_setresgid, l.gid, l.gid, l.gid) != 0
            || libc::syscall(libc::SYS_setresuid, l.uid, l.uid, l.uid) != 0
        {
            return super::errno();
        }
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        if libc::chdir(l.cwd.as_ptr()) != 0 {
            libc::chdir(l.fallback_cwd.as_ptr());
        }
        let mut last = libc::ENOENT;
        for path in l.candidates {
            libc::execve(path.as_ptr(), l.argv.as_ptr(), l.env.as_ptr());
            let e = super::errno();
            // Keep looking on "not here"; remember a more telling error (e.g. EACCES).
            if e != libc::ENOENT && e != libc::ENOTDIR {
                last = e;
            }
        }
        last
    }
}
