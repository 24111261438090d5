//! `containerization`: run Linux containers, each in its own lightweight
//! QEMU microVM (a Rust mirror of Apple's Containerization package).

mod atomic;
pub mod container;
pub mod dns;
pub mod emulator;
pub mod exit_status;
pub mod hosts;
pub mod interface;
pub mod kernel;
pub mod kernel_modules;
pub mod manager;
pub mod mount;
pub mod network;
pub mod rootfs;
pub mod seccomp;
pub mod statistics;
pub mod terminal;
pub mod vmm;

pub use atomic::{sync_dir, write_atomic};
pub use container::{
    Configuration, LinuxContainer, LinuxProcess, OutputBuffer, ProcessConfiguration, State, Stdio,
    UnixSocketConfiguration, User,
};
pub use containerization_error::{Code, ContainerizationError, Result};
pub use dns::DNS;
pub use emulator::Emulator;
pub use exit_status::ExitStatus;
pub use hosts::{Entry as HostsEntry, Hosts};
pub use interface::{Interface, NATInterface, Network};
pub use kernel::{CommandLine, Kernel, SystemPlatform, default_initfs};
pub use manager::{ContainerManager, default_root};
pub use mount::{Mount, RuntimeOptions};
pub use statistics::ContainerStatistics;
pub use vmm::{QemuVirtualMachineManager, VirtualMachineInstance, VirtualMachineManager, VmConfig};
