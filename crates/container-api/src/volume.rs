//! Named volumes: what is stored in `volumes/<name>/volume.json`, the name
//! and option rules shared by the CLI and the daemon, and the typed client.

use std::collections::BTreeMap;

use containerization_error::{ContainerizationError, Result};
use serde::{Deserialize, Serialize};

use crate::ApiClient;
use crate::apiserver;
use crate::client::from_status;

/// Size of a volume when no `size` option is given (sparse: only written
/// blocks take host disk space).
pub const DEFAULT_VOLUME_SIZE: u64 = 8 << 30;

/// Smallest volume the formatter can hold with a journal.
pub const MIN_VOLUME_SIZE: u64 = 16 << 20;

/// Label marking a volume made by `-v /path` (removed by `volume prune`).
pub const ANONYMOUS_LABEL: &str = "com.apple.container.resource.anonymous";

/// A named volume (seed `Volume`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Filesystem of the image (`ext4`).
    pub format: String,
    /// Host path of the image.
    pub source: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options as given (`size`, `journal`).
    pub options: BTreeMap<String, String>,
    /// Capacity of the filesystem in bytes.
    pub size_in_bytes: u64,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Made by `-v /path` rather than by name.
    #[serde(default)]
    pub anonymous: bool,
    /// Whether a container has mounted it yet (until then it is still
    /// empty, and the first container's image files are copied into it).
    #[serde(default)]
    pub initialized: bool,
}

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 255 bytes.
pub fn valid_volume_name(name: &str) -> bool {
    crate::config::valid_docker_name(name, 255)
}

/// The error for a name that breaks [`valid_volume_name`].
pub fn invalid_name(name: &str) -> ContainerizationError {
    ContainerizationError::invalid_argument(format!(
        "invalid volume name '{name}': use [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 255 characters"
    ))
}

/// Parses a size: bytes, or a number with K, M, G, T or P (binary units;
/// a trailing `B` or `iB` is accepted).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let t = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        Some('P') => (&t[..t.len() - 1], 50),
        _ => (t, 0),
    };
    let bad = || {
        ContainerizationError::invalid_argument(format!(
            "invalid size '{s}': use a number with K, M, G, T or P"
        ))
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// The capacity the `size` option asks for, within the allowed range.
pub fn size_from_options(options: &BTreeMap<String, String>) -> Result<u64> {
    let size = match options.get("size") {
        Some(s) => parse_size(s)?,
        None => DEFAULT_VOLUME_SIZE,
    };
    if size < MIN_VOLUME_SIZE {
        return Err(ContainerizationError::invalid_argument(format!(
            "volume size {size} bytes is too small: the minimum is 16M"
        )));
    }
    Ok(size)
}

fn decode(json: &str) -> Result<Volume> {
    serde_json::from_str(json).map_err(|e| {
        ContainerizationError::internal("the apiserver sent an invalid volume").with_cause(e)
    })
}

impl ApiClient {
    /// `Volumes.Create`.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume> {
        let r = self
            .volumes_client()
            .create(apiserver::VolumeCreateRequest {
                name: name.into(),
                labels: labels.into_iter().collect(),
                options: options.into_iter().collect(),
            })
            .await
            .map_err(from_status)?;
        decode(&r.into_inner().volume_json)
    }

    /// `Volumes.List`, sorted by name.
    pub async fn list_volumes(&self) -> Result<Vec<Volume>> {
        let r = self
            .volumes_client()
            .list(apiserver::Empty {})
            .await
            .map_err(from_status)?;
        r.into_inner()
            .volume_json
            .iter()
            .map(|j| decode(j))
            .collect()
    }

    /// `Volumes.Inspect`.
    pub async fn inspect_volume(&self, name: &str) -> Result<Volume> {
        let r = self
            .volumes_client()
            .inspect(apiserver::VolumeName { name: name.into() })
            .await
            .map_err(from_status)?;
        decode(&r.into_inner().volume_json)
    }

    /// `Volumes.Delete`.
    pub async fn delete_volume(&self, name: &str) -> Result<()> {
        self.volumes_client()
            .delete(apiserver::VolumeName { name: name.into() })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// `Volumes.Prune`: names removed and bytes reclaimed.
    pub async fn prune_volumes(&self) -> Result<apiserver::VolumePruneReply> {
        let r = self
            .volumes_client()
            .prune(apiserver::Empty {})
            .await
            .map_err(from_status)?;
        Ok(r.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert!(valid_volume_name("data_1.x-y"));
        assert!(!valid_volume_name("-x"));
        assert!(!valid_volume_name("a/b"));
        assert!(!valid_volume_name(""));
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2gb").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("big").is_err());
        let mut o = BTreeMap::new();
        assert_eq!(size_from_options(&o).unwrap(), DEFAULT_VOLUME_SIZE);
        o.insert("size".into(), "1M".into());
        assert!(size_from_options(&o).is_err());
    }
}
