//! A stage's filesystem as an ext4 image (the layers so far unpacked with
//! the userspace unpacker), and user/group lookups in it.

use std::path::{Path, PathBuf};

use containerization_error::{ContainerizationError, Result};
use containerization_ext4::{Ext4, unpack_layers};
use containerization_oci::ContentStore;

use super::layer::LayerRef;

/// Size of a build rootfs: sparse, so only written blocks take space.
pub const ROOTFS_SIZE: u64 = containerization_ext4::DEFAULT_SNAPSHOT_SIZE;

/// Unpacks `layers` (lowest first) from `content` into a new image `out`.
pub fn materialize(content: &ContentStore, layers: &[LayerRef], out: &Path) -> Result<()> {
    let paths: Vec<PathBuf> = layers
        .iter()
        .map(|l| content.blob_path(&l.digest))
        .collect();
    for (l, p) in layers.iter().zip(&paths) {
        if !p.exists() {
            return Err(ContainerizationError::not_found(format!(
                "layer {} is missing from the content store (pull the base image again)",
                l.digest
            )));
        }
    }
    unpack_layers(&paths, out, ROOTFS_SIZE)?;
    Ok(())
}

/// Resolves `user[:group]` (names or ids) against the image's
/// `/etc/passwd` and `/etc/group`. Without a group, `COPY --chown`
/// (`chown` true) uses the uid as gid, as Docker documents; a process gets
/// the user's primary group (0 when the user is not in `/etc/passwd`).
pub fn resolve_user(fs: Option<&Ext4>, spec: &str, chown: bool) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |path: &str| -> String {
        fs.and_then(|f| f.read_file(path).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let passwd = read("/etc/passwd");
    // (name, uid, gid) from passwd lines `name:x:uid:gid:...`.
    let users: Vec<(String, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    let (uid, primary) = if user.is_empty() {
        (0, 0)
    } else if let Ok(n) = user.parse::<u32>() {
        let primary = users.iter().find(|u| u.1 == n).map(|u| u.2).unwrap_or(0);
        (n, primary)
    } else {
        let u = users.iter().find(|u| u.0 == user).ok_or_else(|| {
            ContainerizationError::invalid_argument(format!(
                "unable to find user {user}: no matching entries in /etc/passwd"
            ))
        })?;
        (u.1, u.2)
    };
    let gid = match group {
        None if chown => uid,
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = read("/etc/group");
                groups
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.first() == Some(&g))
                            .then(|| f.get(2)?.parse().ok())
                            .flatten()
                    })
                    .ok_or_else(|| {
                        ContainerizationError::invalid_argument(format!(
                            "unable to find group {g}: no matching entries in /etc/group"
                        ))
                    })?
            }
        },
    };
    Ok((uid, gid))
}

/// True when `spec` is empty or numeric (`uid[:gid]`), so no lookup in the
/// image is needed.
pub fn is_numeric_user(spec: &str) -> bool {
    spec.split(':')
        .all(|p| p.is_empty() || p.parse::<u32>().is_ok())
        && !spec.split(':').next().unwrap_or("").is_empty()
}
