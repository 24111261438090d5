//! Container and process configuration (seed `LinuxContainer.Configuration`
//! and `Configuration.Process`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::stdio::Stdio;
use crate::dns::DNS;
use crate::hosts::Hosts;
use crate::interface::Interface;
use crate::mount::Mount;

/// The user a process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

impl User {
    /// Parses an image's `User` field: `uid`, `uid:gid` or `root`. Names other
    /// than `root` need the image's `/etc/passwd` and are refused for now.
    pub fn parse(s: &str) -> crate::Result<User> {
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let num = |v: &str| -> crate::Result<u32> {
            match v {
                "" | "root" => Ok(0),
                _ => v.parse().map_err(|_| {
                    crate::ContainerizationError::unsupported(format!(
                        "user {s:?}: only numeric uid[:gid] or root are supported"
                    ))
                }),
            }
        };
        let uid = num(u)?;
        let gid = match g {
            Some(g) => num(g)?,
            None => uid,
        };
        Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        })
    }
}

/// A POSIX resource limit.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Make the container's root filesystem read-only (mount points for the
    /// extra mounts are still created first).
    pub read_only_rootfs: bool,
    /// Size of `/dev/shm` in bytes (`None`: 64 MiB, Docker's default).
    pub shm_size_in_bytes: Option<u64>,
    /// Run a minimal init as the container's PID 1 that forwards signals to
    /// the process and reaps zombies (`docker run --init`).
    pub init: bool,
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
            read_only_rootfs: false,
            shm_size_in_bytes: None,
            init: false,
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
        assert!(User::parse("nobody").is_err());
    }
}
