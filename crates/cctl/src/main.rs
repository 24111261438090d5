//! `cctl`: developer tools for root filesystems and ext4 images. Each
//! command group lives in its own module; this file only dispatches.

mod ext4;
mod rootfs;
mod run;

use clap::{Parser, Subcommand};
use containerization_error::Result;

/// Developer CLI of the container system.
#[derive(Debug, Parser)]
#[command(name = "cctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build root filesystem images.
    #[command(subcommand)]
    Rootfs(rootfs::RootfsCommand),
    /// Inspect ext4 images.
    #[command(subcommand)]
    Ext4(ext4::Ext4Command),
    /// Run a command in a fresh VM (exits with its exit code).
    Run(run::RunArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Rootfs(c) => rootfs::run(c),
        Command::Ext4(c) => ext4::run(c),
        Command::Run(a) => run::run(a),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("cctl: {}", e.report());
        std::process::exit(e.code.exit_code());
    }
}
