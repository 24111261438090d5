//! Container and process configuration (seed `LinuxContainer.Configuration`
//! and `Configuration.Process`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::stdio::Stdio;
use crate::dns::DNS;
use crate::hosts::Hosts;
use crate::interface::Interface;
use crate::mount::Mount;

/// The user a process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// A user (and group) given by name, `name` or `name:group`: the guest
    /// agent resolves it in the container's `/etc/passwd` and `/etc/group`
    /// (only the container's files know the names) and then sets uid and gid.
    pub username: Option<String>,
}

impl User {
    /// Parses a `User` field as Docker does: `uid`, `uid:gid`, `root`,
    /// `name`, `name:group`. Numeric parts are taken as they are; any name
    /// other than `root` is left for the guest to resolve.
    pub fn parse(s: &str) -> crate::Result<User> {
        let s = s.trim();
        if s.contains(char::is_whitespace) || s.matches(':').count() > 1 {
            return Err(crate::ContainerizationError::invalid_argument(format!(
                "invalid user {s:?}: use uid, uid:gid, name or name:group"
            )));
        }
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let num = |v: &str| -> Option<u32> {
            match v {
                "" | "root" => Some(0),
                _ => v.parse().ok(),
            }
        };
        match (num(u), g.map(num)) {
            (Some(uid), None) => Ok(User {
                uid,
                gid: uid,
                ..User::default()
            }),
            (Some(uid), Some(Some(gid))) => Ok(User {
                uid,
                gid,
                ..User::default()
            }),
            _ => Ok(User {
                username: Some(s.to_string()),
                ..User::default()
            }),
        }
    }
}

/// A POSIX resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, ...
    pub kind: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// How one process runs and where its stdio goes.
#[derive(Debug)]
pub struct ProcessConfiguration {
    /// argv; `args[0]` is looked up in `PATH`.
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User and groups.
    pub user: User,
    /// Allocate a PTY in the guest (stdout and stderr merge).
    pub terminal: bool,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// Capabilities (all of bounding/effective/permitted).
    pub capabilities: Vec<String>,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// Where stdin comes from (`Stdio::Null` = no stdin).
    pub stdin: Stdio,
    /// Where stdout goes.
    pub stdout: Stdio,
    /// Where stderr goes (ignored with `terminal`).
    pub stderr: Stdio,
}

impl Default for ProcessConfiguration {
    fn default() -> Self {
        ProcessConfiguration {
            args: Vec::new(),
            env: vec![format!("PATH={}", vminitd_api::DEFAULT_PATH)],
            cwd: "/".into(),
            user: User::default(),
            terminal: false,
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                soft: 1024,
                hard: 1024,
            }],
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            no_new_privileges: false,
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
        }
    }
}

impl ProcessConfiguration {
    /// Applies Docker's `--cap-add` / `--cap-drop` to the capability set:
    /// names are `CAP_*` (case-insensitive, prefix optional) or `ALL`; drops
    /// are applied before adds, so `--cap-drop ALL --cap-add X` leaves X.
    pub fn adjust_capabilities(&mut self, add: &[String], drop: &[String]) -> crate::Result<()> {
        let norm = |c: &String| -> crate::Result<String> {
            let up = c.trim().to_ascii_uppercase();
            if up == "ALL" {
                return Ok(up);
            }
            let name = if up.starts_with("CAP_") {
                up
            } else {
                format!("CAP_{up}")
            };
            name.parse::<caps::Capability>().map_err(|_| {
                crate::ContainerizationError::invalid_argument(format!("unknown capability '{c}'"))
            })?;
            Ok(name)
        };
        let add = add.iter().map(norm).collect::<crate::Result<Vec<_>>>()?;
        let drop = drop.iter().map(norm).collect::<crate::Result<Vec<_>>>()?;
        if drop.iter().any(|c| c == "ALL") {
            self.capabilities.clear();
        } else {
            self.capabilities.retain(|c| !drop.contains(c));
        }
        if add.iter().any(|c| c == "ALL") {
            self.capabilities = caps::all().iter().map(|c| c.to_string()).collect();
            self.capabilities.sort();
        } else {
            for c in add {
                if !self.capabilities.contains(&c) {
                    self.capabilities.push(c);
                }
            }
        }
        Ok(())
    }

    /// Sets a resource limit, replacing one of the same kind.
    pub fn set_rlimit(&mut self, limit: Rlimit) {
        self.rlimits.retain(|r| r.kind != limit.kind);
        self.rlimits.push(limit);
    }

    /// Copy of everything but the stdio handles (those are not cloneable).
    pub fn clone_without_stdio(&self) -> Self {
        ProcessConfiguration {
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            terminal: self.terminal,
            rlimits: self.rlimits.clone(),
            capabilities: self.capabilities.clone(),
            no_new_privileges: self.no_new_privileges,
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
        }
    }

    /// Exchanges the stdio handles with `other`'s.
    pub(crate) fn swap_stdio(&mut self, other: &mut ProcessConfiguration) {
        std::mem::swap(&mut self.stdin, &mut other.stdin);
        std::mem::swap(&mut self.stdout, &mut other.stdout);
        std::mem::swap(&mut self.stderr, &mut other.stderr);
    }
}

/// A container's configuration.
#[derive(Debug)]
pub struct Configuration {
    /// The container's init process.
    pub process: ProcessConfiguration,
    /// CPUs for the container (the VM gets the same number).
    pub cpus: u32,
    /// Memory limit of the container in bytes (the VM gets this plus
    /// [`MEMORY_OVERHEAD`]).
    pub memory_in_bytes: u64,
    /// Host name inside the container.
    pub hostname: String,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// Network interfaces (`eth0`, `eth1`, ... in order).
    pub interfaces: Vec<Arc<dyn Interface>>,
    /// `/etc/resolv.conf` to write into the rootfs, if any.
    pub dns: Option<DNS>,
    /// `/etc/hosts` to write into the rootfs, if any.
    pub hosts: Option<Hosts>,
    /// Sysctls set in the container.
    pub sysctl: BTreeMap<String, String>,
    /// Serial console log of the VM.
    pub bootlog: Option<PathBuf>,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub stop_timeout: std::time::Duration,
    /// Seccomp profile of the container's processes (exec'd ones too).
    pub seccomp: crate::seccomp::Seccomp,
    /// Make the container's root filesystem read-only (mount points for the
    /// extra mounts are still created first).
    pub read_only_rootfs: bool,
    /// Size of `/dev/shm` in bytes (`None`: 64 MiB, Docker's default).
    pub shm_size_in_bytes: Option<u64>,
    /// Run a small init as PID 1 of the container that forwards signals to
    /// the process and reaps orphaned zombies (Docker's `--init`).
    pub init: bool,
    /// Run no program: `start` builds the container's root and mounts and
    /// holds them with an idle PID 1, so [`stat_path`], [`copy_in`] and
    /// [`copy_out`] reach the files of a container that is not running
    /// (`container cp` and `export` of a stopped container).
    ///
    /// [`stat_path`]: super::LinuxContainer::stat_path
    /// [`copy_in`]: super::LinuxContainer::copy_in
    /// [`copy_out`]: super::LinuxContainer::copy_out
    pub files_only: bool,
    /// Runs the container's binaries of another architecture through
    /// qemu-user registered in the guest (the seed's `rosetta`); `None`:
    /// the host's architecture only.
    pub emulator: Option<crate::emulator::Emulator>,
}

impl Configuration {
    /// Refuses a configuration no VM can run.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.process.args.is_empty() {
            return Err(crate::ContainerizationError::invalid_argument(
                "the container's process has no command (args is empty)",
            ));
        }
        if self.cpus == 0 || self.memory_in_bytes < (16 << 20) {
            return Err(crate::ContainerizationError::invalid_argument(
                "a container needs at least 1 CPU and 16 MiB of memory",
            ));
        }
        Ok(())
    }

    /// Copy of everything but the init process's stdio handles.
    pub(crate) fn clone_without_stdio(&self) -> Configuration {
        Configuration {
            process: self.process.clone_without_stdio(),
            cpus: self.cpus,
            memory_in_bytes: self.memory_in_bytes,
            hostname: self.hostname.clone(),
            mounts: self.mounts.clone(),
            interfaces: self.interfaces.clone(),
            dns: self.dns.clone(),
            hosts: self.hosts.clone(),
            sysctl: self.sysctl.clone(),
            bootlog: self.bootlog.clone(),
            stop_timeout: self.stop_timeout,
            seccomp: self.seccomp.clone(),
            read_only_rootfs: self.read_only_rootfs,
            shm_size_in_bytes: self.shm_size_in_bytes,
            init: self.init,
            files_only: self.files_only,
            emulator: self.emulator.clone(),
        }
    }
}

/// Memory added to the VM on top of the container's limit, for the guest
/// kernel and the agent (Apple adds 128 MiB too).
pub const MEMORY_OVERHEAD: u64 = 128 << 20;

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            process: ProcessConfiguration::default(),
            cpus: 1,
            memory_in_bytes: 512 << 20,
            hostname: String::new(),
            mounts: Vec::new(),
            interfaces: Vec::new(),
            dns: None,
            hosts: None,
            sysctl: BTreeMap::new(),
            bootlog: None,
            stop_timeout: std::time::Duration::from_secs(5),
            init: false,
            files_only: false,
            emulator: None,
            seccomp: crate::seccomp::Seccomp::Default,
            read_only_rootfs: false,
            shm_size_in_bytes: None,
        }
    }
}

/// Which way a unix socket is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDirection {
    /// A guest socket is made reachable on the host.
    OutOf,
    /// A host socket is made reachable in the guest (not supported yet).
    Into,
}

/// A unix socket relayed between guest and host (seed `UnixSocketConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocketConfiguration {
    /// Socket path on the side it exists on (guest path for `OutOf`).
    pub source: PathBuf,
    /// Path the relay listens on (host path for `OutOf`).
    pub destination: PathBuf,
    /// Direction.
    pub direction: SocketDirection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_users() {
        assert_eq!(User::parse("").unwrap().uid, 0);
        assert_eq!(User::parse("root").unwrap(), User::default());
        let u = User::parse("1000:100").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 100));
        assert_eq!(User::parse("7").unwrap().gid, 7);
        assert_eq!(
            User::parse("nobody").unwrap().username.as_deref(),
            Some("nobody")
        );
        assert_eq!(
            User::parse("1000:staff").unwrap().username.as_deref(),
            Some("1000:staff")
        );
        assert!(User::parse("a:b:c").is_err());
        assert!(User::parse("a b").is_err());
    }

    #[test]
    fn capabilities_adjust_like_docker() {
        let mut p = ProcessConfiguration::default();
        p.adjust_capabilities(&["net_admin".into()], &["CAP_CHOWN".into()])
            .unwrap();
        assert!(p.capabilities.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!p.capabilities.contains(&"CAP_CHOWN".to_string()));
        p.adjust_capabilities(&["SYS_TIME".into()], &["all".into()])
            .unwrap();
        assert_eq!(p.capabilities, ["CAP_SYS_TIME"]);
        p.adjust_capabilities(&["ALL".into()], &[]).unwrap();
        assert!(p.capabilities.len() > 30);
        assert!(p.adjust_capabilities(&["CAP_NOPE".into()], &[]).is_err());
        p.set_rlimit(Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            soft: 10,
            hard: 20,
        });
        assert_eq!(p.rlimits.len(), 1);
        assert_eq!(p.rlimits[0].soft, 10);
    }
}
