//! The runtime helper of one container (seed: `container-runtime-linux`).
//!
//! Started detached by the apiserver, it boots the container's VM through
//! `containerization::LinuxContainer`, serves `runtime.sock` (gRPC) and
//! `stdio.sock` (SCM_RIGHTS stdio attachments), keeps `stdio.log`, and
//! records state and the exit code in `containers.db` itself, so nothing is
//! lost when the apiserver dies.

mod attach;
mod conns;
mod files;
mod files_helper;
mod helper;
mod mounts;
mod network;
mod output;
mod publish;
mod service;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Command line of the helper.
#[derive(Debug, Parser)]
#[command(
    name = "container-runtime-linux",
    version,
    about = "Runtime helper of one container"
)]
pub struct Args {
    /// State root.
    #[arg(long)]
    pub root: PathBuf,
    /// Container id.
    #[arg(long)]
    pub id: String,
    /// Serve the files of a stopped or created container (for `cp` and
    /// `export`) on `files.sock`, with no program running, until the
    /// clients are gone; the container's recorded state is not touched.
    #[arg(long)]
    pub files: bool,
}

/// Name of the file where a failed start leaves its error for the apiserver.
pub const START_ERROR_FILE: &str = "start-error";

/// The same for a files-only helper (`--files`).
pub const FILES_ERROR_FILE: &str = "files-error";

/// The socket a files-only helper serves the `Runtime` file RPCs on.
pub const FILES_SOCKET: &str = "files.sock";

/// The pid of the files-only helper while it runs.
pub const FILES_PID: &str = "files.pid";

/// The lock file (flock) a helper holds for as long as it owns the
/// container's VM, and with it the root filesystem and volumes.
pub const VM_LOCK: &str = "vm.lock";

/// Runs the helper with `args`; returns the process exit code.
pub fn main_with_args<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let root = container_api::StateRoot::new(args.root);
    let (result, error_file) = if args.files {
        (
            rt.block_on(files_helper::run(root.clone(), args.id.clone())),
            FILES_ERROR_FILE,
        )
    } else {
        (
            rt.block_on(helper::run(root.clone(), args.id.clone())),
            START_ERROR_FILE,
        )
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("runtime helper failed: {e}");
            let dir = root.container_dir(&args.id);
            let _ = std::fs::write(
                dir.join(error_file),
                format!("{}\t{}", e.code.as_str(), e.report()),
            );
            e.code.exit_code()
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}
