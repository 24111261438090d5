//! `cctl rootfs create`: unpack OCI layers into an ext4 image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use containerization_error::{ContainerizationError, Result};
use containerization_ext4::unpack_layers;
use containerization_oci::{ImageStore, Platform};

/// `cctl rootfs ...`
#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Create an ext4 root filesystem from layer tarballs (tar, tar.gz,
    /// tar.zst) or from an image in the local store.
    Create(CreateArgs),
}

/// Arguments of `cctl rootfs create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Layer tarball, lowest first; repeat for each layer.
    #[arg(
        long = "layer",
        value_name = "LAYER",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub layers: Vec<PathBuf>,
    /// Image reference in the local store (pulled or loaded before).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Platform of the image to unpack (default: the host's).
    #[arg(long, requires = "image")]
    pub platform: Option<String>,
    /// State root (default: $CONTAINER_ROOT, else /var/lib/container as
    /// root, else $XDG_DATA_HOME/container).
    #[arg(long)]
    pub root: Option<PathBuf>,
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
    let layers = match &a.image {
        Some(reference) => image_layers(
            &state_root(a.root.as_deref()),
            reference,
            a.platform.as_deref(),
        )?,
        None => a.layers.clone(),
    };
    let start = Instant::now();
    let stats = unpack_layers(&layers, &a.output, a.size)?;
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

/// The state root: explicit, else `$CONTAINER_ROOT`, else the default.
fn state_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("CONTAINER_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/container");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("container")
}

/// Layer blob paths (lowest first) of `reference` for `platform`.
fn image_layers(root: &Path, reference: &str, platform: Option<&str>) -> Result<Vec<PathBuf>> {
    let store = ImageStore::open(root)?;
    let image = store.get(reference)?;
    let platform = match platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let (_, manifest) = image.resolve_manifest(store.content(), &platform)?;
    let mut out = Vec::new();
    for l in manifest.layers() {
        let digest = l.digest().to_string();
        if !store.content().contains(&digest) {
            return Err(ContainerizationError::not_found(format!(
                "layer {digest} of image '{reference}' is missing from the content store; pull the image again"
            )));
        }
        out.push(store.content().blob_path(&digest));
    }
    Ok(out)
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
