//! What a container is made of (stored as `config.json` and in
//! `containers.db`) and what is known about it at run time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One process: the init process or an exec'd one (seed `ProcessConfiguration`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessConfig {
    /// argv (already merged from the image's Entrypoint/Cmd).
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `uid[:gid]` or `root`.
    pub user: String,
    /// Allocate a PTY.
    pub terminal: bool,
    /// Keep stdin open.
    pub interactive: bool,
}

/// A container's configuration, fixed at create time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfiguration {
    /// Container id (also its name).
    pub id: String,
    /// Image reference as stored locally.
    pub image: String,
    /// Digest of the image's index or manifest.
    pub image_digest: String,
    /// Platform `os/arch[/variant]` (empty: the host's).
    pub platform: String,
    /// The init process.
    pub process: ProcessConfig,
    /// CPUs.
    pub cpus: u32,
    /// Memory limit in bytes.
    pub memory_in_bytes: u64,
    /// Labels (image labels merged with `-l`).
    pub labels: BTreeMap<String, String>,
    /// Signal `stop` sends first (from the image's StopSignal).
    pub stop_signal: i32,
    /// Remove the container once it exits.
    pub auto_remove: bool,
    /// Host name.
    pub hostname: String,
    /// Kernel to boot instead of the default.
    pub kernel: Option<String>,
    /// Init filesystem (initfs) to boot instead of the default.
    #[serde(default)]
    pub init_image: Option<String>,
    /// Mount the rootfs read-only.
    pub read_only: bool,
    /// Interfaces, in order (`eth0`, `eth1`, ...); empty: no network.
    #[serde(default)]
    pub networks: Vec<crate::network::NetworkAttachment>,
    /// Published ports.
    #[serde(default)]
    pub publish: Vec<crate::network::PublishPort>,
    /// Resolver settings.
    #[serde(default)]
    pub dns: crate::network::DnsSettings,
    /// Published unix sockets.
    #[serde(default)]
    pub publish_sockets: Vec<crate::network::PublishSocket>,
    /// `--ulimit`, `--cap-add/--cap-drop`, `--init`.
    #[serde(default)]
    pub security: ProcessSecurity,
    /// Volumes, bind mounts and tmpfs mounts (`-v`, `--mount`, `--tmpfs`);
    /// volume sources are volume names, resolved at create time.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Size of `/dev/shm` in bytes (`--shm-size`).
    #[serde(default)]
    pub shm_size_in_bytes: Option<u64>,
}

/// What kind of filesystem a [`MountSpec`] gives the container.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named volume (an ext4 image on virtio-blk); an empty source at
    /// create time asks for a new anonymous volume.
    #[default]
    Volume,
    /// A host file or directory shared over virtio-fs.
    Bind,
    /// A tmpfs inside the VM, empty at every start.
    Tmpfs,
}

/// One mount of a container, as the user asked for it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// Volume, bind or tmpfs.
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// Volume name or absolute host path (empty for tmpfs).
    #[serde(default)]
    pub source: String,
    /// Absolute path in the container.
    pub destination: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Extra mount options (tmpfs `size=`, `mode=`, ...).
    #[serde(default)]
    pub options: Vec<String>,
}

/// Lifecycle status as the CLI shows it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, never started or helper not running.
    Created,
    /// The helper is booting the VM.
    Starting,
    /// Init process running.
    Running,
    /// Init process exited (exit code recorded).
    Stopped,
}

impl ContainerStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Starting => "starting",
            ContainerStatus::Running => "running",
            ContainerStatus::Stopped => "stopped",
        }
    }

    /// Parses a stored name; unknown text reads as stopped.
    pub fn parse(s: &str) -> ContainerStatus {
        match s {
            "created" => ContainerStatus::Created,
            "starting" => ContainerStatus::Starting,
            "running" => ContainerStatus::Running,
            _ => ContainerStatus::Stopped,
        }
    }
}

/// Everything known about a container (seed `ContainerSnapshot`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerSnapshot {
    /// Its configuration.
    pub configuration: ContainerConfiguration,
    /// Current status.
    pub status: ContainerStatus,
    /// Exit code of the init process once stopped.
    pub exit_code: Option<i32>,
    /// Pid of the runtime helper while it runs.
    pub helper_pid: Option<u32>,
    /// RFC 3339 times.
    pub created_at: String,
    /// When the init process started.
    pub started_at: Option<String>,
    /// When it exited.
    pub finished_at: Option<String>,
    /// Why it stopped when the init process did not simply exit (its VM or
    /// runtime helper died); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Docker's container name rule (also what the library accepts as an id).
pub fn valid_container_id(id: &str) -> bool {
    valid_docker_name(id, 64)
}

/// Docker's name rule for containers and volumes: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// at most `max_len` bytes.
pub fn valid_docker_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What `container create`/`run` asks for, before the image config is merged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateOptions {
    /// `--name` (generated when absent).
    pub name: Option<String>,
    /// Image reference.
    pub image: String,
    /// `--platform` (empty: the host's).
    pub platform: String,
    /// `--scheme` used if the image has to be pulled.
    pub scheme: String,
    /// Arguments after the image (replace the image's Cmd).
    pub args: Vec<String>,
    /// `--entrypoint` (replaces the image's Entrypoint and drops its Cmd).
    pub entrypoint: Option<String>,
    /// `-e KEY=value` (already resolved from the host and env files).
    pub env: Vec<String>,
    /// `-w`.
    pub cwd: Option<String>,
    /// `-u` / `--uid` / `--gid`.
    pub user: Option<String>,
    /// `-t`.
    pub terminal: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-c`.
    pub cpus: Option<u32>,
    /// `-m` in bytes.
    pub memory_in_bytes: Option<u64>,
    /// `-l key=value`.
    pub labels: BTreeMap<String, String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-k`.
    pub kernel: Option<String>,
    /// `--init-image`.
    #[serde(default)]
    pub init_image: Option<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--network` (empty: the default network).
    #[serde(default)]
    pub networks: Vec<crate::network::NetworkRequest>,
    /// `-p`.
    #[serde(default)]
    pub publish: Vec<crate::network::PublishPort>,
    /// `--dns*`, `--no-dns`.
    #[serde(default)]
    pub dns: crate::network::DnsSettings,
    /// `--publish-socket`.
    #[serde(default)]
    pub publish_sockets: Vec<crate::network::PublishSocket>,
    /// `--ulimit`, `--cap-add/--cap-drop`, `--init`.
    #[serde(default)]
    pub security: ProcessSecurity,
    /// `-v`, `--mount`, `--tmpfs`.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--shm-size` in bytes.
    #[serde(default)]
    pub shm_size_in_bytes: Option<u64>,
}

/// Privileges and limits of the init process beyond the defaults
/// (Docker's capability set, `RLIMIT_NOFILE` 1024).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessSecurity {
    /// `--ulimit`: (`RLIMIT_NOFILE`, soft, hard); replaces a default of the same kind.
    #[serde(default)]
    pub rlimits: Vec<(String, u64, u64)>,
    /// `--cap-add`: `CAP_*` names, or `ALL`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--cap-drop`: `CAP_*` names, or `ALL`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--init`: a small init is PID 1 of the container, forwards signals to
    /// the process and reaps zombies.
    #[serde(default)]
    pub init: bool,
    /// `--security-opt seccomp=...`: `None` the default profile, `Some("unconfined")`
    /// none, otherwise the profile's JSON text (read by the CLI).
    #[serde(default)]
    pub seccomp: Option<String>,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
}
