//! The verdicts: one function per check, from what was read to ok, warn or FAIL with the fix.

use super::*;

/// Root check.
pub fn root_check(euid: u32) -> Check {
    if euid == 0 {
        Check::ok("root", "running as root")
    } else {
        Check::fail(
            "root",
            format!("running as uid {euid}; uid maps, cgroups and loop mounts need root"),
            "run it as root (sudo flankbox-host …)",
        )
    }
}

/// Kernel version check.
pub fn kernel_check(release: Option<&str>) -> Check {
    let (want_major, want_minor) = MIN_KERNEL;
    let need = format!("{want_major}.{want_minor} or later needed (LOOP_CONFIGURE)");
    let Some(release) = release.map(str::trim) else {
        return Check::warn(
            "kernel",
            format!("cannot read /proc/sys/kernel/osrelease; {need}"),
            "mount /proc",
        );
    };
    match parse_kernel_release(release) {
        Some(v) if v >= MIN_KERNEL => Check::ok("kernel", format!("{release}; {need}")),
        Some(_) => Check::fail(
            "kernel",
            format!("{release}; {need}, pidfd_open 5.3"),
            format!("boot a {want_major}.{want_minor} or later kernel"),
        ),
        None => Check::warn(
            "kernel",
            format!("cannot tell the version of {release:?}; {need}"),
            format!("make sure the kernel is {want_major}.{want_minor} or later"),
        ),
    }
}

/// User namespace check. `tried` is the live try's outcome, if made.
pub fn userns_check(
    ns_present: bool,
    max: Option<i64>,
    unprivileged_clone: Option<i64>,
    apparmor_restrict: Option<i64>,
    tried: Option<Result<(), String>>,
) -> Check {
    const NAME: &str = "user-namespaces";
    if !ns_present {
        return Check::fail(
            NAME,
            "the kernel has no user namespaces (no /proc/self/ns/user)",
            "a kernel built with CONFIG_USER_NS=y",
        );
    }
    let mut found: Vec<String> = Vec::new();
    for (name, value) in [
        ("user.max_user_namespaces", max),
        ("kernel.unprivileged_userns_clone", unprivileged_clone),
        ("kernel.apparmor_restrict_unprivileged_userns", apparmor_restrict),
    ] {
        if let Some(v) = value {
            found.push(format!("{name}={v}"));
        }
    }
    if unprivileged_clone == Some(0) || apparmor_restrict.is_some_and(|v| v != 0) {
        found.push("(the last ones restrict unprivileged users only; the host runs as root)".into());
    }
    if max == Some(0) {
        found.push("no user namespace can be made".into());
        return Check::fail(
            NAME,
            found.join("; "),
            "sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/ to keep it)",
        );
    }
    match tried {
        Some(Ok(())) => {
            found.push(format!(
                "a child made one and root wrote its map (0 {UID_BASE} {UID_RANGE})"
            ));
            Check::ok(NAME, found.join("; "))
        }
        Some(Err(e)) => {
            found.push(format!("making one failed: {e}"));
            Check::fail(
                NAME,
                found.join("; "),
                "find what denies clone(CLONE_NEWUSER) or the uid map: a seccomp profile or LSM, e.g. a container's (run the host outside it)",
            )
        }
        None => {
            found.push("not tried (needs root)".into());
            Check::ok(NAME, found.join("; "))
        }
    }
}

/// Subordinate id check: entries of `/etc/subuid` and `/etc/subgid` inside the host's ranges.
pub fn subids_check(subuid: Option<&str>, subgid: Option<&str>) -> Check {
    const NAME: &str = "subordinate-ids";
    let (count, end) = host_ranges();
    let ours = format!("{count} ranges of {UID_RANGE} ids from {UID_BASE} up, one per service");
    let mut clashes: Vec<(&str, SubIds)> = Vec::new();
    for (file, text) in [("/etc/subuid", subuid), ("/etc/subgid", subgid)] {
        for entry in parse_subids(text.unwrap_or_default()) {
            if entry.count > 0 && entry.start < end && entry.start + entry.count > u64::from(UID_BASE) {
                clashes.push((file, entry));
            }
        }
    }
    let Some((file, first)) = clashes.first() else {
        return Check::ok(NAME, format!("{ours}; no /etc/subuid or /etc/subgid entry among them"));
    };
    let (from, to) = (first.start, first.start + first.count - 1);
    let more = match clashes.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Check::warn(
        NAME,
        format!(
            "{ours}; {file} gives {} {from}-{to}{more}, so that user's rootless containers may share ids with sandboxes",
            first.user
        ),
        format!(
            "if that user runs no rootless containers, drop the entry (usermod --del-subuids {from}-{to} --del-subgids {from}-{to} {})",
            first.user
        ),
    )
}

/// Cgroup check, reusing the runtime's own detection under `root` (`/sys/fs/cgroup`).
pub fn cgroup_check(root: &Path, euid: u32) -> Check {
    const NAME: &str = "cgroups";
    let v1_missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !root.join(c).join("cgroup.procs").exists())
        .collect();
    let writable = |dirs: &[PathBuf]| -> Result<(), String> {
        if euid != 0 {
            return Ok(());
        }
        for dir in dirs {
            if let Err(e) = access_writable(dir) {
                return Err(format!("{} is not writable: {e}", dir.display()));
            }
        }
        Ok(())
    };
    let (found, dirs) = match CgroupLayout::detect(root) {
        Ok(CgroupLayout::V2 { .. }) => {
            let listed = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let missing: Vec<&str> = CONTROLLERS
                .into_iter()
                .filter(|c| !listed.split_whitespace().any(|l| l == *c))
                .collect();
            if !missing.is_empty() {
                return Check::fail(
                    NAME,
                    format!("v2 without {} (cgroup.controllers: {})", missing.join(", "), listed.trim()),
                    "a kernel with CONFIG_MEMCG, CONFIG_CGROUP_PIDS and CONFIG_CFS_BANDWIDTH, and no cgroup_disable= on its command line",
                );
            }
            ("v2 with memory, pids and cpu".to_string(), vec![root.to_path_buf()])
        }
        Ok(CgroupLayout::V1 { .. }) => {
            if !v1_missing.is_empty() {
                return v1_fail(&v1_missing);
            }
            (
                "v1 with memory, pids and cpu hierarchies".to_string(),
                CONTROLLERS.iter().map(|c| root.join(c)).collect(),
            )
        }
        Err(_) if !root.exists() => {
            return Check::fail(
                NAME,
                "no cgroup filesystem at /sys/fs/cgroup",
                "mount -t cgroup2 none /sys/fs/cgroup",
            )
        }
        Err(_) if v1_missing.len() < CONTROLLERS.len() || !root.join("cgroup.controllers").exists() => {
            return v1_fail(&v1_missing);
        }
        Err(_) => {
            let listed = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            return Check::fail(
                NAME,
                format!("v2 without memory (cgroup.controllers: {})", listed.trim()),
                "a kernel with CONFIG_MEMCG, CONFIG_CGROUP_PIDS and CONFIG_CFS_BANDWIDTH, and no cgroup_disable= on its command line",
            );
        }
    };
    match writable(&dirs) {
        Ok(()) => Check::ok(NAME, found),
        Err(e) => Check::fail(
            NAME,
            format!("{found}, but {e}"),
            "mount /sys/fs/cgroup read-write (in a container: run the host outside it)",
        ),
    }
}

fn v1_fail(missing: &[&str]) -> Check {
    let first = missing.first().copied().unwrap_or("pids");
    Check::fail(
        "cgroups",
        format!("v1 without the {} hierarchies", missing.join(", ")),
        format!(
            "mount them, e.g. mkdir -p /sys/fs/cgroup/{first} && mount -t cgroup -o {first} cgroup /sys/fs/cgroup/{first} (or boot with cgroup v2)"
        ),
    )
}

fn access_writable(path: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: access with a NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Loop devices under `sys_block` (`/sys/block`): name, and whether a file is attached.
pub fn loop_devices(sys_block: &Path) -> Vec<(String, bool)> {
    let mut devices: Vec<(String, bool)> = fs::read_dir(sys_block)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("loop")
                .then(|| (name, e.path().join("loop/backing_file").exists()))
        })
        .collect();
    devices.sort();
    devices
}

/// Loop device check.
pub fn loop_check(control: bool, devices: &[(String, bool)], tried: Option<Result<(), String>>) -> Check {
    const NAME: &str = "loop-devices";
    if !control {
        return Check::fail(
            NAME,
            "no /dev/loop-control",
            "modprobe loop (a container also needs the host's /dev/loop-control and /dev/loop*)",
        );
    }
    if let Some(Err(e)) = tried {
        return Check::fail(
            NAME,
            format!("cannot open /dev/loop-control: {e}"),
            "modprobe loop, and run the host as root",
        );
    }
    let free = devices.iter().filter(|(_, busy)| !busy).count();
    let found = format!("/dev/loop-control; {} loop devices, {free} free", devices.len());
    if free == 0 && !devices.is_empty() {
        return Check::warn(
            NAME,
            format!("{found} (the kernel adds more on request unless max_loop caps it)"),
            "detach unused ones (losetup -a lists them, losetup -d DEVICE detaches one)",
        );
    }
    Check::ok(NAME, found)
}

/// mkfs.ext4 check: found where the host looks for it ([`TOOL_PATH`]), and new enough.
pub(super) fn mkfs_check(sys: &dyn System) -> Check {
    let found = TOOL_PATH
        .split(':')
        .map(|dir| Path::new(dir).join("mkfs.ext4"))
        .find(|p| {
            fs::metadata(at(sys, &p.to_string_lossy()))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    let version = found
        .as_deref()
        .and_then(|p| sys.mkfs_version(&at(sys, &p.to_string_lossy())));
    mkfs_verdict(found.as_deref(), version.as_deref())
}

/// mkfs.ext4 verdict from where it was found and what `-V` printed.
pub fn mkfs_verdict(found: Option<&Path>, version: Option<&str>) -> Check {
    const NAME: &str = "mkfs.ext4";
    let Some(path) = found else {
        return Check::fail(
            NAME,
            format!("not found in {TOOL_PATH}; sized storage needs it"),
            "apt-get install e2fsprogs (dnf install e2fsprogs, apk add e2fsprogs)",
        );
    };
    match version.and_then(parse_mke2fs_version) {
        Some(v) if v < MIN_E2FSPROGS => Check::fail(
            NAME,
            format!(
                "{} is e2fsprogs {}.{}; {}.{} or later needed (-E root_owner)",
                path.display(),
                v.0,
                v.1,
                MIN_E2FSPROGS.0,
                MIN_E2FSPROGS.1
            ),
            "upgrade e2fsprogs",
        ),
        Some(v) => Check::ok(NAME, format!("{} (e2fsprogs {}.{})", path.display(), v.0, v.1)),
        None => Check::ok(NAME, path.display().to_string()),
    }
}

/// Seccomp check from `/proc/self/status`, `actions_avail` and the live try.
pub fn seccomp_check(status: Option<&str>, actions: Option<&str>, tried: Option<Result<(), String>>) -> Check {
    const NAME: &str = "seccomp";
    let fix = "a kernel built with CONFIG_SECCOMP_FILTER=y";
    let Some(mode) = status.and_then(|s| parse_status_field(s, "Seccomp")) else {
        return Check::fail(
            NAME,
            "the kernel has no seccomp (no Seccomp line in /proc/self/status)",
            fix,
        );
    };
    let mut found = Vec::new();
    match actions {
        Some(actions) => {
            let have: Vec<&str> = actions.split_whitespace().collect();
            let missing: Vec<&str> = ["errno", "kill_process"]
                .into_iter()
                .filter(|a| !have.contains(a))
                .collect();
            if !missing.is_empty() {
                return Check::fail(
                    NAME,
                    format!(
                        "filter actions {} missing (actions_avail: {})",
                        missing.join(", "),
                        actions.trim()
                    ),
                    fix,
                );
            }
            found.push("filters with errno and kill_process".to_string());
        }
        None if tried.is_none() => {
            return Check::warn(
                NAME,
                "no /proc/sys/kernel/seccomp/actions_avail: cannot tell whether filters work",
                "run flankbox-host doctor, which tries them",
            )
        }
        None => {}
    }
    found.push(match mode {
        "0" => "this process unfiltered".to_string(),
        "2" => "this process already filtered (a container or systemd SystemCallFilter=)".to_string(),
        other => format!("this process in mode {other}"),
    });
    match tried {
        Some(Ok(())) => {
            found.push("the sandbox filters load and deny".into());
            Check::ok(NAME, found.join("; "))
        }
        Some(Err(e)) => {
            found.push(format!("loading the sandbox filters failed: {e}"));
            Check::fail(NAME, found.join("; "), fix)
        }
        None => Check::ok(NAME, found.join("; ")),
    }
}

/// fs.protected_symlinks and fs.protected_hardlinks check.
pub fn links_check(symlinks: Option<i64>, hardlinks: Option<i64>) -> Check {
    const NAME: &str = "protected-links";
    let show = |v: Option<i64>| v.map_or("absent".to_string(), |v| v.to_string());
    let found = format!(
        "fs.protected_symlinks={}, fs.protected_hardlinks={}",
        show(symlinks),
        show(hardlinks)
    );
    let wrong: Vec<&str> = [
        ("fs.protected_symlinks", symlinks),
        ("fs.protected_hardlinks", hardlinks),
    ]
    .into_iter()
    .filter(|(_, v)| *v != Some(1))
    .map(|(n, _)| n)
    .collect();
    if wrong.is_empty() {
        return Check::ok(NAME, found);
    }
    let sets: Vec<String> = wrong.iter().map(|n| format!("{n}=1")).collect();
    Check::warn(
        NAME,
        format!("{found} (the host works as root in directories sandbox users can write)"),
        format!("sysctl -w {} (and set it in /etc/sysctl.d/ to keep it)", sets.join(" ")),
    )
}
