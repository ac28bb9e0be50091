//! `flankbox-host doctor`: whether this machine can run isolated sandboxes, one line per check,
//! with the fix for whatever fails. `serve` runs the same checks (minus the slow tries) before
//! it starts, and refuses to start when one fails.
//!
//! The checks read the machine through [`System`]: files under a root directory (`/`, or a
//! scratch directory in tests) and a few live tries (making a user namespace, installing the
//! sandbox's seccomp filters) that only the real machine makes. The parsing and the verdicts are
//! plain functions of what was read.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::runtime::linux::cgroup::CgroupLayout;
use crate::runtime::linux::loopdev::TOOL_PATH;
use crate::runtime::linux::{UID_BASE, UID_RANGE};

mod checks;
mod tries;

pub use checks::*;
use tries::{seccomp_try, user_namespace_try};

/// The oldest kernel the host runs on: `LOOP_CONFIGURE` (ephemeral storage and volumes) is 5.8;
/// `pidfd_open` (reaping agents) is 5.3, `execveat` 3.19, cgroup namespaces 4.6.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

/// The oldest e2fsprogs whose `mkfs.ext4` takes `-E root_owner=…,lazy_journal_init,nodiscard`.
const MIN_E2FSPROGS: (u32, u32) = (1, 42);

/// The cgroup controllers the host sets limits with.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth fixing.
    Warn,
    /// Isolated sandboxes cannot run until this is fixed.
    Fail,
}

impl Status {
    /// The mark the text output starts a line with.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. `user-namespaces`.
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub found: String,
    /// How to fix it, when it is not ok.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            found: found.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    /// The check as one line of text: mark, name, what was found, and the fix.
    pub fn line(&self) -> String {
        let mut line = format!("{:<4}  {:<15}  {}", self.status.mark(), self.name, self.found);
        if let Some(fix) = &self.fix {
            line.push_str("; fix: ");
            line.push_str(fix);
        }
        line
    }
}

/// The machine as the checks see it.
pub trait System {
    /// Where `/` is: the real root, or a scratch directory in tests.
    fn root(&self) -> &Path;
    /// The effective uid.
    fn euid(&self) -> u32;
    /// Makes a user namespace in a child process and writes its uid and gid maps as the host
    /// does; `None` when not tried.
    fn try_user_namespace(&self) -> Option<Result<(), String>>;
    /// Installs the sandbox's seccomp filters in a child process and checks that a denied call
    /// fails; `None` when not tried.
    fn try_seccomp(&self) -> Option<Result<(), String>>;
    /// Opens `/dev/loop-control` as the host does; `None` when not tried.
    fn try_loop_control(&self) -> Option<Result<(), String>>;
    /// What `program -V` prints (mkfs.ext4's version); `None` when not run.
    fn mkfs_version(&self, program: &Path) -> Option<String>;
}

/// The real machine.
#[derive(Debug, Clone, Copy)]
pub struct Real {
    /// Also make the slower tries (seccomp in a child, running mkfs.ext4): `doctor` does, `serve`
    /// does not.
    pub thorough: bool,
}

impl System for Real {
    fn root(&self) -> &Path {
        Path::new("/")
    }

    fn euid(&self) -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    fn try_user_namespace(&self) -> Option<Result<(), String>> {
        // Writing another range's uid map needs root; without it the root check fails anyway.
        (self.euid() == 0).then(user_namespace_try)
    }

    fn try_seccomp(&self) -> Option<Result<(), String>> {
        self.thorough.then(seccomp_try)
    }

    fn try_loop_control(&self) -> Option<Result<(), String>> {
        (self.euid() == 0).then(|| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/loop-control")
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn mkfs_version(&self, program: &Path) -> Option<String> {
        if !self.thorough {
            return None;
        }
        let out = std::process::Command::new(program).arg("-V").output().ok()?;
        // mke2fs prints its version on stderr.
        Some(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Runs every check, in the order `doctor` prints them.
pub fn run(sys: &dyn System) -> Vec<Check> {
    vec![
        root_check(sys.euid()),
        kernel_check(read(sys, "/proc/sys/kernel/osrelease").as_deref()),
        userns_check(
            exists(sys, "/proc/self/ns/user"),
            sysctl(sys, "user/max_user_namespaces"),
            sysctl(sys, "kernel/unprivileged_userns_clone"),
            sysctl(sys, "kernel/apparmor_restrict_unprivileged_userns"),
            sys.try_user_namespace(),
        ),
        subids_check(read(sys, "/etc/subuid").as_deref(), read(sys, "/etc/subgid").as_deref()),
        cgroup_check(&at(sys, "/sys/fs/cgroup"), sys.euid()),
        loop_check(
            exists(sys, "/dev/loop-control"),
            &loop_devices(&at(sys, "/sys/block")),
            sys.try_loop_control(),
        ),
        mkfs_check(sys),
        seccomp_check(
            read(sys, "/proc/self/status").as_deref(),
            read(sys, "/proc/sys/kernel/seccomp/actions_avail").as_deref(),
            sys.try_seccomp(),
        ),
        links_check(
            sysctl(sys, "fs/protected_symlinks"),
            sysctl(sys, "fs/protected_hardlinks"),
        ),
    ]
}

/// What `serve` prints when a check fails: the failing lines and why it will not start, or
/// `None` when isolation can work.
pub fn refusal(checks: &[Check]) -> Option<String> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("  {}\n", c.line()))
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(format!(
        "this machine cannot isolate sandboxes, so serve will not start:\n{}\
         `flankbox-host doctor` shows every check. (--unisolated exists only for tests without root: \
         it runs commands directly on this machine, with no isolation at all.)",
        failed.concat()
    ))
}

fn at(sys: &dyn System, path: &str) -> PathBuf {
    sys.root().join(path.trim_start_matches('/'))
}

fn read(sys: &dyn System, path: &str) -> Option<String> {
    fs::read_to_string(at(sys, path)).ok()
}

fn exists(sys: &dyn System, path: &str) -> bool {
    at(sys, path).exists()
}

/// A numeric sysctl by its /proc/sys path (`user/max_user_namespaces`).
fn sysctl(sys: &dyn System, name: &str) -> Option<i64> {
    parse_number(&read(sys, &format!("/proc/sys/{name}"))?)
}

/// A sysctl's value: one integer.
pub fn parse_number(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

/// Major and minor of a kernel release (`6.8.0-45-generic` → (6, 8)).
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split('.');
    let leading = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let major = leading(parts.next()?)?;
    let minor = leading(parts.next()?)?;
    Some((major, minor))
}

/// A field of `/proc/<pid>/status` (`Seccomp:\t2` → "2").
pub fn parse_status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// One line of `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIds {
    /// The user (a name or a uid).
    pub user: String,
    /// The first id.
    pub start: u64,
    /// How many.
    pub count: u64,
}

/// `/etc/subuid` or `/etc/subgid`: `user:start:count` lines; comments and malformed lines are
/// skipped.
pub fn parse_subids(text: &str) -> Vec<SubIds> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (user, start, count) = (f.next()?, f.next()?, f.next()?);
            if user.is_empty() || f.next().is_some() {
                return None;
            }
            Some(SubIds {
                user: user.to_string(),
                start: start.parse().ok()?,
                count: count.parse().ok()?,
            })
        })
        .collect()
}

/// `mke2fs 1.47.0 (5-Feb-2023)` → (1, 47).
pub fn parse_mke2fs_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("mke2fs ").nth(1)?;
    parse_kernel_release(rest.split_whitespace().next()?)
}

/// How many uid ranges the host can hand out, and where they end: range `n` is
/// `UID_BASE + n * UID_RANGE`, as long as it ends below u32::MAX (the kernel's invalid id).
pub fn host_ranges() -> (u64, u64) {
    let count = u64::from((u32::MAX - UID_RANGE - UID_BASE) / UID_RANGE + 1);
    (count, u64::from(UID_BASE) + count * u64::from(UID_RANGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine made of files in a scratch directory; no live tries.
    struct Fake {
        dir: tempfile::TempDir,
        euid: u32,
    }

    impl Fake {
        /// A healthy machine with cgroup v1.
        fn healthy() -> Self {
            let fake = Self {
                dir: tempfile::tempdir().unwrap(),
                euid: 0,
            };
            fake.write("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
            fake.write("/proc/self/ns/user", "");
            fake.write("/proc/sys/user/max_user_namespaces", "63304\n");
            fake.write(
                "/proc/self/status",
                "Name:\tflankbox-host\nSeccomp:\t0\nSeccomp_filters:\t0\n",
            );
            fake.write(
                "/proc/sys/kernel/seccomp/actions_avail",
                "kill_process kill_thread trap errno user_notif trace log allow\n",
            );
            fake.write("/proc/sys/fs/protected_symlinks", "1\n");
            fake.write("/proc/sys/fs/protected_hardlinks", "1\n");
            for c in CONTROLLERS {
                fake.write(&format!("/sys/fs/cgroup/{c}/cgroup.procs"), "");
            }
            fake.write("/dev/loop-control", "");
            fake.write("/sys/block/loop0/loop/backing_file", "/var/a.img\n");
            fake.write("/sys/block/loop1/ro", "0\n");
            fake.write("/sys/block/vda/ro", "0\n");
            fake.write("/usr/sbin/mkfs.ext4", "");
            fs::set_permissions(fake.path("/usr/sbin/mkfs.ext4"), fs::Permissions::from_mode(0o755)).unwrap();
            fake
        }

        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p.trim_start_matches('/'))
        }

        fn write(&self, p: &str, text: &str) {
            let path = self.path(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn remove(&self, p: &str) {
            let path = self.path(p);
            if path.is_dir() {
                fs::remove_dir_all(path).unwrap();
            } else {
                fs::remove_file(path).unwrap();
            }
        }

        fn check(&self, name: &str) -> Check {
            run(self).into_iter().find(|c| c.name == name).unwrap()
        }
    }

    impl System for Fake {
        fn root(&self) -> &Path {
            self.dir.path()
        }
        fn euid(&self) -> u32 {
            self.euid
        }
        fn try_user_namespace(&self) -> Option<Result<(), String>> {
            None
        }
        fn try_seccomp(&self) -> Option<Result<(), String>> {
            None
        }
        fn try_loop_control(&self) -> Option<Result<(), String>> {
            None
        }
        fn mkfs_version(&self, _: &Path) -> Option<String> {
            Some("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n".into())
        }
    }

    #[test]
    fn a_healthy_machine_passes_every_check_in_order() {
        let fake = Fake::healthy();
        let checks = run(&fake);
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "root",
                "kernel",
                "user-namespaces",
                "subordinate-ids",
                "cgroups",
                "loop-devices",
                "mkfs.ext4",
                "seccomp",
                "protected-links"
            ]
        );
        for c in &checks {
            assert_eq!(c.status, Status::Ok, "{}", c.line());
        }
        assert_eq!(refusal(&checks), None);
        assert!(fake.check("loop-devices").found.contains("2 loop devices, 1 free"));
        assert!(fake
            .check("mkfs.ext4")
            .found
            .contains("/usr/sbin/mkfs.ext4 (e2fsprogs 1.47)"));
    }

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v1045\n"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_kernel_release("6.1"), Some((6, 1)));
        assert_eq!(parse_kernel_release("4.19rc1"), Some((4, 19)));
        assert_eq!(parse_kernel_release("5.10rc1.x"), Some((5, 10)));
        assert_eq!(parse_kernel_release("linux"), None);
    }

    #[test]
    fn an_old_kernel_fails() {
        let c = kernel_check(Some("5.4.0-150-generic\n"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("5.8"));
        assert_eq!(kernel_check(Some("5.8.0")).status, Status::Ok);
        assert_eq!(kernel_check(Some("garbage")).status, Status::Warn);
    }

    #[test]
    fn no_user_namespaces_fails_with_the_sysctl_fix() {
        let fake = Fake::healthy();
        fake.write("/proc/sys/user/max_user_namespaces", "0\n");
        let c = fake.check("user-namespaces");
        assert_eq!(c.status, Status::Fail, "{}", c.line());
        assert!(c.found.contains("user.max_user_namespaces=0"));
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .starts_with("sysctl -w user.max_user_namespaces=15000"));
        assert!(refusal(&run(&fake)).unwrap().contains("FAIL  user-namespaces"));
    }

    #[test]
    fn unprivileged_restrictions_do_not_fail_a_root_host() {
        let c = userns_check(true, Some(100), Some(0), Some(1), Some(Ok(())));
        assert_eq!(c.status, Status::Ok);
        assert!(c.found.contains("kernel.unprivileged_userns_clone=0"), "{}", c.found);
        assert!(c.found.contains("kernel.apparmor_restrict_unprivileged_userns=1"));
        assert!(c.found.contains("unprivileged users only"));
        let c = userns_check(false, None, None, None, None);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("CONFIG_USER_NS"));
        let c = userns_check(
            true,
            Some(100),
            None,
            None,
            Some(Err("clone(CLONE_NEWUSER): EPERM".into())),
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("EPERM"));
    }

    #[test]
    fn not_root_fails() {
        let mut fake = Fake::healthy();
        fake.euid = 1000;
        let c = fake.check("root");
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("uid 1000"));
        assert!(c.fix.unwrap().contains("root"));
    }

    #[test]
    fn parses_subids_and_warns_on_overlap() {
        let text = "# comment\nalice:100000:65536\nbob:4000000000:65536\nbroken:line\ncarol:x:1\n";
        assert_eq!(
            parse_subids(text),
            [
                SubIds {
                    user: "alice".into(),
                    start: 100_000,
                    count: 65536
                },
                SubIds {
                    user: "bob".into(),
                    start: 4_000_000_000,
                    count: 65536
                },
            ]
        );
        let c = subids_check(Some(text), Some("alice:100000:65536\n"));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.found.contains("/etc/subuid gives alice 100000-165535 (and 2 more)"),
            "{}",
            c.found
        );
        assert!(c.fix.unwrap().contains("usermod --del-subuids 100000-165535"));
        // Ids below the host's first range are fine.
        let c = subids_check(Some("svc:10000:65536\n"), None);
        assert_eq!(c.status, Status::Ok, "{}", c.line());
        assert!(c.found.contains("65534 ranges of 65536 ids from 100000 up"));
        let c = subids_check(Some("svc:10000:90001\n"), None);
        assert_eq!(c.status, Status::Warn);
    }

    #[test]
    fn the_host_ranges_fit_below_the_invalid_id() {
        let (count, end) = host_ranges();
        assert_eq!(count, 65534);
        assert!(end <= u64::from(u32::MAX));
        assert!(end + u64::from(UID_RANGE) > u64::from(u32::MAX));
    }

    #[test]
    fn cgroup_v1_without_pids_fails() {
        let fake = Fake::healthy();
        fake.remove("/sys/fs/cgroup/pids");
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Fail, "{}", c.line());
        assert!(c.found.contains("v1 without the pids"), "{}", c.found);
        assert!(c.fix.unwrap().contains("mount -t cgroup -o pids"));
    }

    #[test]
    fn cgroup_v1_without_cpu_fails_though_the_runtime_detects_v1() {
        let fake = Fake::healthy();
        fake.remove("/sys/fs/cgroup/cpu");
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Fail, "{}", c.line());
        assert!(c.found.contains("without the cpu"));
    }

    #[test]
    fn cgroup_v2_needs_all_three_controllers() {
        let fake = Fake::healthy();
        for c in CONTROLLERS {
            fake.remove(&format!("/sys/fs/cgroup/{c}"));
        }
        fake.write(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma\n",
        );
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Ok, "{}", c.line());
        assert!(c.found.starts_with("v2"));
        fake.write("/sys/fs/cgroup/cgroup.controllers", "cpuset io memory pids\n");
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("v2 without cpu"), "{}", c.found);
        fake.write("/sys/fs/cgroup/cgroup.controllers", "cpuset io pids\n");
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("v2 without memory"), "{}", c.found);
        fake.remove("/sys/fs/cgroup");
        let c = fake.check("cgroups");
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("no cgroup filesystem"));
    }

    #[test]
    fn no_loop_control_fails_with_modprobe() {
        let fake = Fake::healthy();
        fake.remove("/dev/loop-control");
        let c = fake.check("loop-devices");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().starts_with("modprobe loop"));
        let busy = [("loop0".to_string(), true)];
        assert_eq!(loop_check(true, &busy, None).status, Status::Warn);
        assert_eq!(loop_check(true, &[], None).status, Status::Ok);
        assert_eq!(
            loop_check(true, &[], Some(Err("Permission denied".into()))).status,
            Status::Fail
        );
    }

    #[test]
    fn missing_mkfs_fails_with_the_package() {
        let fake = Fake::healthy();
        fake.remove("/usr/sbin/mkfs.ext4");
        let c = fake.check("mkfs.ext4");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("apt-get install e2fsprogs"));
        // Found in another directory of the host's PATH.
        fake.write("/sbin/mkfs.ext4", "");
        fs::set_permissions(fake.path("/sbin/mkfs.ext4"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(fake.check("mkfs.ext4").status, Status::Ok);
        assert_eq!(parse_mke2fs_version("mke2fs 1.41.12 (17-May-2010)"), Some((1, 41)));
        let old = mkfs_verdict(Some(Path::new("/sbin/mkfs.ext4")), Some("mke2fs 1.41.12 (17-May-2010)"));
        assert_eq!(old.status, Status::Fail);
        // Not executable: not found.
        fs::set_permissions(fake.path("/sbin/mkfs.ext4"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(fake.check("mkfs.ext4").status, Status::Fail);
    }

    #[test]
    fn seccomp_verdicts() {
        assert_eq!(parse_status_field("Name:\tx\nSeccomp:\t2\n", "Seccomp"), Some("2"));
        assert_eq!(parse_status_field("Seccomp_filters:\t1\n", "Seccomp"), None);
        let c = seccomp_check(Some("Name:\tx\n"), None, None);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("CONFIG_SECCOMP_FILTER"));
        let c = seccomp_check(Some("Seccomp:\t0\n"), Some("allow log\n"), None);
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("errno, kill_process missing"));
        let c = seccomp_check(Some("Seccomp:\t2\n"), Some("kill_process errno allow\n"), Some(Ok(())));
        assert_eq!(c.status, Status::Ok);
        assert!(c.found.contains("already filtered"));
        let c = seccomp_check(Some("Seccomp:\t0\n"), None, None);
        assert_eq!(c.status, Status::Warn);
        let c = seccomp_check(Some("Seccomp:\t0\n"), None, Some(Err("EINVAL".into())));
        assert_eq!(c.status, Status::Fail);
    }

    #[test]
    fn unprotected_links_warn() {
        let fake = Fake::healthy();
        fake.write("/proc/sys/fs/protected_symlinks", "0\n");
        let c = fake.check("protected-links");
        assert_eq!(c.status, Status::Warn);
        assert!(c.found.starts_with("fs.protected_symlinks=0, fs.protected_hardlinks=1"));
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .starts_with("sysctl -w fs.protected_symlinks=1 ("));
        // A warning alone does not stop serve.
        assert_eq!(refusal(&run(&fake)), None);
        assert_eq!(links_check(None, Some(1)).status, Status::Warn);
    }

    #[test]
    fn lines_and_json_carry_the_mark_the_name_and_the_fix() {
        let c = links_check(Some(0), Some(0));
        let line = c.line();
        assert!(
            line.starts_with("warn  protected-links  fs.protected_symlinks=0"),
            "{line}"
        );
        assert!(line.contains("; fix: sysctl -w fs.protected_symlinks=1 fs.protected_hardlinks=1"));
        let json = serde_json::to_value(root_check(1000)).unwrap();
        assert_eq!(json["name"], "root");
        assert_eq!(json["status"], "fail");
        assert!(json["fix"].as_str().unwrap().contains("root"));
        assert_eq!(
            serde_json::to_value(root_check(0)).unwrap()["fix"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn the_refusal_names_the_failures_and_unisolated() {
        let checks = vec![
            root_check(1000),
            links_check(Some(0), Some(1)),
            kernel_check(Some("6.1")),
        ];
        let text = refusal(&checks).unwrap();
        assert!(text.contains("FAIL  root"));
        assert!(!text.contains("protected-links"));
        assert!(text.contains("--unisolated exists only for tests without root"));
        assert!(text.contains("flankbox-host doctor"));
    }
}
