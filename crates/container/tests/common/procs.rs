//! Host-side bookkeeping for fault and soak tests: processes by command
//! line or ancestry, their descriptors and memory, disk use, mounts.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

/// A process, identified by pid and start time (so a reused pid is not
/// mistaken for the one we saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proc {
    pub pid: u32,
    pub start: u64,
}

/// Fields of /proc/PID/stat after the command name: (state, ppid, start time).
fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

impl Proc {
    /// The live process `pid`, if any.
    pub fn of(pid: u32) -> Option<Proc> {
        let (state, _, start) = stat(pid)?;
        (state != 'Z').then_some(Proc { pid, start })
    }

    /// True while this very process exists and is not a zombie.
    pub fn alive(&self) -> bool {
        Proc::of(self.pid) == Some(*self)
    }

    /// Its command line, arguments joined by spaces.
    pub fn cmdline(&self) -> String {
        cmdline(self.pid)
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes whose command line contains `needle` (not this one).
pub fn mentioning(needle: &str) -> BTreeSet<Proc> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|p| *p != me && cmdline(*p).contains(needle))
        .filter_map(Proc::of)
        .collect()
}

/// `pid` and all its live descendants.
pub fn family(pid: u32) -> BTreeSet<Proc> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| stat(p).map(|(_, pp, _)| (p, pp)))
        .collect();
    let mut out = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Some(proc) = Proc::of(p)
            && out.insert(proc)
        {
            todo.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        }
    }
    out
}

/// Waits up to `secs` for every process in `procs` to be gone; returns the
/// survivors with their command lines.
pub fn wait_gone(procs: &BTreeSet<Proc>, secs: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let left: Vec<String> = procs
            .iter()
            .filter(|p| p.alive())
            .map(|p| format!("{} {}", p.pid, p.cmdline()))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes allocated on disk under `path` (sparse files count what they use).
pub fn disk_use(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            total += disk_use(&e.path());
        }
    }
    total
}

/// Mount points (from this thread's mount namespace) under `prefix`.
pub fn mounts_under(prefix: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(prefix))
        .collect()
}

/// Every file under `dir` (recursively), relative to it.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p.clone());
            }
            out.push(
                p.strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    out
}
