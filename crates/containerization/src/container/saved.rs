//! The plain-data part of a [`Configuration`], which `ContainerManager`
//! saves beside a container's root filesystem so that `get` gives the
//! container back as it was created. Not saved: stdio handles, interfaces
//! (they come from the manager's network again) and the boot log path.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use containerization_error::{Code, ContainerizationError, Result};
use serde::{Deserialize, Serialize};

use super::config::{Configuration, Rlimit, User};
use crate::dns::DNS;
use crate::hosts::Hosts;
use crate::mount::Mount;
use crate::seccomp::Seccomp;

/// What `config.json` in a container's directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedConfiguration {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    user: User,
    terminal: bool,
    rlimits: Vec<Rlimit>,
    capabilities: Vec<String>,
    no_new_privileges: bool,
    cpus: u32,
    memory_in_bytes: u64,
    hostname: String,
    mounts: Vec<Mount>,
    dns: Option<DNS>,
    hosts: Option<Hosts>,
    sysctl: BTreeMap<String, String>,
    stop_timeout_ms: u64,
    seccomp: Seccomp,
    read_only_rootfs: bool,
    shm_size_in_bytes: Option<u64>,
    init: bool,
}

impl SavedConfiguration {
    /// The savable part of `c`.
    pub(crate) fn of(c: &Configuration) -> SavedConfiguration {
        let p = &c.process;
        SavedConfiguration {
            args: p.args.clone(),
            env: p.env.clone(),
            cwd: p.cwd.clone(),
            user: p.user.clone(),
            terminal: p.terminal,
            rlimits: p.rlimits.clone(),
            capabilities: p.capabilities.clone(),
            no_new_privileges: p.no_new_privileges,
            cpus: c.cpus,
            memory_in_bytes: c.memory_in_bytes,
            hostname: c.hostname.clone(),
            mounts: c.mounts.clone(),
            dns: c.dns.clone(),
            hosts: c.hosts.clone(),
            sysctl: c.sysctl.clone(),
            stop_timeout_ms: u64::try_from(c.stop_timeout.as_millis()).unwrap_or(u64::MAX),
            seccomp: c.seccomp.clone(),
            read_only_rootfs: c.read_only_rootfs,
            shm_size_in_bytes: c.shm_size_in_bytes,
            init: c.init,
        }
    }

    /// Sets every saved field of `c`.
    pub(crate) fn apply(self, c: &mut Configuration) {
        let p = &mut c.process;
        p.args = self.args;
        p.env = self.env;
        p.cwd = self.cwd;
        p.user = self.user;
        p.terminal = self.terminal;
        p.rlimits = self.rlimits;
        p.capabilities = self.capabilities;
        p.no_new_privileges = self.no_new_privileges;
        c.cpus = self.cpus;
        c.memory_in_bytes = self.memory_in_bytes;
        c.hostname = self.hostname;
        c.mounts = self.mounts;
        c.dns = self.dns;
        c.hosts = self.hosts;
        c.sysctl = self.sysctl;
        c.stop_timeout = Duration::from_millis(self.stop_timeout_ms);
        c.seccomp = self.seccomp;
        c.read_only_rootfs = self.read_only_rootfs;
        c.shm_size_in_bytes = self.shm_size_in_bytes;
        c.init = self.init;
    }

    /// Writes `path` atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| {
            ContainerizationError::internal("cannot encode the container configuration")
                .with_cause(e)
        })?;
        crate::write_atomic(path, &json)
    }

    /// Reads `path`; `None` when there is no such file.
    pub(crate) fn load(path: &Path) -> Result<Option<SavedConfiguration>> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ContainerizationError::internal(format!(
                    "cannot read {}",
                    path.display()
                ))
                .with_cause(e));
            }
        };
        serde_json::from_slice(&data).map(Some).map_err(|e| {
            ContainerizationError::new(
                Code::InternalError,
                format!("{} is not a container configuration", path.display()),
            )
            .with_cause(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_file() {
        let mut c = Configuration::default();
        c.process.args = vec!["sh".into(), "-c".into(), "true".into()];
        c.process.user = User::parse("nobody").unwrap();
        c.memory_in_bytes = 256 << 20;
        c.stop_timeout = Duration::from_millis(1500);
        c.mounts = vec![Mount::any("tmpfs", "tmpfs", "/run", vec!["size=1m".into()])];
        c.dns = Some(DNS::default());
        c.init = true;
        let saved = SavedConfiguration::of(&c);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert_eq!(SavedConfiguration::load(&path).unwrap(), None);
        saved.save(&path).unwrap();
        let loaded = SavedConfiguration::load(&path).unwrap().unwrap();
        assert_eq!(loaded, saved);
        let mut back = Configuration::default();
        loaded.apply(&mut back);
        assert_eq!(SavedConfiguration::of(&back), saved);
        assert_eq!(back.stop_timeout, Duration::from_millis(1500));
        std::fs::write(&path, "{").unwrap();
        assert!(SavedConfiguration::load(&path).is_err());
    }
}
