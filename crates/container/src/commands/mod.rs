//! One module per command group; `run` dispatches the parsed command line.

pub mod build;
pub mod container;
mod image;
pub mod network;
mod registry;
mod system;
pub mod volume;

use container_api::StateRoot;
use containerization_error::Result;

use crate::cli::{Cli, Command};

/// Runs the command; returns the exit code of a successful run.
pub async fn run(cli: Cli) -> Result<i32> {
    let root = StateRoot::resolve(cli.root.as_deref());
    match cli.command {
        Command::System(c) => system::run(&root, c).await,
        Command::Container(c) => container::run(&root, *c).await,
        Command::Image(c) => image::run(&root, c).await,
        Command::Images(a) => image::list(&root, a).await,
        Command::Registry(c) => registry::run(&root, c).await,
        Command::Network(c) => network::run(&root, c).await,
        Command::Build(a) => build::run(&root, *a).await,
        Command::Volume(c) => volume::run(&root, c).await,
    }
}
