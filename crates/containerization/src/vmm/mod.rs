//! Virtual machine managers (seed section 3): the seam between the
//! container logic and a concrete VMM. QEMU `microvm` is the one backend.

mod accel;
mod qemu;
mod qmp;
mod spawn;
mod vsock;

use std::path::PathBuf;

use async_trait::async_trait;
use containerization_error::Result;

pub use accel::{Accelerator, probe_accelerator};
pub use qemu::{QemuVirtualMachineInstance, QemuVirtualMachineManager};
pub use qmp::{Qmp, QmpEvent};
pub use vsock::{VsockConnection, VsockDialer};

/// Disk image format of a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// Raw image or block device.
    Raw,
    /// qcow2 (used for copy-on-write root filesystems).
    Qcow2,
}

/// A virtio-blk device attached to the VM, in attachment order
/// (`/dev/vda`, `/dev/vdb`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Host file or device.
    pub path: PathBuf,
    /// Image format.
    pub format: DiskFormat,
    /// Attach read-only.
    pub read_only: bool,
}

/// A host directory shared into the VM over virtio-fs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDirectory {
    /// virtio-fs tag the guest mounts by.
    pub tag: String,
    /// Host directory.
    pub source: PathBuf,
    /// Share read-only.
    pub read_only: bool,
}

/// Everything a VMM needs to boot one VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Identifier, used in logs and temp file names.
    pub id: String,
    /// Virtual CPUs (already including any agent overhead).
    pub cpus: u32,
    /// Guest memory in bytes (already including any agent overhead).
    pub memory_in_bytes: u64,
    /// Block devices, in guest order.
    pub block_devices: Vec<BlockDevice>,
    /// virtio-fs shares.
    pub shares: Vec<SharedDirectory>,
    /// Names of existing host TAP devices to attach as virtio-net.
    pub taps: Vec<String>,
    /// Guest MAC address of each TAP's virtio-net device (same order; a
    /// missing entry lets QEMU choose).
    pub tap_macs: Vec<Option<String>>,
    /// Where the serial console goes; `None` keeps it in the VM's temp dir.
    pub bootlog: Option<PathBuf>,
}

impl VmConfig {
    /// A config with one CPU, 256 MiB and no devices.
    pub fn new(id: impl Into<String>) -> Self {
        VmConfig {
            id: id.into(),
            cpus: 1,
            memory_in_bytes: 256 << 20,
            block_devices: Vec::new(),
            shares: Vec::new(),
            taps: Vec::new(),
            tap_macs: Vec::new(),
            bootlog: None,
        }
    }
}

/// Run state of a VM as QMP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// Guest CPUs run.
    Running,
    /// Guest CPUs are stopped (`stop`); memory is kept.
    Paused,
    /// QEMU has exited.
    Stopped,
}

/// Creates VM instances (seed `VirtualMachineManager`); the manager knows the
/// kernel and initfs every VM it creates boots.
#[async_trait]
pub trait VirtualMachineManager: Send + Sync + std::fmt::Debug {
    /// Prepares a VM from `config` without booting it.
    async fn create(&self, config: VmConfig) -> Result<Box<dyn VirtualMachineInstance>>;
}

/// One VM (seed `VZVirtualMachineInstance`).
#[async_trait]
pub trait VirtualMachineInstance: Send + Sync + std::fmt::Debug {
    /// The VM's identifier.
    fn id(&self) -> &str;
    /// Boots the VM.
    async fn start(&mut self) -> Result<()>;
    /// Stops the guest CPUs.
    async fn pause(&self) -> Result<()>;
    /// Resumes the guest CPUs.
    async fn resume(&self) -> Result<()>;
    /// Current run state.
    async fn state(&self) -> Result<VmState>;
    /// Ends the VM at once (QMP `quit`, then SIGKILL) and removes its files.
    async fn stop(&mut self) -> Result<()>;
    /// Waits until the VM has exited (guest power-off, panic or stop).
    async fn wait(&self) -> Result<()>;
    /// Opens a stream to guest vsock `port`; retries until `timeout` while
    /// nothing listens there yet.
    async fn dial_vsock(&self, port: u32, timeout: std::time::Duration) -> Result<VsockConnection> {
        self.dialer()?.dial(port, timeout).await
    }
    /// A cloneable dialer for guest vsock ports, valid while the VM runs.
    fn dialer(&self) -> Result<VsockDialer>;
    /// Listens for guest-initiated connections to host vsock `port`.
    fn listen_vsock(&self, port: u32) -> Result<tokio::net::UnixListener>;
    /// Path of the serial console log.
    fn bootlog(&self) -> PathBuf;
    /// Host PIDs of the VMM and its helpers (for memory accounting).
    fn pids(&self) -> Vec<u32>;
}
