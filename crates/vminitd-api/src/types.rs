//! Typed arguments and results of the client, where raw proto types would
//! be awkward.

use std::time::{Duration, SystemTime};

use crate::proto;

/// How a copy's bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// One regular file, raw bytes.
    Raw,
    /// A tar stream extracted into / archived from a directory.
    Tar,
    /// Copy out only: a tar whose one top-level entry is the path itself
    /// (file or directory tree) under its base name, as `docker cp` makes.
    TarPath,
}

impl From<CopyMode> for proto::CopyMode {
    fn from(m: CopyMode) -> Self {
        match m {
            CopyMode::Raw => proto::CopyMode::Raw,
            CopyMode::Tar => proto::CopyMode::Tar,
            CopyMode::TarPath => proto::CopyMode::TarPath,
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal when the process was killed by a signal.
    pub code: i32,
    /// When the agent reaped the process.
    pub exited_at: SystemTime,
}

impl From<proto::WaitProcessResponse> for ExitStatus {
    fn from(r: proto::WaitProcessResponse) -> Self {
        let at = Duration::new(
            u64::try_from(r.exited_at_sec).unwrap_or(0),
            u32::try_from(r.exited_at_nsec).unwrap_or(0),
        );
        ExitStatus {
            code: r.exit_code,
            exited_at: SystemTime::UNIX_EPOCH + at,
        }
    }
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Rows (height).
    pub rows: u16,
    /// Columns (width).
    pub columns: u16,
}

/// resolv.conf contents for `configure_dns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `domain` line; empty for none.
    pub domain: Option<String>,
    /// `search` line.
    pub search_domains: Vec<String>,
    /// `options` line.
    pub options: Vec<String>,
}

/// Where a vsock proxy relays the connections it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// A unix socket in the guest.
    Unix(String),
    /// A TCP port on the guest's loopback.
    Tcp(u16),
}
