//! The build cache: step key -> the layer that step produced, one small
//! JSON file per key under `<root>/build-cache/`, written atomically. Layers
//! live in the content store; an entry whose blob was garbage-collected is
//! a miss.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use containerization_error::{Code, Result, ResultExt};
use containerization_oci::ContentStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layer::LayerRef;

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The layer, or `None` when the step changed no file.
    pub layer: Option<LayerRef>,
}

/// When an image with a given final key was first made, so a rebuild that
/// changed nothing produces the same config and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Created {
    created: String,
}

/// The cache directory of a state root.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

/// Chains a step onto `parent`: the key of a step is the hash of its
/// parent's key and everything that determines its result.
pub fn chain(parent: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl BuildCache {
    /// The cache of `state_root` (created when missing).
    pub fn open(state_root: &Path) -> Result<BuildCache> {
        let dir = state_root.join("build-cache");
        fs::create_dir_all(&dir)
            .context(Code::InternalError, format!("creating {}", dir.display()))?;
        Ok(BuildCache { dir })
    }

    /// The directory (cache mounts live below it too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The entry for `key`, if present and its layer is still stored.
    pub fn get(&self, key: &str, content: &ContentStore) -> Option<CacheEntry> {
        let data = fs::read(self.path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&data).ok()?;
        match &entry.layer {
            Some(l) if !content.contains(&l.digest) => None,
            _ => Some(entry),
        }
    }

    /// Records `entry` for `key` (temp file, fsync, rename).
    pub fn put(&self, key: &str, entry: &CacheEntry) -> Result<()> {
        let data =
            serde_json::to_vec(entry).context(Code::InternalError, "encoding a cache entry")?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .context(Code::InternalError, "creating a cache entry")?;
        tmp.write_all(&data)
            .and_then(|_| tmp.as_file().sync_all())
            .context(Code::InternalError, "writing a cache entry")?;
        tmp.persist(self.path(key))
            .map_err(|e| e.error)
            .context(Code::InternalError, "storing a cache entry")?;
        Ok(())
    }

    /// The `created` time recorded for image key `key`, else `now`
    /// (recorded for next time).
    pub fn created(&self, key: &str, now: &str) -> Result<String> {
        let path = self.dir.join(format!("image-{key}.json"));
        if let Some(c) = fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice::<Created>(&d).ok())
        {
            return Ok(c.created);
        }
        let data = serde_json::to_vec(&Created {
            created: now.to_string(),
        })
        .context(Code::InternalError, "encoding a cache entry")?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .context(Code::InternalError, "creating a cache entry")?;
        tmp.write_all(&data)
            .and_then(|_| tmp.as_file().sync_all())
            .context(Code::InternalError, "writing a cache entry")?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .context(Code::InternalError, "storing a cache entry")?;
        Ok(now.to_string())
    }
}
