//! The command tree, with Apple's command names, aliases and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run Linux containers in lightweight virtual machines.
#[derive(Debug, Parser)]
#[command(name = "container", version, about)]
pub struct Cli {
    /// State root (default: $CONTAINER_ROOT, else /var/lib/container as root).
    #[arg(long, global = true, env = "CONTAINER_ROOT", hide_env_values = true)]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Container(Box<crate::commands::container::ContainerCommand>),
    /// Manage images.
    #[command(subcommand, visible_alias = "i")]
    Image(ImageCommand),
    /// List images (alias of `image list`).
    Images(ImageListArgs),
    /// Manage registry logins.
    #[command(subcommand, visible_alias = "r")]
    Registry(RegistryCommand),
    /// Manage the container system (the apiserver).
    #[command(subcommand, visible_alias = "s")]
    System(SystemCommand),
    /// Manage networks.
    #[command(subcommand, visible_alias = "n")]
    Network(crate::commands::network::NetworkCommand),
    /// Build an image from a Dockerfile.
    Build(Box<crate::commands::build::BuildArgs>),
    /// Manage volumes.
    #[command(subcommand, visible_alias = "v")]
    Volume(crate::commands::volume::VolumeCommand),
}

/// `container system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Start the apiserver in the background.
    Start(SystemStartArgs),
    /// Stop the apiserver.
    Stop(SystemStopArgs),
    /// Show whether the apiserver is running.
    Status,
    /// Show the version of the CLI and the apiserver.
    Version(FormatArgs),
    /// Show the apiserver's log.
    Logs(SystemLogsArgs),
}

/// Flags of `system start`.
#[derive(Debug, Args)]
pub struct SystemStartArgs {
    /// Seconds to wait for the apiserver to answer.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Flags of `system stop`.
#[derive(Debug, Args)]
pub struct SystemStopArgs {
    /// Seconds to wait for the apiserver to exit.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Flags of `system logs`.
#[derive(Debug, Args)]
pub struct SystemLogsArgs {
    /// Follow the log.
    #[arg(short, long)]
    pub follow: bool,
    /// Show only the last N lines.
    #[arg(short = 'n', long = "last")]
    pub last: Option<usize>,
}

/// Output formats of list-like commands.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// `--format`.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Progress bars.
    Ansi,
    /// One line per step.
    Plain,
    /// Nothing.
    None,
}

/// Registry scheme.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SchemeArg {
    Http,
    Https,
    Auto,
}

impl SchemeArg {
    /// The wire string of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemeArg::Http => "http",
            SchemeArg::Https => "https",
            SchemeArg::Auto => "auto",
        }
    }
}

/// `--platform`, `--arch`, `--os`.
#[derive(Debug, Args, Clone)]
pub struct PlatformArgs {
    /// Platform as os/arch[/variant] (default: the host's).
    #[arg(long, env = "CONTAINER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Architecture (amd64, arm64, ...).
    #[arg(short = 'a', long)]
    pub arch: Option<String>,
    /// Operating system.
    #[arg(long)]
    pub os: Option<String>,
}

impl PlatformArgs {
    /// The platform string sent to the daemon; empty means the host's.
    pub fn resolve(&self) -> String {
        if let Some(p) = &self.platform {
            return p.clone();
        }
        match (&self.os, &self.arch) {
            (None, None) => String::new(),
            (os, arch) => format!(
                "{}/{}",
                os.as_deref().unwrap_or("linux"),
                arch.as_deref().unwrap_or(host_arch())
            ),
        }
    }
}

/// The host architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `--scheme` and `--progress`.
#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Registry scheme: http, https, or auto (http for localhost and 127.0.0.0/8).
    #[arg(long, value_enum, default_value_t = SchemeArg::Auto)]
    pub scheme: SchemeArg,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// `container image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry.
    Pull(ImagePullArgs),
    /// Push an image to a registry.
    Push(ImagePushArgs),
    /// List local images.
    #[command(visible_alias = "ls")]
    List(ImageListArgs),
    /// Show an image's index, manifests and configs as JSON.
    Inspect(ImageRefsArgs),
    /// Give an image another reference.
    Tag(ImageTagArgs),
    /// Delete images.
    #[command(visible_alias = "rm")]
    Delete(ImageDeleteArgs),
    /// Remove unused images.
    Prune(ImagePruneArgs),
    /// Save images to an OCI archive.
    Save(ImageSaveArgs),
    /// Load images from an OCI or docker archive.
    Load(ImageLoadArgs),
}

/// Flags of `image pull`.
#[derive(Debug, Args)]
pub struct ImagePullArgs {
    /// Image reference.
    pub reference: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Layers downloaded in parallel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_downloads: u32,
}

/// Flags of `image push`.
#[derive(Debug, Args)]
pub struct ImagePushArgs {
    /// Image reference.
    pub reference: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// Flags of `image list`.
#[derive(Debug, Args)]
pub struct ImageListArgs {
    /// Print references only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests and platforms too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One or more image references.
#[derive(Debug, Args)]
pub struct ImageRefsArgs {
    /// Image references.
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// Flags of `image tag`.
#[derive(Debug, Args)]
pub struct ImageTagArgs {
    /// Existing image.
    pub source: String,
    /// New reference.
    pub target: String,
}

/// Flags of `image delete`.
#[derive(Debug, Args)]
pub struct ImageDeleteArgs {
    /// Image references.
    pub references: Vec<String>,
    /// Delete every image.
    #[arg(short, long)]
    pub all: bool,
    /// Ignore images that do not exist.
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `image prune`.
#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove every image not used by a container, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
}

/// Flags of `image save`.
#[derive(Debug, Args)]
pub struct ImageSaveArgs {
    /// Archive to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Images to save.
    #[arg(required = true)]
    pub references: Vec<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// Flags of `image load`.
#[derive(Debug, Args)]
pub struct ImageLoadArgs {
    /// Archive to read (OCI or `docker save`).
    #[arg(short, long)]
    pub input: PathBuf,
}

/// `container registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Log in to a registry.
    Login(RegistryLoginArgs),
    /// Log out of a registry.
    Logout(RegistryHostArgs),
    /// List registry logins (never the passwords).
    #[command(visible_alias = "ls")]
    List(FormatArgs),
}

/// Flags of `registry login`.
#[derive(Debug, Args)]
pub struct RegistryLoginArgs {
    /// Registry host[:port].
    pub server: String,
    /// User name (asked for when missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry scheme.
    #[arg(long, value_enum, default_value_t = SchemeArg::Auto)]
    pub scheme: SchemeArg,
}

/// A registry host.
#[derive(Debug, Args)]
pub struct RegistryHostArgs {
    /// Registry host[:port].
    pub server: String,
}
