//! The host's side of a running sandbox: the agent's control channel, process start, signals,
//! stop, and the async stdio of each process.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};

use super::ipc::{self, AgentMessage, HostMessage, SetupPlan, SpawnRequest};
use super::{Launched, Resources, RuntimeError};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// The sandbox went away first, so nobody knows.
    Lost,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User inside the sandbox.
    pub uid: u32,
    /// Group inside the sandbox.
    pub gid: u32,
    /// PTY size (columns, rows), when it gets a terminal.
    pub tty: Option<(u16, u16)>,
}

/// A started process.
#[derive(Debug)]
pub struct Process {
    /// Its id within the sandbox.
    pub id: u64,
    /// Its input.
    pub stdin: Input,
    /// Its output (everything, with a terminal).
    pub stdout: Output,
    /// Its error output; none with a terminal.
    pub stderr: Option<Output>,
    /// The terminal, for resizing.
    pub pty: Option<Arc<Pty>>,
    /// Resolves when it ends.
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Writes a process's stdin.
#[derive(Debug)]
pub enum Input {
    /// A pipe.
    Pipe(pipe::Sender),
    /// The terminal.
    Pty(Arc<Pty>),
}

impl Input {
    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Pipe(p) => tokio::io::AsyncWriteExt::write_all(p, data).await,
            Self::Pty(p) => p.write_all(data).await,
        }
    }
}

/// Reads a process's output.
#[derive(Debug)]
pub enum Output {
    /// A pipe.
    Pipe(pipe::Receiver),
    /// The terminal.
    Pty(Arc<Pty>),
}

impl Output {
    /// Reads some bytes; 0 at the end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Pipe(p) => tokio::io::AsyncReadExt::read(p, buf).await,
            Self::Pty(p) => p.read(buf).await,
        }
    }
}

/// The master side of a process's terminal.
#[derive(Debug)]
pub struct Pty {
    fd: AsyncFd<OwnedFd>,
}

impl Pty {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Self { fd: async_fd(fd)? })
    }

    /// Reads output. A closed slave reads as the end (the kernel says EIO).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: reading into a buffer of the stated length.
            match guard.try_io(|fd| cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` as typed input.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            // SAFETY: writing from a buffer of the stated length.
            match guard.try_io(|fd| cvt(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the foreground group.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ, &size) } as isize).map(drop)
    }
}

/// Registers an owned descriptor with the reactor.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open and always returns the same descriptor until dropped, and the
    // AsyncFd owns it for its whole life.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into())
}

fn cvt(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded; both descriptors are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Capacity of an output pipe: a flood then moves in reads of up to this much (the default
/// 64 KiB made frames of about 30 KiB), while a full pipe still stops the writer.
const OUTPUT_PIPE_BYTES: libc::c_int = 1 << 20;

/// A pipe for a process's output, grown to [`OUTPUT_PIPE_BYTES`] where the kernel allows.
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe_pair()?;
    // SAFETY: fcntl on a descriptor we own; a refusal (a lower pipe-max-size) keeps the default.
    unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETPIPE_SZ, OUTPUT_PIPE_BYTES) };
    Ok((read, write))
}

type SpawnReply = Result<(i32, Option<OwnedFd>), (i32, String)>;
type DialReply = Result<OwnedFd, i32>;

#[derive(Default)]
struct Waiters {
    spawns: HashMap<u64, oneshot::Sender<SpawnReply>>,
    dials: HashMap<u64, oneshot::Sender<DialReply>>,
    exits: HashMap<u64, oneshot::Sender<ExitStatus>>,
    /// False once the agent is gone: no new waiters may be added.
    open: bool,
}

/// A running sandbox, seen from the host.
pub struct Sandbox {
    /// Unique in this process, unlike a pid or an address, which later sandboxes may reuse.
    serial: u64,
    pid: i32,
    control: Arc<AsyncFd<OwnedFd>>,
    waiters: Arc<Mutex<Waiters>>,
    next_id: AtomicU64,
    exited: watch::Receiver<bool>,
    resources: Mutex<Option<Box<dyn Resources>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Longest wait for the agent to build the sandbox.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

impl Sandbox {
    /// Sends the setup plan to a launched agent and waits until it is ready.
    pub async fn start(launched: Launched, plan: SetupPlan) -> Result<Self, RuntimeError> {
        let Launched {
            pid,
            control,
            resources,
        } = launched;
        let (exited_tx, exited) = watch::channel(false);
        watch_exit(pid, exited_tx)?;
        let result = async {
            ipc::send(control.as_raw_fd(), &HostMessage::Setup(plan), &[])?;
            set_nonblocking(control.as_raw_fd())?;
            let control = Arc::new(async_fd(control)?);
            let reply = tokio::time::timeout(SETUP_TIMEOUT, recv_one(&control))
                .await
                .map_err(|_| RuntimeError::Setup("the sandbox did not become ready within 20 s".into()))??;
            match reply {
                Some(AgentMessage::Ready) => Ok(control),
                Some(AgentMessage::SetupFailed { message }) => Err(RuntimeError::Setup(message)),
                Some(other) => Err(RuntimeError::Setup(format!("unexpected first message {other:?}"))),
                None => Err(RuntimeError::Setup("the sandbox exited while starting".into())),
            }
        }
        .await;
        let control = match result {
            Ok(c) => c,
            Err(e) => {
                kill_and_reap(pid, exited).await;
                resources.release();
                return Err(e);
            }
        };
        let waiters = Arc::new(Mutex::new(Waiters {
            open: true,
            ..Default::default()
        }));
        tokio::spawn(read_agent(control.clone(), waiters.clone(), pid));
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            pid,
            control,
            waiters,
            next_id: AtomicU64::new(1),
            exited,
            resources: Mutex::new(Some(resources)),
        })
    }

    /// Whether the agent still runs.
    pub fn is_alive(&self) -> bool {
        !*self.exited.borrow()
    }

    /// Resolves when the sandbox is gone, for whatever reason.
    pub async fn wait_gone(&self) {
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|gone| *gone).await;
    }

    /// Processes the memory limit killed so far, when the backend tells.
    pub fn oom_kills(&self) -> Option<u64> {
        self.resources.lock().ok()?.as_ref()?.oom_kills()
    }

    /// Starts a process.
    pub async fn spawn(&self, spec: ProcessSpec) -> Result<Process, RuntimeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (spawn_tx, spawn_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        {
            let mut w = self.waiters.lock().map_err(|_| RuntimeError::Gone)?;
            if !w.open {
                return Err(RuntimeError::Gone);
            }
            w.spawns.insert(id, spawn_tx);
            w.exits.insert(id, exit_tx);
        }
        let request = SpawnRequest {
            id,
            argv: spec.argv,
            env: spec.env,
            cwd: spec.cwd,
            uid: spec.uid,
            gid: spec.gid,
            tty: spec.tty,
        };
        let result = if spec.tty.is_some() {
            self.send(&HostMessage::Spawn(request), &[]).map(|()| None)
        } else {
            let (in_r, in_w) = pipe_pair()?;
            let (out_r, out_w) = output_pipe()?;
            let (err_r, err_w) = output_pipe()?;
            self.send(
                &HostMessage::Spawn(request),
                &[in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            )
            .map(|()| Some((in_w, out_r, err_r)))
        };
        let pipes = match result {
            Ok(p) => p,
            Err(e) => {
                self.forget(id);
                return Err(e);
            }
        };
        let reply = match spawn_rx.await {
            Ok(reply) => reply,
            Err(_) => return Err(RuntimeError::Gone),
        };
        match reply {
            Err((errno, message)) => {
                self.forget(id);
                Err(RuntimeError::Spawn { errno, message })
            }
            Ok((_pid, master)) => {
                if let Some((in_w, out_r, err_r)) = pipes {
                    Ok(Process {
                        id,
                        stdin: Input::Pipe(pipe::Sender::from_owned_fd(in_w)?),
                        stdout: Output::Pipe(pipe::Receiver::from_owned_fd(out_r)?),
                        stderr: Some(Output::Pipe(pipe::Receiver::from_owned_fd(err_r)?)),
                        pty: None,
                        exit: exit_rx,
                    })
                } else {
                    let master =
                        master.ok_or_else(|| RuntimeError::Protocol("no terminal came with the process".into()))?;
                    let pty = Arc::new(Pty::new(master)?);
                    Ok(Process {
                        id,
                        stdin: Input::Pty(pty.clone()),
                        stdout: Output::Pty(pty.clone()),
                        stderr: None,
                        pty: Some(pty),
                        exit: exit_rx,
                    })
                }
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut w) = self.waiters.lock() {
            w.spawns.remove(&id);
            w.exits.remove(&id);
        }
    }

    fn send(&self, message: &HostMessage, fds: &[RawFd]) -> Result<(), RuntimeError> {
        ipc::send(self.control.as_raw_fd(), message, fds).map_err(|e| match e.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => RuntimeError::Gone,
            _ => e.into(),
        })
    }

    /// This sandbox's number, unique in this process.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// A TCP connection to `127.0.0.1:port` inside the sandbox (for exposed ports), made by the
    /// agent in the sandbox's network namespace. `Err(ECONNREFUSED)` when nothing listens.
    pub async fn dial(&self, port: u16) -> Result<tokio::net::TcpStream, RuntimeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiters.lock().map_err(|_| RuntimeError::Gone)?;
            if !w.open {
                return Err(RuntimeError::Gone);
            }
            w.dials.insert(id, tx);
        }
        if let Err(e) = self.send(&HostMessage::Dial { id, port }, &[]) {
            if let Ok(mut w) = self.waiters.lock() {
                w.dials.remove(&id);
            }
            return Err(e);
        }
        match rx.await.map_err(|_| RuntimeError::Gone)? {
            Ok(fd) => {
                let std = std::net::TcpStream::from(fd);
                std.set_nonblocking(true)?;
                // A sandbox that took over its agent could hand back any descriptor; only a
                // connected TCP socket is proxied.
                std.peer_addr()
                    .map_err(|_| RuntimeError::Protocol("the dialed socket is not connected".into()))?;
                Ok(tokio::net::TcpStream::from_std(std)?)
            }
            Err(errno) => Err(RuntimeError::Io(io::Error::from_raw_os_error(errno))),
        }
    }

    /// Sends `signal` to process `id` and its group.
    pub fn signal(&self, id: u64, signal: i32) {
        let _ = self.send(&HostMessage::Signal { id, signal }, &[]);
    }

    /// Stops the sandbox: SIGTERM to everything, SIGKILL after `grace`, then frees its
    /// resources. Idempotent.
    pub async fn stop(&self, grace: Duration) {
        if self.is_alive() {
            let _ = self.send(
                &HostMessage::Shutdown {
                    grace_ms: grace.as_millis() as u64,
                },
                &[],
            );
            let mut rx = self.exited.clone();
            if tokio::time::timeout(grace + Duration::from_secs(1), rx.wait_for(|gone| *gone))
                .await
                .is_err()
            {
                kill_and_reap(self.pid, self.exited.clone()).await;
            }
        }
        let resources = self.resources.lock().ok().and_then(|mut r| r.take());
        if let Some(r) = resources {
            let _ = tokio::task::spawn_blocking(move || r.release()).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.is_alive() {
            // SAFETY: kill on the agent's pid, which we have not reaped (the exit watcher reaps it).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        if let Some(r) = self.resources.get_mut().ok().and_then(|r| r.take()) {
            // Releasing unmounts; it must not block an async worker.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                r.release();
            });
        }
    }
}

async fn kill_and_reap(pid: i32, mut exited: watch::Receiver<bool>) {
    // SAFETY: kill on the agent's pid; it is reaped only by its exit watcher.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|gone| *gone)).await;
}

/// Reaps the agent when it exits, through a pidfd, and flips `tx`.
fn watch_exit(pid: i32, tx: watch::Sender<bool>) -> io::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor.
    let fd = async_fd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })?;
    tokio::spawn(async move {
        let _ = fd.readable().await;
        let mut status = 0;
        // SAFETY: reaping our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = tx.send(true);
    });
    Ok(())
}

async fn recv_one(control: &AsyncFd<OwnedFd>) -> Result<Option<AgentMessage>, RuntimeError> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let mut guard = control.readable().await?;
        match guard.try_io(|fd| ipc::recv::<AgentMessage>(fd.as_raw_fd(), &mut buf)) {
            Ok(Ok(message)) => return Ok(message.map(|(m, _)| m)),
            Ok(Err(e)) => return Err(e.into()),
            Err(_would_block) => continue,
        }
    }
}

/// Routes agent messages to the waiting spawns and exits, until the agent goes away. Whatever
/// still waits then learns that its process is lost.
async fn read_agent(control: Arc<AsyncFd<OwnedFd>>, waiters: Arc<Mutex<Waiters>>, pid: i32) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let Ok(mut guard) = control.readable().await else { break };
        let (message, mut fds) = match guard.try_io(|fd| ipc::recv::<AgentMessage>(fd.as_raw_fd(), &mut buf)) {
            Err(_would_block) => continue,
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                // The agent is ours, but sandbox code may have subverted it: stop listening and
                // end the sandbox rather than trust it further.
                tracing::warn!(pid, "dropping a sandbox whose agent sent a bad message: {e}");
                // SAFETY: kill on the agent's pid.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
        };
        let Ok(mut w) = waiters.lock() else { break };
        match message {
            AgentMessage::Spawned { id, pid } => {
                if let Some(tx) = w.spawns.remove(&id) {
                    let _ = tx.send(Ok((pid, fds.pop())));
                }
            }
            AgentMessage::SpawnFailed { id, errno, message } => {
                if let Some(tx) = w.spawns.remove(&id) {
                    let _ = tx.send(Err((errno, message)));
                }
            }
            AgentMessage::Dialed { id } => {
                if let (Some(tx), Some(fd)) = (w.dials.remove(&id), fds.pop()) {
                    let _ = tx.send(Ok(fd));
                }
            }
            AgentMessage::DialFailed { id, errno } => {
                if let Some(tx) = w.dials.remove(&id) {
                    let _ = tx.send(Err(errno));
                }
            }
            AgentMessage::Exited { id, code, signal } => {
                if let Some(tx) = w.exits.remove(&id) {
                    let status = match (code, signal) {
                        (Some(c), _) => ExitStatus::Code(c),
                        (None, Some(s)) => ExitStatus::Signal(s),
                        (None, None) => ExitStatus::Lost,
                    };
                    let _ = tx.send(status);
                }
            }
            AgentMessage::Assembled | AgentMessage::Ready | AgentMessage::SetupFailed { .. } => {}
        }
    }
    if let Ok(mut w) = waiters.lock() {
        w.open = false;
        w.spawns.clear();
        w.dials.clear();
        for (_, tx) in w.exits.drain() {
            let _ = tx.send(ExitStatus::Lost);
        }
    }
}
