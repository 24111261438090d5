//! `cctl rootfs create`: unpack OCI layers into an ext4 image.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use containerization_error::{ContainerizationError, Result};
use containerization_ext4::unpack_layers;

/// `cctl rootfs ...`
#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Create an ext4 root filesystem from layer tarballs (tar, tar.gz, tar.zst).
    Create(CreateArgs),
}

/// Arguments of `cctl rootfs create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Layer tarball, lowest first; repeat for each layer.
    #[arg(long = "layer", value_name = "LAYER", required = true)]
    pub layers: Vec<PathBuf>,
    /// Image size (sparse), e.g. 512M, 2G, 8G.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub size: u64,
    /// Output image.
    pub output: PathBuf,
}

/// Parses a size with an optional K/M/G/T suffix (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 512M or 2G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Runs a `cctl rootfs` command.
pub fn run(cmd: RootfsCommand) -> Result<()> {
    match cmd {
        RootfsCommand::Create(a) => create(a),
    }
}

fn create(a: CreateArgs) -> Result<()> {
    if a.output.exists() {
        return Err(ContainerizationError::exists(format!(
            "{} already exists; remove it or choose another name",
            a.output.display()
        )));
    }
    let start = Instant::now();
    let stats = unpack_layers(&a.layers, &a.output, a.size)?;
    eprintln!(
        "{}: {} layers, {} entries, {} files, {} bytes in {:.2}s",
        a.output.display(),
        stats.layers,
        stats.entries,
        stats.files,
        stats.bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
