//! What the agent hands to `vmexec` on its setup socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Instructions for one `vmexec` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The runtime spec; for an exec only `process` is used.
    pub spec: oci_spec::runtime::Spec,
    /// `Some(pid)`: exec into the container whose init is `pid` (join its
    /// namespaces); `None`: create the container.
    pub join_pid: Option<i32>,
    /// The cgroup directory to join before forking, if cgroups are available.
    pub cgroup: Option<PathBuf>,
    /// Stdio is a terminal: become its controlling process.
    pub terminal: bool,
}

/// First line vmexec writes back: the container process's pid.
pub const REPLY_PID: &str = "pid ";
/// A line saying setup failed, followed by the message.
pub const REPLY_ERROR: &str = "error ";
