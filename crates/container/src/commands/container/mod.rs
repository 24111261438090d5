//! The container commands: `run`, `create`, `start`, `stop`, `kill`,
//! `delete`, `list`, `exec`, `logs`, `inspect`, `stats`, `prune`, `copy`, `export`.

pub mod args;
mod attach;
mod files;
mod manage;
mod mounts;
mod query;
mod run;

use clap::{Args, Subcommand};
use container_api::apiserver::ContainerId;
use container_api::client::from_status;
use container_api::{ApiClient, ContainerSnapshot, StateRoot};
use containerization_error::{Code, Result, ResultExt};

pub use args::{ProcessFlags, RunArgs};

use crate::cli::Format;

/// Container commands at the top level of the CLI.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and start a container.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(RunArgs),
    /// Start a created or stopped container.
    Start(StartArgs),
    /// Stop running containers (signal, then SIGKILL after a timeout).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Delete containers.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// List containers.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Show containers as JSON.
    Inspect(IdsArgs),
    /// Show resource usage.
    Stats(StatsArgs),
    /// Delete every stopped container.
    Prune,
    /// Copy files between the host and a container, running or not (CONTAINER:PATH).
    #[command(visible_alias = "cp")]
    Copy(files::CopyArgs),
    /// Write a container's filesystem (running or not) as a tar archive.
    Export(files::ExportArgs),
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach stdout/stderr and wait for the exit.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin.
    #[arg(short, long)]
    pub interactive: bool,
    /// Container id.
    pub id: String,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Stop every running container.
    #[arg(long)]
    pub all: bool,
    /// Signal to send first (default: the image's StopSignal, else TERM).
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Seconds before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 5)]
    pub time: u32,
    /// Container ids.
    pub ids: Vec<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every running container.
    #[arg(long)]
    pub all: bool,
    /// Signal (default KILL).
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Container ids.
    pub ids: Vec<String>,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Delete every container.
    #[arg(long)]
    pub all: bool,
    /// Stop running containers first.
    #[arg(short, long)]
    pub force: bool,
    /// Container ids.
    pub ids: Vec<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include stopped containers.
    #[arg(short, long)]
    pub all: bool,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Container id.
    pub id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub args: Vec<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n')]
    pub lines: Option<usize>,
    /// Show the VM's boot log instead.
    #[arg(long)]
    pub boot: bool,
    /// Container id.
    pub id: String,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print once and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Container ids (default: all running).
    pub ids: Vec<String>,
}

/// One or more ids.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Container ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

/// Runs one container command.
pub async fn run(root: &StateRoot, cmd: ContainerCommand) -> Result<i32> {
    let client = crate::daemon::connect(root).await?;
    match cmd {
        ContainerCommand::Run(a) => run::run(root, &client, a, true).await,
        ContainerCommand::Create(a) => run::run(root, &client, a, false).await,
        ContainerCommand::Start(a) => run::start(root, &client, a).await,
        ContainerCommand::Exec(a) => run::exec(root, &client, a).await,
        ContainerCommand::Stop(a) => manage::stop(&client, a).await,
        ContainerCommand::Kill(a) => manage::kill(&client, a).await,
        ContainerCommand::Delete(a) => manage::delete(&client, a).await,
        ContainerCommand::Prune => manage::prune(&client).await,
        ContainerCommand::List(a) => query::list(&client, a).await,
        ContainerCommand::Inspect(a) => query::inspect(&client, a).await,
        ContainerCommand::Logs(a) => query::logs(root, &client, a).await,
        ContainerCommand::Stats(a) => query::stats(root, &client, a).await,
        ContainerCommand::Copy(a) => files::copy(&client, a).await,
        ContainerCommand::Export(a) => files::export(&client, a).await,
    }
}

/// Decodes a snapshot sent by the apiserver.
pub(crate) fn decode(json: &str) -> Result<ContainerSnapshot> {
    serde_json::from_str(json).context(
        Code::InternalError,
        "the apiserver sent an unreadable container",
    )
}

/// `Containers.Get`.
pub(crate) async fn get(client: &ApiClient, id: &str) -> Result<ContainerSnapshot> {
    let r = client
        .containers_client()
        .get(ContainerId { id: id.into() })
        .await
        .map_err(from_status)?;
    decode(&r.into_inner().snapshot_json)
}

/// Every container (`all`) or the running ones.
pub(crate) async fn list_all(client: &ApiClient, all: bool) -> Result<Vec<ContainerSnapshot>> {
    let r = client
        .containers_client()
        .list(container_api::apiserver::ListRequest { all })
        .await
        .map_err(from_status)?;
    r.into_inner()
        .snapshot_json
        .iter()
        .map(|j| decode(j))
        .collect()
}
