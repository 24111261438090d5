//! `container network create|list|inspect|delete|prune`.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use container_api::StateRoot;
use container_api::apiserver::NetworkCreateRequest;
use containerization_error::{ContainerizationError, Result};

use crate::cli::{Format, FormatArgs};
use crate::daemon::connect;
use crate::output::{print_table, table};

/// `container network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network (a bridge with NAT and its own subnet).
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(visible_alias = "ls")]
    List(FormatArgs),
    /// Show networks as JSON, with their containers.
    Inspect(NetworkNames),
    /// Delete networks.
    #[command(visible_alias = "rm")]
    Delete(NetworkDeleteArgs),
    /// Delete every network no container uses.
    Prune,
}

/// Flags of `network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// IPv4 subnet in CIDR form (default: a free 192.168.x.0/24).
    #[arg(long)]
    pub subnet: Option<String>,
    /// No NAT and no route out of the network.
    #[arg(long)]
    pub internal: bool,
    /// Label key=value.
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Network name.
    pub name: String,
}

/// Network names.
#[derive(Debug, Args)]
pub struct NetworkNames {
    /// Network names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `network delete`.
#[derive(Debug, Args)]
pub struct NetworkDeleteArgs {
    /// Delete every network except `default`.
    #[arg(short, long)]
    pub all: bool,
    /// Network names.
    pub names: Vec<String>,
}

/// Runs one `network` subcommand.
pub async fn run(root: &StateRoot, cmd: NetworkCommand) -> Result<i32> {
    let client = connect(root).await?;
    match cmd {
        NetworkCommand::Create(a) => {
            let mut labels = HashMap::new();
            for l in &a.labels {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "invalid label '{l}'"
                    )));
                }
                labels.insert(k.to_string(), v.to_string());
            }
            let n = client
                .create_network(NetworkCreateRequest {
                    name: a.name,
                    subnet: a.subnet.unwrap_or_default(),
                    internal: a.internal,
                    labels,
                })
                .await?;
            println!("{}", n.id);
        }
        NetworkCommand::List(f) => {
            let nets = client.list_networks().await?;
            match f.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&nets).unwrap_or_default()
                ),
                Format::Table => {
                    let mut t = table(&["NETWORK", "STATE", "SUBNET", "GATEWAY", "CONTAINERS"]);
                    for n in &nets {
                        t.add_row(vec![
                            n.id.clone(),
                            if n.internal { "internal" } else { "running" }.to_string(),
                            n.subnet.clone(),
                            n.gateway.clone(),
                            n.containers.len().to_string(),
                        ]);
                    }
                    print_table(&t);
                }
            }
        }
        NetworkCommand::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.names {
                out.push(client.inspect_network(n).await?);
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        NetworkCommand::Delete(a) => {
            let names = if a.all {
                client
                    .list_networks()
                    .await?
                    .into_iter()
                    .map(|n| n.id)
                    .filter(|n| n != "default")
                    .collect()
            } else if a.names.is_empty() {
                return Err(ContainerizationError::invalid_argument(
                    "name a network to delete, or pass --all",
                ));
            } else {
                a.names
            };
            let mut failed = None;
            for n in names {
                match client.delete_network(&n).await {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = Some(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Ok(e.code.exit_code());
            }
        }
        NetworkCommand::Prune => {
            for n in client.prune_networks().await? {
                println!("{n}");
            }
        }
    }
    Ok(0)
}
