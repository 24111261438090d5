//! `--ulimit`, `--cap-add` and `--cap-drop`: parsing (CLI) and the rule
//! that turns them into the init process's limits and capabilities (helper).

use containerization_error::{ContainerizationError, Result};
use serde::{Deserialize, Serialize};

/// A resource limit of the container's processes (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ulimit {
    /// `RLIMIT_NOFILE`, ...
    pub kind: String,
    /// Soft limit (`u64::MAX` = unlimited).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Every Linux capability, by its OCI name.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const RLIMITS: [&str; 16] = [
    "cpu",
    "fsize",
    "data",
    "stack",
    "core",
    "rss",
    "nproc",
    "nofile",
    "memlock",
    "as",
    "locks",
    "sigpending",
    "msgqueue",
    "nice",
    "rtprio",
    "rttime",
];

fn limit(flag: &str, v: &str) -> Result<u64> {
    match v {
        "unlimited" | "-1" => Ok(u64::MAX),
        _ => v.parse().map_err(|_| {
            ContainerizationError::invalid_argument(format!(
                "invalid --ulimit '{flag}': '{v}' is not a number or unlimited"
            ))
        }),
    }
}

/// Parses `type=soft[:hard]` (Docker's and Apple's syntax).
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, values) = s.split_once('=').ok_or_else(|| {
        ContainerizationError::invalid_argument(format!(
            "invalid --ulimit '{s}': use type=soft[:hard], e.g. nofile=1024:2048"
        ))
    })?;
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("rlimit_").unwrap_or(&name);
    if !RLIMITS.contains(&name) {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid --ulimit '{s}': unknown type '{name}' (one of {})",
            RLIMITS.join(", ")
        )));
    }
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (limit(s, a)?, limit(s, b)?),
        None => (limit(s, values)?, limit(s, values)?),
    };
    if soft > hard {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid --ulimit '{s}': the soft limit exceeds the hard limit"
        )));
    }
    Ok(Ulimit {
        kind: format!("RLIMIT_{}", name.to_ascii_uppercase()),
        soft,
        hard,
    })
}

/// `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` -> `CAP_NET_ADMIN`; `all` -> `ALL`.
pub fn normalize_capability(s: &str) -> Result<String> {
    let up = s.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if !ALL_CAPABILITIES.contains(&name.as_str()) {
        return Err(ContainerizationError::invalid_argument(format!(
            "unknown capability '{s}'"
        )));
    }
    Ok(name)
}

/// The capability set: `defaults`, minus `drop` (`ALL` drops every one),
/// plus `add` (`ALL` adds every one). Adding wins over dropping, as in Docker.
pub fn capabilities(defaults: &[&str], add: &[String], drop: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = if drop.iter().any(|d| d == "ALL") {
        Vec::new()
    } else {
        defaults
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|c| c.to_string())
            .collect()
    };
    let all = add.iter().any(|a| a == "ALL");
    for c in ALL_CAPABILITIES {
        if (all || add.iter().any(|a| a == c)) && !caps.iter().any(|x| x == c) {
            caps.push(c.to_string());
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_and_capabilities() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.kind.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 1024, 2048)
        );
        assert_eq!(parse_ulimit("core=unlimited").unwrap().hard, u64::MAX);
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(normalize_capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert!(normalize_capability("CAP_FLY").is_err());
        let d = ["CAP_CHOWN", "CAP_KILL"];
        assert_eq!(
            capabilities(&d, &["CAP_NET_ADMIN".into()], &["CAP_KILL".into()]),
            ["CAP_CHOWN", "CAP_NET_ADMIN"]
        );
        assert_eq!(
            capabilities(&d, &["CAP_KILL".into()], &["ALL".into()]),
            ["CAP_KILL"]
        );
        assert_eq!(capabilities(&d, &["ALL".into()], &[]).len(), 41);
    }
}
