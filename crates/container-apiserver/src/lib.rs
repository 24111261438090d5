//! The daemon behind the `container` CLI: serves the system, images,
//! registry and containers services over gRPC on `<root>/apiserver.sock`.

mod containers;
mod convert;
mod images;
mod networks;
mod registry;
mod server;
mod snapshots;
mod system;
mod volumes;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

pub use containers::helper::RUNTIME_ARG;
pub use server::{ServerOptions, serve};

/// Command line of `container-apiserver`.
#[derive(Debug, Parser)]
#[command(name = "container-apiserver", version, about = "The container daemon")]
pub struct Args {
    /// State root (default: $CONTAINER_ROOT, else /var/lib/container as root).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Log filter, e.g. `info` or `container_apiserver=debug`.
    #[arg(long, default_value = "info", env = "CONTAINER_LOG")]
    pub log_level: String,
}

/// Runs the daemon with the given argv; returns the process exit code.
pub fn main_with_args<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == RUNTIME_ARG) {
        args.remove(1);
        return container_runtime_linux::main_with_args(args);
    }
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let opts = ServerOptions {
        root: container_api::StateRoot::resolve(args.root.as_deref()),
        log_level: args.log_level,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(serve(opts)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("apiserver failed: {e}");
            eprintln!("Error: {e}");
            e.code.exit_code()
        }
    }
}
