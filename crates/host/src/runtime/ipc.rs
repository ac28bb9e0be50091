//! The control channel between the host and a sandbox's agent (its PID 1).
//!
//! A `SOCK_SEQPACKET` socket pair: one JSON message per packet, with file descriptors passed
//! alongside (`SCM_RIGHTS`). The host passes pipe ends for a command's stdio; the agent passes
//! back the master side of a PTY it opened inside the sandbox.
//!
//! The host treats everything the agent says as untrusted: sandbox code may have taken the agent
//! over. Messages are bounded, parsed without panics, and only ever describe that one sandbox.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::mounts::MountOp;

/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 4 << 20;
/// Most descriptors passed with one message.
const MAX_FDS: usize = 4;
/// The descriptor number the agent finds its end of the channel at.
pub const AGENT_FD: RawFd = 3;
/// Environment variable that tells the host binary to run as an agent.
pub const AGENT_ENV: &str = "FLANKBOX_AGENT";

/// Host → agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HostMessage {
    /// Sent by an isolating backend as it prepares the sandbox, before any service is known:
    /// build most of the root. Answered with `Assembled` or `SetupFailed`.
    Assemble(AssemblyPlan),
    /// Finish the sandbox for its service. Answered with `Ready` or `SetupFailed`.
    Setup(SetupPlan),
    /// Start a process. Without a PTY, its stdin, stdout and stderr come as three descriptors.
    Spawn(SpawnRequest),
    /// Send a signal to a process's group.
    Signal {
        /// The process.
        id: u64,
        /// The signal number.
        signal: i32,
    },
    /// Connect to `127.0.0.1:port` inside the sandbox and hand the socket over: the only way
    /// in, for exposed ports. The sandbox has no other network.
    Dial {
        /// Chosen by the host.
        id: u64,
        /// Port inside the sandbox.
        port: u16,
    },
    /// Stop everything: SIGTERM to all, then exit after `grace_ms` at the latest.
    Shutdown {
        /// Time allowed for a clean exit.
        grace_ms: u64,
    },
}

/// Agent → host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AgentMessage {
    /// The root is assembled; the agent waits for `Setup`.
    Assembled,
    /// The sandbox is built and waits for commands.
    Ready,
    /// The sandbox could not be built.
    SetupFailed {
        /// Why.
        message: String,
    },
    /// A process started. With a PTY, its master comes as one descriptor.
    Spawned {
        /// The request id.
        id: u64,
        /// Its pid inside the sandbox.
        pid: i32,
    },
    /// A process could not start.
    SpawnFailed {
        /// The request id.
        id: u64,
        /// errno of the failed step.
        errno: i32,
        /// What failed, for the user.
        message: String,
    },
    /// A dial connected; the socket comes as one descriptor.
    Dialed {
        /// The request id.
        id: u64,
    },
    /// A dial failed (ECONNREFUSED: nothing listens).
    DialFailed {
        /// The request id.
        id: u64,
        /// errno.
        errno: i32,
    },
    /// A process ended.
    Exited {
        /// The request id.
        id: u64,
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal, when a signal killed it.
        signal: Option<i32>,
    },
}

/// The part of the sandbox that does not depend on its service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssemblyPlan {
    /// Host directory (empty) where the new root is assembled.
    pub root: String,
    /// Mount steps, in order, with targets relative to `root`.
    pub mounts: Vec<MountOp>,
}

/// How the agent finishes the sandbox for its service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupPlan {
    /// Finish the assembled root, pivot_root and lock down. Off only for the unisolated test
    /// runtime, which sends no `Assemble`.
    pub isolate: bool,
    /// The service's mount steps, after the assembly's.
    pub mounts: Vec<MountOp>,
    /// Host name inside.
    pub hostname: String,
    /// Working directory for processes when isolation is off.
    pub fallback_cwd: String,
}

/// A process to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// Chosen by the host, unique per sandbox.
    pub id: u64,
    /// Program and arguments; the program is looked up in `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User inside the sandbox.
    pub uid: u32,
    /// Group inside the sandbox.
    pub gid: u32,
    /// Allocate a PTY of this size (columns, rows).
    pub tty: Option<(u16, u16)>,
}

/// Sends `message` with `fds` attached.
pub fn send<M: Serialize>(sock: RawFd, message: &M, fds: &[RawFd]) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_MESSAGE {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "control message too large"));
    }
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = [0u8; cmsg_space(MAX_FDS)];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let fd_bytes = std::mem::size_of_val(fds);
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // SAFETY: msg_control points at a buffer of at least CMSG_SPACE(fd_bytes) bytes, so the
        // first header and its data fit; the copy writes exactly fd_bytes into CMSG_DATA.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fd_bytes);
        }
    }
    loop {
        // SAFETY: msg and the buffers it points at live across the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one message into `buf`. Returns `Ok(None)` at end of stream.
pub fn recv<M: for<'de> Deserialize<'de>>(sock: RawFd, buf: &mut [u8]) -> io::Result<Option<(M, Vec<OwnedFd>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u8; cmsg_space(MAX_FDS)];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    let n = loop {
        // SAFETY: msg points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let fds = take_fds(&msg);
    if n == 0 {
        return Ok(None);
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "control message too large"));
    }
    let message = serde_json::from_slice(&buf[..n])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad control message: {e}")))?;
    Ok(Some((message, fds)))
}

/// [`recv`] on a blocking socket, waiting at most `timeout` for the message to arrive.
pub fn recv_within<M: for<'de> Deserialize<'de>>(
    sock: RawFd,
    buf: &mut [u8],
    timeout: std::time::Duration,
) -> io::Result<Option<(M, Vec<OwnedFd>)>> {
    let mut pollfd = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pollfd, 1, ms) } {
            0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "no message in time")),
            n if n > 0 => return recv(sock, buf),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Takes ownership of every descriptor in `msg`'s control data.
fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control with well-formed headers up to msg_controllen; the
    // CMSG_* macros walk them without reading past it, and each SCM_RIGHTS payload holds whole
    // descriptors that the kernel just installed for us, so owning them is sound.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    fds
}

const fn cmsg_space(fds: usize) -> usize {
    // CMSG_SPACE is not const; this is its value on Linux (header 16 bytes, 8-byte alignment).
    16 + (fds * std::mem::size_of::<RawFd>()).next_multiple_of(8)
}

/// A connected `SOCK_SEQPACKET` pair, close-on-exec, with large buffers so big spawns fit.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both are fresh descriptors we own.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&pair.0, &pair.1] {
        let size: libc::c_int = (MAX_MESSAGE * 2) as libc::c_int;
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            // SAFETY: setsockopt reads size_of::<c_int>() bytes from &size. The FORCE variant
            // needs CAP_NET_ADMIN; without it the plain one sets what the system allows.
            unsafe {
                let p = (&size as *const libc::c_int).cast();
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                if libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, force, p, len) != 0 {
                    libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, plain, p, len);
                }
            }
        }
    }
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn messages_and_descriptors_cross_the_pair() {
        let (a, b) = socket_pair().unwrap();
        let (r, w) = std::io::pipe().unwrap();
        let msg = HostMessage::Signal { id: 7, signal: 9 };
        send(a.as_raw_fd(), &msg, &[w.as_raw_fd()]).unwrap();
        drop(w);
        let mut buf = vec![0; 1024];
        let (got, fds): (HostMessage, _) = recv(b.as_raw_fd(), &mut buf).unwrap().unwrap();
        assert!(matches!(got, HostMessage::Signal { id: 7, signal: 9 }));
        assert_eq!(fds.len(), 1);
        let mut writer = std::fs::File::from(fds.into_iter().next().unwrap());
        writer.write_all(b"through").unwrap();
        drop(writer);
        let mut s = String::new();
        let mut r = r;
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (a, b) = socket_pair().unwrap();
        // SAFETY: writing a byte slice to a socket we own.
        unsafe { libc::send(a.as_raw_fd(), b"{nope".as_ptr().cast(), 5, 0) };
        let mut buf = vec![0; 64];
        let err = recv::<AgentMessage>(b.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_wait_for_a_message_ends() {
        let (a, b) = socket_pair().unwrap();
        let mut buf = vec![0; 64];
        let quick = std::time::Duration::from_millis(20);
        let err = recv_within::<AgentMessage>(b.as_raw_fd(), &mut buf, quick).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        send(a.as_raw_fd(), &AgentMessage::Assembled, &[]).unwrap();
        let got = recv_within::<AgentMessage>(b.as_raw_fd(), &mut buf, quick).unwrap();
        assert!(matches!(got, Some((AgentMessage::Assembled, _))));
        drop(a);
        assert!(recv_within::<AgentMessage>(b.as_raw_fd(), &mut buf, quick)
            .unwrap()
            .is_none());
    }

    #[test]
    fn end_of_stream_is_none() {
        let (a, b) = socket_pair().unwrap();
        drop(a);
        let mut buf = vec![0; 64];
        assert!(recv::<AgentMessage>(b.as_raw_fd(), &mut buf).unwrap().is_none());
    }
}
