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

/// Writes one reply line with a single write(2): the helper (the pid) and
/// its forked child (an exec error) share the socket, and `writeln!` on an
/// unbuffered file writes its pieces separately, so the two lines could
/// interleave ("error " + "pid N" ...).
pub fn reply(sock: impl std::os::fd::AsFd, line: &str) -> std::io::Result<()> {
    let line = format!("{line}\n");
    match nix::unistd::write(sock, line.as_bytes()) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(_) => Err(std::io::ErrorKind::WriteZero.into()),
        Err(e) => Err(e.into()),
    }
}

/// The pid line.
pub fn reply_pid(sock: impl std::os::fd::AsFd, pid: i32) -> std::io::Result<()> {
    reply(sock, &format!("{REPLY_PID}{pid}"))
}

/// An error line (the message on one line).
pub fn reply_error(sock: impl std::os::fd::AsFd, msg: &str) -> std::io::Result<()> {
    reply(sock, &format!("{REPLY_ERROR}{}", msg.replace('\n', " ")))
}
