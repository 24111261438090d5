//! The protos of `container-apiserver` and `container-runtime-linux`, and
//! typed clients over their unix sockets.

pub mod client;
pub mod config;
pub mod db;
pub mod network;
mod network_client;
pub mod paths;
pub mod runtime_client;
pub mod stdio;
pub mod transport;
pub mod volume;

/// Generated types and services of the apiserver (`proto/apiserver.proto`).
pub mod apiserver {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("container.apiserver.v1");
}

/// Generated types and services of the runtime helper (`proto/runtime.proto`).
pub mod runtime {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("container.runtime.v1");
}

pub use client::ApiClient;
pub use config::{ContainerConfiguration, ContainerSnapshot, ContainerStatus, ProcessConfig};
pub use db::ContainerDb;
pub use paths::StateRoot;
pub use runtime_client::RuntimeClient;

/// The version of this build, reported by `container system version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
