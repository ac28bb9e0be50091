//! The live tries only the real machine makes: a user namespace with its uid map, and the
//! sandbox's seccomp filters in a child.

use super::*;

/// Makes a pipe whose both ends close on exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded; both descriptors are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reaps `pid` and says whether it exited with 0.
fn reap(pid: i32) -> Result<(), String> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("waitpid: {e}"));
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("the child ended with status {status:#x}"))
    }
}

/// The live user namespace try: clone a child into a new user namespace, as the host clones its
/// agents, write its uid and gid maps to a sandbox range, and let it exit. About a millisecond.
pub(super) fn user_namespace_try() -> Result<(), String> {
    let (go_r, go_w) = pipe()?;
    // SAFETY: clone with a null stack has fork semantics; the child only makes raw syscalls and
    // exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!("clone(CLONE_NEWUSER): {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: the freshly cloned child: raw syscalls on inherited descriptors, then _exit.
        unsafe {
            libc::close(go_w.as_raw_fd());
            let mut byte = 0u8;
            let n = libc::read(go_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            libc::_exit(if n == 1 { 0 } else { 1 });
        }
    }
    let pid = pid as i32;
    drop(go_r);
    let map = format!("0 {UID_BASE} {UID_RANGE}\n");
    let written = ["uid_map", "gid_map"].iter().try_for_each(|file| {
        fs::write(format!("/proc/{pid}/{file}"), &map).map_err(|e| format!("writing {file}: {e}"))
    });
    if written.is_ok() {
        // SAFETY: writing one byte from a local to our pipe.
        unsafe { libc::write(go_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
    // Closing the pipe without a byte tells the child to give up.
    drop(go_w);
    let reaped = reap(pid);
    written?;
    reaped
}

/// The live seccomp try: a forked child sets `no_new_privs`, installs the sandbox's filters and
/// expects `unshare` to fail with EPERM.
pub(super) fn seccomp_try() -> Result<(), String> {
    let programs = crate::runtime::seccomp::programs()?;
    // SAFETY: fork; the child only makes raw syscalls (the filters are built already) and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let mut code = 0;
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            code = 2;
        }
        for program in &programs {
            if code == 0 && seccompiler::apply_filter(program).is_err() {
                code = 3;
            }
        }
        if code == 0 {
            // SAFETY: unshare takes a flag word; the filter must make it fail with EPERM.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
            if rc != -1 || io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
                code = 4;
            }
        }
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    reap(pid).map_err(|e| match e.as_str() {
        "the child ended with status 0x200" => "prctl(PR_SET_NO_NEW_PRIVS) failed".into(),
        "the child ended with status 0x300" => "seccomp(SECCOMP_SET_MODE_FILTER) failed".into(),
        "the child ended with status 0x400" => "a filtered unshare was not denied".into(),
        _ => e,
    })
}
