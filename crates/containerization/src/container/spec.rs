//! The OCI runtime spec handed to the guest agent for a container or exec.

use serde_json::{Value, json};

use super::config::{Configuration, ProcessConfiguration};

/// A guest mount prepared for the container (already mounted in the guest
/// when it came from a block device or share; bind-mounted into the rootfs).
#[derive(Debug, Clone)]
pub(crate) struct SpecMount {
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub options: Vec<String>,
}

/// The `process` object.
pub(crate) fn process_json(p: &ProcessConfiguration) -> Value {
    let caps: Vec<&String> = p.capabilities.iter().collect();
    let rlimits: Vec<Value> = p
        .rlimits
        .iter()
        .map(|r| json!({"type": r.kind, "soft": r.soft, "hard": r.hard}))
        .collect();
    json!({
        "terminal": p.terminal,
        "user": {
            "uid": p.user.uid,
            "gid": p.user.gid,
            "additionalGids": p.user.additional_gids,
            "username": p.user.username,
        },
        "args": p.args,
        "env": p.env,
        "cwd": p.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "rlimits": rlimits,
        "noNewPrivileges": p.no_new_privileges,
    })
}

/// The full spec for a container whose rootfs is mounted at `root` in the guest.
pub(crate) fn container_spec(
    id: &str,
    config: &Configuration,
    process: &ProcessConfiguration,
    root: &str,
    extra_mounts: &[SpecMount],
) -> Value {
    let shm_kib = config
        .shm_size_in_bytes
        .unwrap_or(64 << 20)
        .div_ceil(1024)
        .max(1);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        // The VM's devpts, not a new instance: the agent opens a process's
        // PTY there, and only then does `/dev/pts/N` exist in the container
        // (ttyname, `tty`, shells' job control need it). The VM holds this
        // one container, so nothing else's terminals are exposed.
        json!({"destination": "/dev/pts", "type": "bind", "source": "/dev/pts", "options": ["rbind", "nosuid", "noexec"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_kib}k")]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in extra_mounts {
        mounts.push(json!({
            "destination": m.destination,
            "type": m.kind,
            "source": m.source,
            "options": m.options,
        }));
    }
    let hostname = if config.hostname.is_empty() {
        id
    } else {
        config.hostname.as_str()
    };
    let cpus = u64::from(config.cpus.max(1));
    // Read by the agent's vmexec (crates/vminitd/src/container/init.rs).
    let mut annotations = serde_json::Map::new();
    if config.init {
        annotations.insert(vminitd_api::INIT_ANNOTATION.into(), "true".into());
    }
    if config.files_only {
        annotations.insert(vminitd_api::HOLD_ANNOTATION.into(), "true".into());
    }
    json!({
        "ociVersion": "1.0.2",
        "process": process_json(process),
        "root": {"path": root, "readonly": config.read_only_rootfs},
        "hostname": hostname,
        "annotations": annotations,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/container/{id}"),
            "sysctl": config.sysctl,
            "resources": {
                "memory": {"limit": config.memory_in_bytes},
                "cpu": {"quota": cpus * 100_000, "period": 100_000u64},
            },
            // No network namespace: the container uses the VM's interfaces,
            // which belong to it alone (as in Apple's vmexec).
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ],
            "seccomp": config.seccomp.resolve(&process.capabilities),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_as_oci_and_carries_limits() {
        let mut config = Configuration::default();
        config.process.args = vec!["/bin/echo".into(), "hi".into()];
        config.memory_in_bytes = 512 << 20;
        config.cpus = 2;
        let extra = [SpecMount {
            kind: "bind".into(),
            source: "/run/container/c1/mounts/0".into(),
            destination: "/data".into(),
            options: vec!["rbind".into(), "ro".into()],
        }];
        let v = container_spec(
            "c1",
            &config,
            &config.process,
            "/run/container/c1/rootfs",
            &extra,
        );
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(512 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(200_000));
        assert_eq!(spec.hostname().as_deref(), Some("c1"));
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap()[1], "hi");
        assert_eq!(
            p.capabilities()
                .as_ref()
                .unwrap()
                .bounding()
                .as_ref()
                .unwrap()
                .len(),
            14
        );
        assert!(
            spec.mounts()
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.destination().to_str() == Some("/data"))
        );
        assert_eq!(spec.annotations().as_ref().map(|a| a.len()), Some(0));
    }

    #[test]
    fn init_and_files_only_are_annotations() {
        let mut config = Configuration::default();
        config.process.args = vec!["true".into()];
        config.init = true;
        config.files_only = true;
        let v = container_spec("c1", &config, &config.process, "/r", &[]);
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        let a = spec.annotations().clone().unwrap();
        assert_eq!(a[vminitd_api::INIT_ANNOTATION], "true");
        assert_eq!(a[vminitd_api::HOLD_ANNOTATION], "true");
    }
}
