//! ext4 filesystem images on loop devices: the size cap for ephemeral storage and volumes.
//!
//! The host's ext4 has no quotas, so a size cap needs a filesystem of that size. Images are
//! sparse files: a 10 GiB volume costs only what is written to it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
/// Detach the device when its last user (the mount) goes.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// The `PATH` `mkfs.ext4` is looked up in, whatever the host's own `PATH` is (`doctor` looks in
/// the same places).
pub const TOOL_PATH: &str = "/usr/sbin:/sbin:/usr/bin:/bin";

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Whether the image gets a journal: volumes do (they outlive crashes), ephemeral areas don't.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// With journal.
    On,
    /// Without.
    Off,
}

/// Creates a sparse image of `size_mb` MB with an ext4 filesystem whose root belongs to
/// `owner` (a host uid, and the same gid).
pub fn create_image(path: &Path, size_mb: u64, owner: u32, journal: Journal) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file = File::create(path)?;
    file.set_len(size_mb * 1024 * 1024)?;
    drop(file);
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-m", "0"]);
    let extended = format!("root_owner={owner}:{owner},lazy_itable_init=1,lazy_journal_init=1,nodiscard");
    cmd.args(["-E", &extended]);
    if journal == Journal::Off {
        cmd.args(["-O", "^has_journal"]);
    }
    let out = cmd.arg(path).env("PATH", TOOL_PATH).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("mkfs.ext4 (e2fsprogs) is needed for sized storage: {e}"),
        )
    })?;
    if !out.status.success() {
        let _ = fs::remove_file(path);
        return Err(io::Error::other(format!(
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Mounts `image` at `target` through a loop device that detaches itself on unmount.
///
/// An image must never be mounted through two loop devices at once: that would be two ext4
/// instances writing one disk. If a loop device already serves it (say, a sandbox that is still
/// going away holds a lazily unmounted volume), that device is mounted again, which shares its
/// filesystem instance.
pub fn mount_image(image: &Path, target: &Path) -> io::Result<()> {
    let mut last = io::Error::other("no loop device");
    for _ in 0..16 {
        if let Some(device) = device_for(image) {
            match mount_ext4(&device, target) {
                Ok(()) => return Ok(()),
                // The device went away between the lookup and the mount: look again.
                Err(e) => {
                    last = e;
                    continue;
                }
            }
        }
        match attach_new(image, target) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The loop device whose backing file is `image`, if any.
pub fn device_for(image: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let want = fs::metadata(image).ok()?;
    for entry in fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let Ok(meta) = fs::metadata(backing.trim_end()) else {
            continue;
        };
        if meta.dev() == want.dev() && meta.ino() == want.ino() {
            return Some(PathBuf::from(format!("/dev/{name}")));
        }
    }
    None
}

fn attach_new(image: &Path, target: &Path) -> io::Result<()> {
    let control = OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    let backing = OpenOptions::new().read(true).write(true).open(image)?;
    let mut last = io::Error::other("no free loop device");
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let device = device_node(n as u32)?;
        let dev = OpenOptions::new().read(true).write(true).open(&device)?;
        // SAFETY: LoopConfig is plain data; zeroed is a valid empty configuration.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        let name = image.to_string_lossy();
        let len = name.len().min(63);
        config.info.lo_file_name[..len].copy_from_slice(&name.as_bytes()[..len]);
        // SAFETY: LOOP_CONFIGURE reads a loop_config from the pointer.
        if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config) } != 0 {
            last = io::Error::last_os_error();
            // Another process took this device between GET_FREE and CONFIGURE: try the next.
            if last.raw_os_error() == Some(libc::EBUSY) {
                continue;
            }
            return Err(last);
        }
        return match mount_ext4(&device, target) {
            Ok(()) => Ok(()),
            Err(e) => {
                // SAFETY: LOOP_CLR_FD takes no argument.
                unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD) };
                Err(e)
            }
        };
    }
    Err(last)
}

fn device_node(n: u32) -> io::Result<PathBuf> {
    let path = PathBuf::from(format!("/dev/loop{n}"));
    if !path.exists() {
        let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: mknod of a block device node with a NUL-terminated path; devtmpfs usually made
        // it already, this covers a static /dev.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o660, libc::makedev(7, n)) };
        if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(path)
}

fn mount_ext4(device: &Path, target: &Path) -> io::Result<()> {
    let dev = cstr(device)?;
    let dir = cstr(target)?;
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            dev.as_ptr(),
            dir.as_ptr(),
            c"ext4".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn cstr(p: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(io::Error::other)
}

/// Unmounts `target`. A busy filesystem (a sandbox still holds it) is detached lazily; it goes
/// when its last user does.
pub fn unmount(target: &Path) -> io::Result<()> {
    let dir = cstr(target)?;
    // SAFETY: NUL-terminated path.
    if unsafe { libc::umount2(dir.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EBUSY) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(dir.as_ptr(), libc::MNT_DETACH) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()), // not mounted
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether something is mounted exactly at `target` in the host's mount namespace.
pub fn is_mounted(target: &Path) -> bool {
    let Ok(target) = target.canonicalize() else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| {
        line.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(target.to_string_lossy().as_ref())
    })
}

fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Gives every file under `root` owned by the uid/gid range starting at `from` to the range
/// starting at `to` (a volume moving to a sandbox with another uid range). Symlinks are not
/// followed.
pub fn shift_ownership(root: &Path, from: u32, to: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let shift = |id: u32| {
        if (from..from.saturating_add(65536)).contains(&id) {
            id - from + to
        } else {
            id
        }
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        std::os::unix::fs::lchown(&path, Some(shift(meta.uid())), Some(shift(meta.gid())))?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
