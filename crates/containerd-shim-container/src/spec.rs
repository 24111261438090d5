//! The parts of an OCI runtime spec (the bundle's `config.json`, and the
//! `Process` of an exec) that a VM container uses.
//!
//! Parsed leniently with serde: containerd and Kubernetes fill many fields
//! (namespaces, cgroup paths, seccomp) that describe a host container and
//! have no meaning for one in its own VM; those are ignored.

use std::path::Path;

use containerization::{ProcessConfiguration, User};
use containerization_error::{ContainerizationError, Result};
use serde::Deserialize;

/// Memory a task gets when its spec sets no limit.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// The runtime spec's `process`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Process {
    /// Allocate a terminal.
    pub terminal: bool,
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Numeric user.
    pub user: SpecUser,
    /// `capabilities.bounding` is used as the capability set.
    pub capabilities: Option<Capabilities>,
    /// `no_new_privileges`.
    #[serde(rename = "noNewPrivileges")]
    pub no_new_privileges: bool,
}

/// The spec's `process.user`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SpecUser {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(rename = "additionalGids")]
    pub additional_gids: Option<Vec<u32>>,
}

/// The spec's `process.capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Bounding set.
    pub bounding: Option<Vec<String>>,
}

/// The whole spec, reduced to what we use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Spec {
    /// The init process.
    pub process: Option<Process>,
    /// Host name.
    pub hostname: Option<String>,
    /// Linux-specific settings.
    pub linux: Option<Linux>,
}

/// The spec's `linux`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Linux {
    /// Resource limits.
    pub resources: Option<Resources>,
}

/// The spec's `linux.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Memory.
    pub memory: Option<MemoryResources>,
    /// CPU.
    pub cpu: Option<CpuResources>,
}

/// The spec's `linux.resources.memory`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MemoryResources {
    /// Limit in bytes (-1 or absent: none).
    pub limit: Option<i64>,
}

/// The spec's `linux.resources.cpu`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CpuResources {
    /// CFS quota in microseconds per period.
    pub quota: Option<i64>,
    /// CFS period in microseconds.
    pub period: Option<u64>,
}

impl Spec {
    /// Reads `bundle/config.json`.
    pub fn load(bundle: &Path) -> Result<Spec> {
        let path = bundle.join("config.json");
        let data = std::fs::read(&path).map_err(|e| {
            ContainerizationError::not_found(format!(
                "cannot read the runtime spec {}",
                path.display()
            ))
            .with_cause(e)
        })?;
        serde_json::from_slice(&data).map_err(|e| {
            ContainerizationError::invalid_argument(format!(
                "{} is not a valid OCI runtime spec",
                path.display()
            ))
            .with_cause(e)
        })
    }

    fn resources(&self) -> Option<&Resources> {
        self.linux.as_ref()?.resources.as_ref()
    }

    /// Memory for the container: the spec's limit, else [`DEFAULT_MEMORY`].
    pub fn memory_in_bytes(&self) -> u64 {
        self.resources()
            .and_then(|r| r.memory.as_ref()?.limit)
            .filter(|l| *l >= 16 << 20)
            .map(|l| l as u64)
            .unwrap_or(DEFAULT_MEMORY)
    }

    /// CPUs for the VM: the CFS quota rounded up, else 1.
    pub fn cpus(&self) -> u32 {
        let cpu = self.resources().and_then(|r| r.cpu.as_ref());
        match cpu.and_then(|c| Some((c.quota?, c.period?))) {
            Some((q, p)) if q > 0 && p > 0 => ((q as u64).div_ceil(p)).clamp(1, 64) as u32,
            _ => 1,
        }
    }
}

impl Process {
    /// Parses an exec's process spec (JSON, as containerd sends it).
    pub fn from_json(data: &[u8]) -> Result<Process> {
        serde_json::from_slice(data).map_err(|e| {
            ContainerizationError::invalid_argument("the exec process spec is not valid JSON")
                .with_cause(e)
        })
    }

    /// Applies this process's settings to `p` (stdio is left alone).
    pub fn apply(&self, p: &mut ProcessConfiguration) -> Result<()> {
        if self.args.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "the process spec has no args; give the image a command or pass one",
            ));
        }
        p.args = self.args.clone();
        if !self.env.is_empty() {
            p.env = self.env.clone();
        }
        if !self.cwd.is_empty() {
            p.cwd = self.cwd.clone();
        }
        p.user = User {
            uid: self.user.uid,
            gid: self.user.gid,
            additional_gids: self.user.additional_gids.clone().unwrap_or_default(),
            username: None,
        };
        p.terminal = self.terminal;
        if let Some(caps) = self.capabilities.as_ref().and_then(|c| c.bounding.clone()) {
            p.capabilities = caps;
        }
        p.no_new_privileges = self.no_new_privileges;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 1000, "gid": 100},
                    "args": ["sh", "-c", "exit 3"], "env": ["PATH=/bin", "A=b"], "cwd": "/tmp",
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": true},
        "root": {"path": "rootfs"},
        "hostname": "h",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"resources": {"memory": {"limit": 268435456}, "cpu": {"quota": 150000, "period": 100000}},
                  "namespaces": [{"type": "pid"}], "maskedPaths": ["/proc/kcore"]}
    }"#;

    #[test]
    fn reads_a_containerd_spec() {
        let spec: Spec = serde_json::from_str(CONFIG).unwrap();
        assert_eq!(spec.memory_in_bytes(), 256 << 20);
        assert_eq!(spec.cpus(), 2);
        let mut p = ProcessConfiguration::default();
        spec.process.unwrap().apply(&mut p).unwrap();
        assert_eq!(p.args, ["sh", "-c", "exit 3"]);
        assert_eq!(p.env, ["PATH=/bin", "A=b"]);
        assert_eq!(p.cwd, "/tmp");
        assert_eq!((p.user.uid, p.user.gid), (1000, 100));
        assert_eq!(p.capabilities, ["CAP_KILL"]);
        assert!(p.no_new_privileges);
    }

    #[test]
    fn defaults_without_resources() {
        let spec: Spec = serde_json::from_str(r#"{"process": {"args": ["true"]}}"#).unwrap();
        assert_eq!(spec.memory_in_bytes(), DEFAULT_MEMORY);
        assert_eq!(spec.cpus(), 1);
        let empty = Process::default();
        assert!(empty.apply(&mut ProcessConfiguration::default()).is_err());
        assert!(Process::from_json(b"{not json").is_err());
    }
}
