//! Containers: OCI runtime spec handling, cgroups, stdio and the `vmexec`
//! helper that turns a forked agent into a container process.

pub mod cgroup;
pub mod config;
pub mod init;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod stdio;
pub mod vmexec;
pub mod zygote;
