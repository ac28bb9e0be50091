//! What a host leaves on the machine: agents, mounts, loop devices, scratch directories and
//! cgroups. The concurrency test and the soak read it after deleting everything.

use std::fs;
use std::path::{Path, PathBuf};

/// Everything of one host's sandboxes still on the machine.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Processes descended from the host (agents and whatever they run), as `pid name`.
    pub processes: Vec<String>,
    /// Mount points under the data directory.
    pub mounts: Vec<String>,
    /// Loop devices whose backing file is under the data directory.
    pub loop_devices: Vec<String>,
    /// Entries of `{data dir}/run` (one per prepared or running sandbox).
    pub run_dirs: Vec<String>,
    /// Sandbox cgroups under the host's cgroup parents.
    pub cgroups: Vec<String>,
    /// Files under `{data dir}/volumes` (volume images).
    pub volume_images: Vec<String>,
}

impl Leftovers {
    /// Reads what is left now. `cgroup_parents` are the host's parent groups (see
    /// [`cgroup_parents_of`]).
    pub fn read(host_pid: u32, data_dir: &Path, cgroup_parents: &[PathBuf]) -> Self {
        let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
        let under = |p: &str| Path::new(p).starts_with(&data_dir);
        Self {
            processes: descendants(host_pid as i32),
            mounts: fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| under(p))
                .map(String::from)
                .collect(),
            loop_devices: loop_devices_under(&data_dir),
            run_dirs: names_in(&data_dir.join("run")),
            cgroups: cgroup_parents
                .iter()
                .flat_map(|p| names_in(p).into_iter().map(move |n| format!("{}/{n}", p.display())))
                .collect(),
            volume_images: files_under(&data_dir.join("volumes")),
        }
    }

    /// What is left apart from the warm pool: up to `warm_pool` prepared sandboxes (named
    /// `warm-…`, each with its agent, scratch directory, mount, loop device and cgroups). A
    /// sandbox taken from the pool keeps its `warm-` name, so this counts rather than filters.
    pub fn beyond_warm_pool(mut self, warm_pool: usize, cgroup_parents: usize) -> Self {
        fn allow_warm(list: &mut Vec<String>, allowed: usize) {
            if list.iter().all(|s| s.contains("warm-")) && list.len() <= allowed {
                list.clear();
            }
        }
        allow_warm(&mut self.run_dirs, warm_pool);
        allow_warm(&mut self.mounts, warm_pool);
        allow_warm(&mut self.loop_devices, warm_pool);
        allow_warm(&mut self.cgroups, warm_pool * cgroup_parents);
        let agents = self.processes.iter().filter(|p| p.ends_with(" flankbox-agent")).count();
        if agents <= warm_pool && self.processes.len() == agents {
            self.processes.clear();
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The parent cgroups a sandbox process sits under (one per v1 hierarchy, or the v2 one): the
/// directories above its own group.
pub fn cgroup_parents_of(pid: i32) -> Vec<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut parents = Vec::new();
    for line in text.lines() {
        // hierarchy-id:controllers:path
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !path.contains("/flankbox-") {
            continue;
        }
        let base = if controllers.is_empty() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            let Some(c) = ["memory", "pids", "cpu"]
                .into_iter()
                .find(|c| controllers.split(',').any(|x| x == *c))
            else {
                continue;
            };
            PathBuf::from("/sys/fs/cgroup").join(c)
        };
        let group = base.join(path.trim_start_matches('/'));
        if let Some(parent) = group.parent() {
            parents.push(parent.to_path_buf());
        }
    }
    parents.sort();
    parents.dedup();
    parents
}

/// The host's direct children that are agents.
pub fn agents_of(host_pid: u32) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|(_, ppid, name)| *ppid == host_pid as i32 && name == "flankbox-agent")
        .map(|(pid, _, _)| pid)
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir() || !dir.starts_with("/sys"))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file below `dir` (directories left empty do not count).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out.sort();
    out
}

/// (pid, ppid, name) of every process.
fn all_processes() -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        out.push((pid, ppid, name));
    }
    out
}

/// The host's agents that run nothing: prepared sandboxes, as the warm pool holds them.
pub fn idle_agents(host_pid: u32) -> Vec<i32> {
    let all = all_processes();
    agents_of(host_pid)
        .into_iter()
        .filter(|agent| !all.iter().any(|(_, ppid, _)| ppid == agent))
        .collect()
}

fn descendants(root: i32) -> Vec<String> {
    let all = all_processes();
    let mut found = vec![root];
    let mut out = Vec::new();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid, name) in &all {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
                out.push(format!("{pid} {name}"));
            }
        }
        i += 1;
    }
    out.sort();
    out
}

fn loop_devices_under(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/sys/block").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim().trim_end_matches(" (deleted)");
        if Path::new(backing).starts_with(data_dir) {
            out.push(format!("{name} {backing}"));
        }
    }
    out.sort();
    out
}
