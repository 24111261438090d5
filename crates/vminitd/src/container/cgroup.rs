//! One cgroup v2 directory per container: `<root>/container/<id>`, limits
//! from the spec's resources, statistics for `ContainerStatistics`.

use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::runtime::LinuxResources;
use vminitd_api::proto;

/// Controllers enabled for container cgroups.
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids", "io"];

/// True when `root` is a cgroup v2 mount (the host test machine may use v1).
pub fn available(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// Enables `CONTROLLERS` for children of `dir`, ignoring ones the kernel lacks.
fn enable_controllers(dir: &Path) {
    let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in CONTROLLERS {
        if have.split_whitespace().any(|h| h == *c) {
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

/// Creates the container's cgroup and applies its limits; returns its path.
pub fn create(root: &Path, id: &str, resources: Option<&LinuxResources>) -> Result<PathBuf> {
    let parent = root.join("container");
    enable_controllers(root);
    std::fs::create_dir_all(&parent).context(
        Code::InternalError,
        format!("cannot create {}", parent.display()),
    )?;
    enable_controllers(&parent);
    let dir = parent.join(id);
    std::fs::create_dir_all(&dir).context(
        Code::InternalError,
        format!("cannot create {}", dir.display()),
    )?;
    if let Some(res) = resources {
        apply(&dir, res)?;
    }
    Ok(dir)
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value).context(
        Code::InvalidArgument,
        format!("cannot set {file} to {value} in {}", dir.display()),
    )
}

/// Writes memory.max, cpu.max and pids.max from the spec's resources.
fn apply(dir: &Path, res: &LinuxResources) -> Result<()> {
    if let Some(mem) = res.memory()
        && let Some(limit) = mem.limit().filter(|l| *l > 0)
    {
        write(dir, "memory.max", &limit.to_string())?;
        // Without swap a limit is a limit: the OOM killer acts at once.
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    }
    if let Some(cpu) = res.cpu() {
        if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
            let period = cpu.period().unwrap_or(100_000);
            write(dir, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
            // The runc conversion from v1 shares (2..262144) to v2 weight (1..10000).
            let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
            let _ = std::fs::write(dir.join("cpu.weight"), weight.to_string());
        }
    }
    if let Some(pids) = res.pids()
        && pids.limit() > 0
    {
        write(dir, "pids.max", &pids.limit().to_string())?;
    }
    Ok(())
}

/// Removes the container's cgroup (after its processes are gone).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}

/// Adds `pid` to the cgroup.
pub fn join(dir: &Path, pid: u32) -> Result<()> {
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).map_err(|e| {
        ContainerizationError::internal(format!("cannot join cgroup {}", dir.display()))
            .with_cause(e)
    })
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads "key value" lines of a flat-keyed cgroup file.
fn keyed(dir: &Path, file: &str) -> std::collections::HashMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// cgroup statistics of one container.
pub fn statistics(dir: &Path, id: &str) -> proto::ContainerStatistics {
    let cpu = keyed(dir, "cpu.stat");
    let mem = keyed(dir, "memory.stat");
    let events = keyed(dir, "memory.events");
    let get = |m: &std::collections::HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let limit = std::fs::read_to_string(dir.join("memory.max"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let pids_limit = std::fs::read_to_string(dir.join("pids.max"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    proto::ContainerStatistics {
        container_id: id.to_string(),
        cpu: Some(proto::CpuStatistics {
            usage_usec: get(&cpu, "usage_usec"),
            user_usec: get(&cpu, "user_usec"),
            system_usec: get(&cpu, "system_usec"),
            throttled_usec: get(&cpu, "throttled_usec"),
            nr_throttled: get(&cpu, "nr_throttled"),
        }),
        memory: Some(proto::MemoryStatistics {
            usage_bytes: read_u64(dir, "memory.current"),
            limit_bytes: limit,
            anon: get(&mem, "anon"),
            file: get(&mem, "file"),
            oom_kill: get(&events, "oom_kill"),
        }),
        pids: Some(proto::PidsStatistics {
            current: read_u64(dir, "pids.current"),
            limit: pids_limit,
        }),
        io: io_stat(dir),
        networks: Vec::new(),
    }
}

/// Parses io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...".
fn io_stat(dir: &Path) -> Vec<proto::IoDeviceStatistics> {
    let text = std::fs::read_to_string(dir.join("io.stat")).unwrap_or_default();
    parse_io_stat(&text)
}

fn parse_io_stat(text: &str) -> Vec<proto::IoDeviceStatistics> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let (maj, min) = it.next()?.split_once(':')?;
            let mut s = proto::IoDeviceStatistics {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                ..Default::default()
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => s.read_bytes = v,
                    "wbytes" => s.write_bytes = v,
                    "rios" => s.read_ios = v,
                    "wios" => s.write_ios = v,
                    _ => {}
                }
            }
            Some(s)
        })
        .collect()
}

/// Counters of every interface in /sys/class/net.
pub fn network_statistics() -> Vec<proto::NetworkStatistics> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<_> = dir
        .flatten()
        .map(|e| {
            let s = e.path().join("statistics");
            proto::NetworkStatistics {
                interface: e.file_name().to_string_lossy().into_owned(),
                rx_bytes: read_u64(&s, "rx_bytes"),
                rx_packets: read_u64(&s, "rx_packets"),
                rx_errors: read_u64(&s, "rx_errors"),
                tx_bytes: read_u64(&s, "tx_bytes"),
                tx_packets: read_u64(&s, "tx_packets"),
                tx_errors: read_u64(&s, "tx_errors"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_lines_parse() {
        let s = parse_io_stat("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].major, s[0].minor), (254, 0));
        assert_eq!((s[0].read_bytes, s[0].write_bytes), (4096, 8192));
        assert_eq!((s[0].read_ios, s[0].write_ios), (1, 2));
    }
}
