//! `container volume create|list|inspect|delete|prune`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use container_api::StateRoot;
use container_api::volume::Volume;
use containerization_error::{Code, ContainerizationError, Result};

use crate::cli::Format;
use crate::daemon::connect;
use crate::output::{human_size, print_table, table};

/// `container volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (an ext4 image, attached to containers as a disk).
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(visible_alias = "ls")]
    List(VolumeListArgs),
    /// Show volumes as JSON.
    Inspect(VolumeNamesArgs),
    /// Delete volumes (refused while a container uses them).
    #[command(visible_alias = "rm")]
    Delete(VolumeDeleteArgs),
    /// Remove every volume no container references.
    Prune,
}

/// Flags of `volume create`.
#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// Label key=value.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Driver option key=value: size=SIZE, journal=ordered|writeback|journal[:SIZE].
    #[arg(long = "opt")]
    pub opts: Vec<String>,
    /// Size (bytes, or with K, M, G, T, P); same as --opt size=.
    #[arg(short = 's')]
    pub size: Option<String>,
    /// Volume name.
    pub name: String,
}

/// Flags of `volume list`.
#[derive(Debug, Args)]
pub struct VolumeListArgs {
    /// Print names only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Volume names.
#[derive(Debug, Args)]
pub struct VolumeNamesArgs {
    /// Volume names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `volume delete`.
#[derive(Debug, Args)]
pub struct VolumeDeleteArgs {
    /// Volume names.
    pub names: Vec<String>,
    /// Delete every volume not in use.
    #[arg(short, long)]
    pub all: bool,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid {flag} '{i}': use key=value"
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Runs one `volume` subcommand.
pub async fn run(root: &StateRoot, cmd: VolumeCommand) -> Result<i32> {
    let client = connect(root).await?;
    match cmd {
        VolumeCommand::Create(a) => {
            let labels = key_values("--label", &a.labels)?;
            let mut opts = key_values("--opt", &a.opts)?;
            if let Some(s) = a.size {
                opts.insert("size".into(), s);
            }
            let v = client.create_volume(&a.name, labels, opts).await?;
            println!("{}", v.name);
        }
        VolumeCommand::List(a) => {
            let vols = client.list_volumes().await?;
            if a.quiet {
                for v in &vols {
                    println!("{}", v.name);
                }
            } else if a.format == Format::Json {
                println!("{}", pretty(&vols));
            } else {
                print_list(&vols);
            }
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.names {
                out.push(client.inspect_volume(n).await?);
            }
            println!("{}", pretty(&out));
        }
        VolumeCommand::Delete(a) => {
            let names = match (a.all, a.names.is_empty()) {
                (true, true) => client
                    .list_volumes()
                    .await?
                    .into_iter()
                    .map(|v| v.name)
                    .collect(),
                (true, false) => {
                    return Err(ContainerizationError::invalid_argument(
                        "give volume names or --all, not both",
                    ));
                }
                (false, true) => {
                    return Err(ContainerizationError::invalid_argument(
                        "name the volumes to delete, or use --all",
                    ));
                }
                (false, false) => a.names,
            };
            let mut first_error: Option<ContainerizationError> = None;
            for n in names {
                match client.delete_volume(&n).await {
                    Ok(()) => println!("{n}"),
                    // --all skips the volumes containers still use.
                    Err(e) if a.all && e.is_code(Code::InvalidState) => {}
                    Err(e) => {
                        eprintln!("Error: {e}");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Ok(e.code.exit_code());
            }
        }
        VolumeCommand::Prune => {
            let r = client.prune_volumes().await?;
            for d in &r.deleted {
                println!("{d}");
            }
            println!("Reclaimed {} in disk space", human_size(r.reclaimed));
        }
    }
    Ok(0)
}

fn print_list(vols: &[Volume]) {
    let mut t = table(&["NAME", "TYPE", "DRIVER", "SIZE", "CREATED"]);
    for v in vols {
        let kind = if v.anonymous { "anonymous" } else { "named" };
        t.add_row(vec![
            v.name.clone(),
            kind.to_string(),
            v.driver.clone(),
            human_size(v.size_in_bytes),
            v.created_at.clone(),
        ]);
    }
    print_table(&t);
}
