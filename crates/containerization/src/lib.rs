//! `containerization`: run Linux containers, each in its own lightweight
//! QEMU microVM (a Rust mirror of Apple's Containerization package).

pub mod kernel;
pub mod vmm;

pub use containerization_error::{Code, ContainerizationError, Result};
pub use kernel::{CommandLine, Kernel, SystemPlatform, default_initfs};
pub use vmm::{QemuVirtualMachineManager, VirtualMachineInstance, VirtualMachineManager, VmConfig};
