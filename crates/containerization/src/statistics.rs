//! Resource usage of a container (seed section 17.1).

/// A snapshot of a container's resource usage, read from its cgroup in the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStatistics {
    /// Container identifier.
    pub id: String,
    /// CPU time used, in microseconds.
    pub cpu_usage_usec: u64,
    /// Memory in use, in bytes.
    pub memory_usage_bytes: u64,
    /// Memory limit, in bytes (0 when unlimited).
    pub memory_limit_bytes: u64,
    /// Number of processes.
    pub pids: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Bytes received on network interfaces.
    pub network_rx_bytes: u64,
    /// Bytes sent on network interfaces.
    pub network_tx_bytes: u64,
}
