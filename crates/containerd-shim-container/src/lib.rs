//! `containerd-shim-container`: a containerd shim v2 (runtime type
//! `io.containerd.container.v2`) that runs every task in its own QEMU
//! microVM through the `containerization` library. The binary
//! `containerd-shim-container-v2` is `src/main.rs`; see the README for the
//! design, install and configuration.

pub mod events;
pub mod metrics;
pub mod process;
pub mod rootfs;
pub mod service;
pub mod spec;
pub mod stdio;
pub mod task;
