//! `container`: the command line of the container system.

mod cli;
mod commands;
mod daemon;
mod output;
mod progress;

use clap::Parser;

/// Hidden first argument that makes this binary act as the apiserver, used
/// when no `container-apiserver` binary sits next to it (e.g. under `cargo test`).
pub(crate) const APISERVER_ARG: &str = "__apiserver";

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == container_apiserver::RUNTIME_ARG)
    {
        // Act as the runtime helper (spawned by an apiserver living in this binary).
        std::process::exit(container_apiserver::main_with_args(args));
    }
    if args.get(1).is_some_and(|a| a == APISERVER_ARG) {
        args.remove(1);
        std::process::exit(container_apiserver::main_with_args(args));
    }
    let cli = cli::Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            e.code.exit_code()
        }
    };
    // Dropping the runtime could wait on a blocking stdin reader.
    rt.shutdown_background();
    std::process::exit(code);
}
