//! Seccomp profiles for container processes (the OCI `linux.seccomp`
//! object, applied by the guest agent before exec).
//!
//! The VM is the isolation boundary; the default profile is defence in
//! depth inside it, in the spirit of Docker's: it refuses (EPERM) the
//! syscalls that manage the guest kernel as a whole (modules, kexec, swap,
//! accounting, raw I/O ports, the kernel keyring, BPF, perf) and that no
//! ordinary container needs. Like Docker's profile it steps aside for a
//! syscall when the process was given the capability that governs it
//! (`--cap-add SYS_MODULE` lets `init_module` through).

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

/// Which seccomp profile a container's processes run under.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Seccomp {
    /// [`default_profile`] for the process's capabilities.
    #[default]
    Default,
    /// No filter (Docker's `seccomp=unconfined`).
    Unconfined,
    /// This profile.
    Profile(LinuxSeccomp),
}

impl Seccomp {
    /// The profile to put in the spec of a process holding `capabilities`.
    pub fn resolve(&self, capabilities: &[String]) -> Option<LinuxSeccomp> {
        match self {
            Seccomp::Default => Some(default_profile(capabilities)),
            Seccomp::Unconfined => None,
            Seccomp::Profile(p) => Some(p.clone()),
        }
    }
}

/// Syscalls the default profile refuses, with the capability that lifts
/// the refusal (`None`: always refused).
const DENIED: &[(&str, Option<&str>)] = &[
    ("init_module", Some("CAP_SYS_MODULE")),
    ("finit_module", Some("CAP_SYS_MODULE")),
    ("delete_module", Some("CAP_SYS_MODULE")),
    ("create_module", None),
    ("get_kernel_syms", None),
    ("query_module", None),
    ("kexec_load", Some("CAP_SYS_BOOT")),
    ("kexec_file_load", Some("CAP_SYS_BOOT")),
    ("reboot", Some("CAP_SYS_BOOT")),
    ("swapon", Some("CAP_SYS_ADMIN")),
    ("swapoff", Some("CAP_SYS_ADMIN")),
    ("acct", Some("CAP_SYS_PACCT")),
    ("ioperm", Some("CAP_SYS_RAWIO")),
    ("iopl", Some("CAP_SYS_RAWIO")),
    ("bpf", Some("CAP_SYS_ADMIN")),
    ("perf_event_open", Some("CAP_SYS_ADMIN")),
    ("lookup_dcookie", Some("CAP_SYS_ADMIN")),
    ("quotactl", Some("CAP_SYS_ADMIN")),
    ("open_by_handle_at", Some("CAP_DAC_READ_SEARCH")),
    ("add_key", Some("CAP_SYS_ADMIN")),
    ("request_key", Some("CAP_SYS_ADMIN")),
    ("keyctl", Some("CAP_SYS_ADMIN")),
    ("userfaultfd", Some("CAP_SYS_PTRACE")),
    ("uselib", None),
    ("ustat", None),
    ("_sysctl", None),
    ("sysfs", None),
    ("nfsservctl", None),
    ("vm86", None),
    ("vm86old", None),
];

/// The default profile for a process holding `capabilities`.
pub fn default_profile(capabilities: &[String]) -> LinuxSeccomp {
    let names: Vec<&str> = DENIED
        .iter()
        .filter(|(_, cap)| !cap.is_some_and(|c| capabilities.iter().any(|h| h == c)))
        .map(|(name, _)| *name)
        .collect();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}],
    });
    serde_json::from_value(profile).expect("the default seccomp profile is valid")
}

/// Reads a profile in the OCI (and Docker) JSON format from `path`.
pub fn load_profile(path: &std::path::Path) -> crate::Result<LinuxSeccomp> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::ContainerizationError::invalid_argument(format!(
            "cannot read seccomp profile {}: {e}",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        crate::ContainerizationError::invalid_argument(format!(
            "invalid seccomp profile {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_lift_their_syscalls() {
        let names =
            |p: &LinuxSeccomp| -> Vec<String> { p.syscalls().as_ref().unwrap()[0].names().clone() };
        let plain = default_profile(&[]);
        assert!(names(&plain).contains(&"init_module".to_string()));
        assert!(names(&plain).contains(&"uselib".to_string()));
        let module = default_profile(&["CAP_SYS_MODULE".into()]);
        assert!(!names(&module).contains(&"init_module".to_string()));
        assert!(names(&module).contains(&"kexec_load".to_string()));
    }
}
