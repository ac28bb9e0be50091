//! Resource limits through cgroups, v1 (these machines: one hierarchy per controller) or v2
//! (unified), detected at start-up.
//!
//! The driver only writes files under a root directory, so tests point it at a scratch
//! directory that stands in for `/sys/fs/cgroup`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU in thousandths of a vCPU.
    pub cpu_millis: u32,
    /// Memory in MiB (no swap is granted).
    pub memory_mib: u32,
    /// Most processes and threads at once.
    pub pids: u32,
}

/// The CFS period both versions use.
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// One hierarchy per controller under `root/{memory,pids,cpu}`.
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// One unified hierarchy at `root` with the controllers enabled.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

impl CgroupLayout {
    /// Detects the layout under `root`: v2 when `root/cgroup.controllers` lists `memory`,
    /// otherwise v1 when `root/memory` is a hierarchy.
    pub fn detect(root: &Path) -> io::Result<Self> {
        if let Ok(controllers) = fs::read_to_string(root.join("cgroup.controllers")) {
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok(Self::V2 { root: root.into() });
            }
        }
        if root.join("memory/cgroup.procs").exists() && root.join("pids/cgroup.procs").exists() {
            return Ok(Self::V1 { root: root.into() });
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no usable cgroup hierarchy under {}: need v2 with memory, or v1 memory+pids+cpu",
                root.display()
            ),
        ))
    }

    /// Directories of the group `parent/name`, one per hierarchy.
    fn dirs(&self, parent: &str, name: &str) -> Vec<PathBuf> {
        match self {
            Self::V1 { root } => ["memory", "pids", "cpu"]
                .iter()
                .map(|c| root.join(c).join(parent).join(name))
                .collect(),
            Self::V2 { root } => vec![root.join(parent).join(name)],
        }
    }

    /// Creates the group `parent/name` (without limits: see [`Cgroup::set_limits`]).
    pub fn create(&self, parent: &str, name: &str) -> io::Result<Cgroup> {
        if let Self::V2 { root } = self {
            // Controllers must be delegated to the parent's children.
            let parent_dir = root.join(parent);
            fs::create_dir_all(&parent_dir)?;
            let _ = fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
            fs::write(parent_dir.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
        }
        let dirs = self.dirs(parent, name);
        for dir in &dirs {
            match fs::create_dir_all(dir) {
                Ok(()) => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("create {}: {e}", dir.display()))),
            }
        }
        Ok(Cgroup {
            layout: self.clone(),
            dirs,
        })
    }

    fn parents(&self, parent: &str) -> Vec<PathBuf> {
        match self {
            Self::V1 { root } => ["memory", "pids", "cpu"]
                .iter()
                .map(|c| root.join(c).join(parent))
                .collect(),
            Self::V2 { root } => vec![root.join(parent)],
        }
    }

    /// Removes the (empty) parent group.
    pub fn remove_parent(&self, parent: &str) {
        for p in self.parents(parent) {
            let _ = fs::remove_dir(p);
        }
    }

    /// Removes every group under `parent` left by an earlier run, killing what still runs in it.
    pub fn sweep(&self, parent: &str) {
        let parents: Vec<PathBuf> = match self {
            Self::V1 { root } => ["memory", "pids", "cpu"]
                .iter()
                .map(|c| root.join(c).join(parent))
                .collect(),
            Self::V2 { root } => vec![root.join(parent)],
        };
        for p in parents {
            let Ok(entries) = fs::read_dir(&p) else { continue };
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    kill_all_in(&entry.path());
                    let _ = remove_dir_retrying(&entry.path());
                }
            }
        }
    }
}

/// One sandbox's cgroup, in every hierarchy of the layout.
#[derive(Debug)]
pub struct Cgroup {
    layout: CgroupLayout,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    fn write(&self, controller: &str, file: &str, value: &str) -> io::Result<()> {
        let dir = match &self.layout {
            CgroupLayout::V1 { .. } => self
                .dirs
                .iter()
                .find(|d| d.components().any(|c| c.as_os_str() == controller))
                .unwrap_or(&self.dirs[0]),
            CgroupLayout::V2 { .. } => &self.dirs[0],
        };
        let path = dir.join(file);
        fs::write(&path, value)
            .map_err(|e| io::Error::new(e.kind(), format!("write {value:?} to {}: {e}", path.display())))
    }

    /// Writes the limits.
    pub fn set_limits(&self, limits: Limits) -> io::Result<()> {
        let memory = u64::from(limits.memory_mib) * 1024 * 1024;
        let quota = u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000;
        match self.layout {
            CgroupLayout::V1 { .. } => {
                self.write("memory", "memory.limit_in_bytes", &memory.to_string())?;
                // Only present when swap accounting is on; the limit then covers swap too.
                let _ = self.write("memory", "memory.memsw.limit_in_bytes", &memory.to_string());
                self.write("pids", "pids.max", &limits.pids.to_string())?;
                self.write("cpu", "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                self.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
            }
            CgroupLayout::V2 { .. } => {
                self.write("memory", "memory.max", &memory.to_string())?;
                let _ = self.write("memory", "memory.swap.max", "0");
                self.write("pids", "pids.max", &limits.pids.to_string())?;
                self.write("cpu", "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            }
        }
        Ok(())
    }

    /// Moves process `pid` (and so its future children) into the group.
    pub fn attach(&self, pid: i32) -> io::Result<()> {
        for dir in &self.dirs {
            let path = dir.join("cgroup.procs");
            fs::write(&path, pid.to_string())
                .map_err(|e| io::Error::new(e.kind(), format!("attach {pid} to {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// How many times the memory limit killed a process, if the kernel tells.
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file, key) = match self.layout {
            CgroupLayout::V1 { .. } => (
                self.dirs
                    .iter()
                    .find(|d| d.components().any(|c| c.as_os_str() == "memory"))?,
                "memory.oom_control",
                "oom_kill",
            ),
            CgroupLayout::V2 { .. } => (&self.dirs[0], "memory.events", "oom_kill"),
        };
        let text = fs::read_to_string(dir.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
    }

    /// Kills whatever is left and removes the group.
    pub fn destroy(&self) -> io::Result<()> {
        for dir in &self.dirs {
            kill_all_in(dir);
        }
        for dir in &self.dirs {
            remove_dir_retrying(dir)?;
        }
        Ok(())
    }
}

fn kill_all_in(dir: &Path) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) takes plain integers; a stale pid fails with ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A group can be removed only once its last process is reaped, which follows SIGKILL by a
/// little (more under a fork bomb on a loaded machine), so this kills and retries for up to
/// about ten seconds.
fn remove_dir_retrying(dir: &Path) -> io::Result<()> {
    let mut delay = Duration::from_millis(1);
    for _ in 0..110 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                kill_all_in(dir);
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
    fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        cpu_millis: 200,
        memory_mib: 512,
        pids: 256,
    };

    #[test]
    fn detects_v1_and_writes_v1_files() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu"] {
            fs::create_dir_all(root.path().join(c)).unwrap();
            fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let layout = CgroupLayout::detect(root.path()).unwrap();
        assert!(matches!(layout, CgroupLayout::V1 { .. }));
        layout.create("flankbox", "sbx-1").unwrap().set_limits(LIMITS).unwrap();
        let read = |p: &str| fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("memory/flankbox/sbx-1/memory.limit_in_bytes"), "536870912");
        assert_eq!(read("pids/flankbox/sbx-1/pids.max"), "256");
        assert_eq!(read("cpu/flankbox/sbx-1/cpu.cfs_quota_us"), "20000");
        assert_eq!(read("cpu/flankbox/sbx-1/cpu.cfs_period_us"), "100000");
    }

    #[test]
    fn detects_v2_and_writes_v2_files() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory pids").unwrap();
        let layout = CgroupLayout::detect(root.path()).unwrap();
        assert!(matches!(layout, CgroupLayout::V2 { .. }));
        layout.create("flankbox", "sbx-1").unwrap().set_limits(LIMITS).unwrap();
        let read = |p: &str| fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("flankbox/sbx-1/memory.max"), "536870912");
        assert_eq!(read("flankbox/sbx-1/cpu.max"), "20000 100000");
        assert_eq!(read("flankbox/sbx-1/pids.max"), "256");
        assert_eq!(read("flankbox/cgroup.subtree_control"), "+memory +pids +cpu");
    }

    #[test]
    fn a_hybrid_host_with_only_hugetlb_on_v2_is_v1() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "hugetlb").unwrap();
        for c in ["memory", "pids", "cpu"] {
            fs::create_dir_all(root.path().join(c)).unwrap();
            fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        assert!(matches!(
            CgroupLayout::detect(root.path()).unwrap(),
            CgroupLayout::V1 { .. }
        ));
    }

    #[test]
    fn no_hierarchy_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let err = CgroupLayout::detect(root.path()).unwrap_err();
        assert!(err.to_string().contains("no usable cgroup hierarchy"), "{err}");
    }
}
