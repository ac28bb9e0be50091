//! The sandbox's filesystem as data: a list of mount steps built by the host (a pure function,
//! tested without privileges) and carried out by the agent through the [`Sys`] trait (faked in
//! tests, real syscalls inside the sandbox).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One step of building the root. Paths named `target`, `path` and `link` are absolute paths
/// *inside* the sandbox; `source` paths are host paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    /// A tmpfs.
    Tmpfs {
        /// Where.
        target: String,
        /// Size cap in bytes.
        size_bytes: u64,
        /// Mode of its root directory.
        mode: u32,
        /// Mount read-only (used to hide host directories).
        readonly: bool,
    },
    /// A host directory or file, bound in.
    Bind {
        /// Host path.
        source: String,
        /// Where.
        target: String,
        /// Make the bind read-only.
        readonly: bool,
    },
    /// A directory and its parents.
    Mkdir {
        /// Where.
        path: String,
        /// Mode.
        mode: u32,
    },
    /// An empty file to bind a device or a mask onto.
    Touch {
        /// Where.
        path: String,
    },
    /// A symbolic link at `link` pointing to `target`.
    Symlink {
        /// The link's contents.
        target: String,
        /// Where.
        link: String,
    },
    /// procfs of the sandbox's pid namespace.
    Proc {
        /// Where.
        target: String,
    },
    /// A private devpts instance.
    Devpts {
        /// Where.
        target: String,
    },
    /// Hide a file under `/dev/null`, if it exists.
    MaskFile {
        /// Where.
        target: String,
    },
    /// Make an existing path read-only by binding it onto itself, if it exists.
    ReadonlySelf {
        /// Where.
        target: String,
    },
    /// Make the root mount read-only. Always last.
    RootReadonly,
}

/// What the sandbox's root is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRoot {
    /// The host's `/usr` read-only with a prepared, trimmed `/etc`, on an empty tmpfs root.
    HostView {
        /// Host `/usr`.
        usr: PathBuf,
        /// The prepared `/etc`.
        etc: PathBuf,
        /// Sandbox paths under `/usr` to hide (e.g. `/usr/local`).
        hidden: Vec<String>,
    },
    /// A complete root filesystem directory (e.g. made with debootstrap), bound read-only.
    Dir(PathBuf),
}

/// Writable paths of a host-view sandbox, each a directory of the ephemeral filesystem, and
/// their modes. Everything else is read-only.
pub const WRITABLE_DIRS: &[(&str, u32)] = &[
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("workspace", 0o755),
    ("var", 0o755),
    ("run", 0o755),
    ("opt", 0o755),
    ("srv", 0o755),
    ("mnt", 0o755),
];

/// Writable paths of a directory-image sandbox (the image's own `/var` etc. stay visible).
const DIR_IMAGE_WRITABLE: &[&str] = &["tmp", "root", "home", "workspace", "run"];

/// The directories a directory image needs for mounts. The sandbox cannot make them: the image
/// belongs to the host's root, no user of the sandbox's. The host adds the missing ones
/// ([`super::images::ImageCatalog::prepare`]).
pub fn dir_image_mount_points() -> impl Iterator<Item = &'static str> {
    ["proc", "dev"].into_iter().chain(DIR_IMAGE_WRITABLE.iter().copied())
}

/// Device nodes bound from the host.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// procfs files that leak host information or control the host, hidden as Docker does.
const PROC_MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
];
/// procfs paths made read-only.
const PROC_READONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
    "/proc/asound",
];

fn host_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The first part of the mount plan: the steps that depend only on the image and on
/// `ephemeral` (the host directory of the mounted ephemeral filesystem, one subdirectory per
/// writable path, see [`WRITABLE_DIRS`]). A warm sandbox has both before any service takes it,
/// so its agent carries these out ahead of time: nearly all of the plan.
pub fn plan_prepared(image: &ImageRoot, ephemeral: &Path) -> Vec<MountOp> {
    let mut ops = Vec::new();
    let s = host_path;
    let writable: Vec<&str> = match image {
        ImageRoot::HostView { usr, etc, hidden } => {
            ops.push(MountOp::Tmpfs {
                target: "/".into(),
                size_bytes: 1 << 20,
                mode: 0o755,
                readonly: false,
            });
            for dir in ["/usr", "/etc", "/proc", "/dev"] {
                ops.push(MountOp::Mkdir {
                    path: dir.into(),
                    mode: 0o755,
                });
            }
            for (name, _) in WRITABLE_DIRS {
                ops.push(MountOp::Mkdir {
                    path: format!("/{name}"),
                    mode: 0o755,
                });
            }
            for name in ["bin", "lib", "lib64", "sbin"] {
                ops.push(MountOp::Symlink {
                    target: format!("usr/{name}"),
                    link: format!("/{name}"),
                });
            }
            ops.push(MountOp::Bind {
                source: s(usr),
                target: "/usr".into(),
                readonly: true,
            });
            ops.push(MountOp::Bind {
                source: s(etc),
                target: "/etc".into(),
                readonly: true,
            });
            for path in hidden {
                ops.push(MountOp::Tmpfs {
                    target: path.clone(),
                    size_bytes: 4096,
                    mode: 0o755,
                    readonly: true,
                });
            }
            WRITABLE_DIRS.iter().map(|(name, _)| *name).collect()
        }
        ImageRoot::Dir(dir) => {
            ops.push(MountOp::Bind {
                source: s(dir),
                target: "/".into(),
                readonly: false,
            });
            for name in dir_image_mount_points() {
                ops.push(MountOp::Mkdir {
                    path: format!("/{name}"),
                    mode: 0o755,
                });
            }
            DIR_IMAGE_WRITABLE.to_vec()
        }
    };
    for name in writable {
        ops.push(MountOp::Bind {
            source: s(&ephemeral.join(name)),
            target: format!("/{name}"),
            readonly: false,
        });
    }

    ops.push(MountOp::Tmpfs {
        target: "/dev".into(),
        size_bytes: 64 << 10,
        mode: 0o755,
        readonly: false,
    });
    for dev in DEVICES {
        ops.push(MountOp::Touch {
            path: format!("/dev/{dev}"),
        });
        ops.push(MountOp::Bind {
            source: format!("/dev/{dev}"),
            target: format!("/dev/{dev}"),
            readonly: false,
        });
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        ops.push(MountOp::Symlink {
            target: target.into(),
            link: format!("/dev/{link}"),
        });
    }
    ops.push(MountOp::Mkdir {
        path: "/dev/pts".into(),
        mode: 0o755,
    });
    ops.push(MountOp::Devpts {
        target: "/dev/pts".into(),
    });
    ops.push(MountOp::Mkdir {
        path: "/dev/shm".into(),
        mode: 0o1777,
    });

    ops.push(MountOp::Proc { target: "/proc".into() });
    for path in PROC_MASKED {
        ops.push(MountOp::MaskFile { target: (*path).into() });
    }
    for path in PROC_READONLY {
        ops.push(MountOp::ReadonlySelf { target: (*path).into() });
    }
    ops
}

/// The rest of the plan, known once a service boots: its `/dev/shm` size and its volumes (host
/// directory, sandbox path), then the root made read-only, which must come last.
pub fn plan_service(volumes: &[(PathBuf, String)], shm_bytes: u64) -> Vec<MountOp> {
    let s = host_path;
    let mut ops = vec![MountOp::Tmpfs {
        target: "/dev/shm".into(),
        size_bytes: shm_bytes,
        mode: 0o1777,
        readonly: false,
    }];
    // Shallow paths first, so that a volume at /a/b lands on top of one at /a.
    let mut volumes: Vec<&(PathBuf, String)> = volumes.iter().collect();
    volumes.sort_by_key(|(_, target)| target.matches('/').count());
    for (source, target) in volumes {
        ops.push(MountOp::Mkdir {
            path: target.clone(),
            mode: 0o755,
        });
        ops.push(MountOp::Bind {
            source: s(source),
            target: target.clone(),
            readonly: false,
        });
    }
    ops.push(MountOp::RootReadonly);
    ops
}

/// The privileged operations the agent needs to build a sandbox. [`LinuxSys`] does them for
/// real; tests use a recorder.
pub trait Sys {
    /// mount(2).
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// The flags an existing mount has (statvfs `f_flag` translated to `MS_*`).
    fn mount_flags(&mut self, path: &Path) -> io::Result<libc::c_ulong>;
    /// mkdir -p, with `mode` for a directory it makes; one already there stays as it is, and
    /// anything else there (a link) is refused.
    fn mkdir_all(&mut self, path: &Path, mode: u32) -> io::Result<()>;
    /// Create an empty file if none is there.
    fn touch(&mut self, path: &Path) -> io::Result<()>;
    /// symlink(2).
    fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()>;
    /// Whether a path exists (without following a final symlink).
    fn exists(&mut self, path: &Path) -> bool;
}

/// Carries out `ops` with the new root assembled at `root`.
pub fn apply(sys: &mut dyn Sys, root: &Path, ops: &[MountOp]) -> io::Result<()> {
    let at = |p: &str| match p.trim_start_matches('/') {
        "" => root.to_path_buf(),
        rel => root.join(rel),
    };
    let ctx = |op: &MountOp, e: io::Error| io::Error::new(e.kind(), format!("{op:?}: {e}"));
    for op in ops {
        let result = match op {
            MountOp::Tmpfs {
                target,
                size_bytes,
                mode,
                readonly,
            } => {
                let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
                if *readonly {
                    flags |= libc::MS_RDONLY;
                }
                let data = format!("size={size_bytes},mode={mode:o}");
                sys.mount(Some(Path::new("tmpfs")), &at(target), Some("tmpfs"), flags, Some(&data))
            }
            MountOp::Bind {
                source,
                target,
                readonly,
            } => bind(sys, Path::new(source), &at(target), *readonly),
            MountOp::Mkdir { path, mode } => sys.mkdir_all(&at(path), *mode),
            MountOp::Touch { path } => sys.touch(&at(path)),
            MountOp::Symlink { target, link } => sys.symlink(target, &at(link)),
            MountOp::Proc { target } => sys.mount(
                Some(Path::new("proc")),
                &at(target),
                Some("proc"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            ),
            MountOp::Devpts { target } => sys.mount(
                Some(Path::new("devpts")),
                &at(target),
                Some("devpts"),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            ),
            MountOp::MaskFile { target } => {
                if sys.exists(&at(target)) {
                    sys.mount(Some(Path::new("/dev/null")), &at(target), None, libc::MS_BIND, None)
                } else {
                    Ok(())
                }
            }
            MountOp::ReadonlySelf { target } => {
                if sys.exists(&at(target)) {
                    bind(sys, &at(target), &at(target), true)
                } else {
                    Ok(())
                }
            }
            MountOp::RootReadonly => {
                let flags = sys.mount_flags(root)?;
                sys.mount(
                    None,
                    root,
                    None,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
                    None,
                )
            }
        };
        result.map_err(|e| ctx(op, e))?;
    }
    Ok(())
}

/// Binds `source` onto `target`; a read-only bind needs a second, remounting call that keeps
/// the flags the kernel locked on the source mount (changing them fails with EPERM in a user
/// namespace).
fn bind(sys: &mut dyn Sys, source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    sys.mount(Some(source), target, None, libc::MS_BIND | libc::MS_REC, None)?;
    if readonly {
        let kept = sys.mount_flags(target)?;
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | kept;
        sys.mount(None, target, None, flags, None)?;
    }
    Ok(())
}

/// Whether a directory to mount on is at `path` already (`false`: nothing is). Anything else
/// there is refused: a link would be followed before the pivot, where `/` is still the host's.
pub fn existing_mount_point(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a mount point must be a directory, not a link or a file",
        )),
        Err(_) => Ok(false),
    }
}

/// The real syscalls.
#[derive(Debug, Default)]
pub struct LinuxSys;

fn cstring(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

impl Sys for LinuxSys {
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(cstring).transpose()?;
        let target = cstring(target)?;
        let fstype = fstype.map(|f| std::ffi::CString::new(f).expect("static fs type"));
        let data = data.map(|d| std::ffi::CString::new(d).expect("mount data has no NUL"));
        let ptr = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
        let rc = unsafe { libc::mount(ptr(&source), target.as_ptr(), ptr(&fstype), flags, ptr(&data).cast()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn mount_flags(&mut self, path: &Path) -> io::Result<libc::c_ulong> {
        let c = cstring(path)?;
        // SAFETY: statvfs is plain data; the kernel fills it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated; st is a valid out-pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let pairs = [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ];
        Ok(pairs
            .iter()
            .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
            .fold(0, |acc, (_, ms)| acc | ms))
    }

    fn mkdir_all(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if existing_mount_point(path)? {
            // A directory image's own (the host's root's: no chmod from inside), or a volume's.
            return Ok(());
        }
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(path)?;
        // mkdir's mode is filtered by the umask; set it exactly (sticky /tmp-style dirs).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    fn touch(&mut self, path: &Path) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(drop)
    }

    fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn exists(&mut self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every call; reports the source's flags as `nosuid,nodev`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
    }

    impl Sys for Recorder {
        fn mount(
            &mut self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: libc::c_ulong,
            data: Option<&str>,
        ) -> io::Result<()> {
            let ro = if flags & libc::MS_RDONLY != 0 { " ro" } else { "" };
            let remount = if flags & libc::MS_REMOUNT != 0 { " remount" } else { "" };
            self.calls.push(format!(
                "mount {} {} {}{ro}{remount} {}",
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("bind"),
                data.unwrap_or("")
            ));
            Ok(())
        }
        fn mount_flags(&mut self, _: &Path) -> io::Result<libc::c_ulong> {
            Ok(libc::MS_NOSUID | libc::MS_NODEV)
        }
        fn mkdir_all(&mut self, path: &Path, _: u32) -> io::Result<()> {
            self.calls.push(format!("mkdir {}", path.display()));
            Ok(())
        }
        fn touch(&mut self, path: &Path) -> io::Result<()> {
            self.calls.push(format!("touch {}", path.display()));
            Ok(())
        }
        fn symlink(&mut self, target: &str, link: &Path) -> io::Result<()> {
            self.calls.push(format!("symlink {} -> {target}", link.display()));
            Ok(())
        }
        fn exists(&mut self, path: &Path) -> bool {
            !path.ends_with("latency_stats")
        }
    }

    fn host_view() -> ImageRoot {
        ImageRoot::HostView {
            usr: "/usr".into(),
            etc: "/data/etc".into(),
            hidden: vec!["/usr/local".into()],
        }
    }

    fn calls(image: &ImageRoot, volumes: &[(PathBuf, String)]) -> Vec<String> {
        let mut ops = plan_prepared(image, Path::new("/data/eph"));
        ops.extend(plan_service(volumes, 64 << 20));
        let mut rec = Recorder::default();
        apply(&mut rec, Path::new("/r"), &ops).unwrap();
        rec.calls
    }

    fn position(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no call with {needle:?} in {calls:#?}"))
    }

    #[test]
    fn usr_and_etc_are_read_only_binds() {
        let c = calls(&host_view(), &[]);
        let usr = position(&c, "mount /usr /r/usr bind");
        assert!(c[usr + 1].contains("- /r/usr bind ro remount"), "{}", c[usr + 1]);
        let etc = position(&c, "mount /data/etc /r/etc bind");
        assert!(c[etc + 1].contains("ro remount"));
        assert!(
            position(&c, "mount tmpfs /r/usr/local tmpfs ro") > usr,
            "hides /usr/local after binding /usr"
        );
    }

    #[test]
    fn writable_paths_come_from_the_ephemeral_filesystem() {
        let c = calls(&host_view(), &[]);
        for dir in ["tmp", "root", "workspace", "var"] {
            position(&c, &format!("mount /data/eph/{dir} /r/{dir} bind "));
        }
        assert!(!c.iter().any(|x| x.contains("/data/eph/tmp") && x.contains(" ro")));
    }

    #[test]
    fn the_root_becomes_read_only_last() {
        let c = calls(&host_view(), &[("/vol/a".into(), "/workspace".into())]);
        assert!(
            c.last().unwrap().starts_with("mount - /r bind ro remount"),
            "{:?}",
            c.last()
        );
        assert!(c[0].starts_with("mount tmpfs /r tmpfs"), "{}", c[0]);
    }

    #[test]
    fn proc_is_mounted_before_it_is_masked() {
        let c = calls(&host_view(), &[]);
        let proc_at = position(&c, "mount proc /r/proc proc");
        assert!(position(&c, "mount /dev/null /r/proc/kcore") > proc_at);
        assert!(position(&c, "mount /r/proc/sys /r/proc/sys bind") > proc_at);
        assert!(
            !c.iter().any(|x| x.contains("latency_stats")),
            "a missing file is skipped"
        );
    }

    #[test]
    fn volumes_are_bound_over_the_ephemeral_paths_shallow_first() {
        let vols = [
            ("/vol/b".into(), "/workspace/data".into()),
            ("/vol/a".into(), "/workspace".into()),
        ];
        let c = calls(&host_view(), &vols);
        let eph = position(&c, "mount /data/eph/workspace /r/workspace");
        let a = position(&c, "mount /vol/a /r/workspace bind");
        let b = position(&c, "mount /vol/b /r/workspace/data bind");
        assert!(eph < a && a < b, "{eph} {a} {b}");
        assert!(position(&c, "mkdir /r/workspace/data") > a);
    }

    #[test]
    fn shm_and_devpts_are_private_instances() {
        let c = calls(&host_view(), &[]);
        let shm = position(&c, "mount tmpfs /r/dev/shm tmpfs size=67108864,mode=1777");
        assert!(
            shm > position(&c, "mkdir /r/dev/shm"),
            "the service's step finds its mount point"
        );
        position(&c, "mount devpts /r/dev/pts devpts newinstance");
        position(&c, "symlink /r/dev/ptmx -> pts/ptmx");
        let null = position(&c, "touch /r/dev/null");
        assert!(c[null + 1].starts_with("mount /dev/null /r/dev/null bind"));
    }

    #[test]
    fn a_warm_sandbox_has_all_but_the_services_steps() {
        let vols = [("/vol/a".into(), "/workspace/data".into())];
        let prepared = plan_prepared(&host_view(), Path::new("/data/eph"));
        let service = plan_service(&vols, 1 << 20);
        let for_the_service = |op: &MountOp| match op {
            MountOp::Tmpfs { target, .. } => target == "/dev/shm",
            other => *other == MountOp::RootReadonly,
        };
        assert!(!prepared.iter().any(for_the_service), "{prepared:?}");
        assert_eq!(
            service,
            vec![
                MountOp::Tmpfs {
                    target: "/dev/shm".into(),
                    size_bytes: 1 << 20,
                    mode: 0o1777,
                    readonly: false
                },
                MountOp::Mkdir {
                    path: "/workspace/data".into(),
                    mode: 0o755
                },
                MountOp::Bind {
                    source: "/vol/a".into(),
                    target: "/workspace/data".into(),
                    readonly: false
                },
                MountOp::RootReadonly,
            ]
        );
    }

    #[test]
    fn a_directory_image_is_bound_as_the_root() {
        let c = calls(&ImageRoot::Dir("/images/deb".into()), &[]);
        assert!(c[0].starts_with("mount /images/deb /r bind"), "{}", c[0]);
        assert!(!c.iter().any(|x| x.contains("/data/eph/var")), "keeps the image's /var");
        position(&c, "mount /data/eph/tmp /r/tmp bind");
    }
}
