//! The guest agent's API: the `SandboxContext` proto (module [`proto`]) and
//! [`Vminitd`], the typed host client with one method per RPC.
//!
//! One HTTP/2 connection carries every call concurrently; build a client from
//! any byte stream (a hybrid-vsock unix socket after `CONNECT 1024`, a kernel
//! vsock stream, or a unix socket to `vminitd --listen unix:...`).

mod client;
mod io;
mod types;

/// Code generated from `proto/sandbox.proto` (package `container.sandbox.v1`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("container.sandbox.v1");
}

pub use client::{AgentStream, BoxFuture, BoxedStream, Vminitd};
pub use io::{ProcessIo, ProcessOutput, ProcessStdin};
pub use types::{CopyMode, DnsConfig, ExitStatus, ProxyTarget, TerminalSize};

/// The guest vsock port the agent serves on.
pub const AGENT_PORT: u32 = 1024;

/// Host vsock port the agent connects to once it listens on [`AGENT_PORT`],
/// and serves its API on that connection too (the host's first agent
/// connection, with no `CONNECT` round trip). Hosts wait for this before
/// dialing: a `CONNECT` sent through a hybrid-vsock backend before the
/// guest's vsock driver is up can be lost or reset, and under TCG some
/// backends then keep resetting later dials too.
pub const AGENT_READY_PORT: u32 = 1025;

/// Spec annotation asking the agent to run a small init as PID 1 of the
/// container (Docker's `--init`): it forwards signals and reaps zombies.
pub const INIT_ANNOTATION: &str = "io.container.init";

/// Spec annotation asking the agent to build the container's root and
/// mounts but run no program: PID 1 of the container only holds its mount
/// namespace (so the files of a stopped container can be read and written
/// through the agent) and exits on SIGTERM, SIGINT or SIGHUP.
pub const HOLD_ANNOTATION: &str = "io.container.hold";

/// The PATH the agent sets for itself and the default for processes.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The agent's version string, returned by `Ping`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
