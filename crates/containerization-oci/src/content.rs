//! `ContentStore`: verified blobs under `<state_root>/content/`.
//!
//! Data is written to `content/ingest/<random>`, hashed as it is written,
//! fsync'd, and renamed to `blobs/sha256/<hex>` only when both digest and
//! size match; a blob is therefore either absent or complete and correct.
//! Concurrent ingests of one digest are safe: rename is atomic and both
//! writers carry identical bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use sha2::{Digest, Sha256};

use crate::digest::validate_digest;

/// Blob storage addressed by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the content store of `state_root`.
    pub fn open(state_root: &Path) -> Result<ContentStore> {
        let root = state_root.join("content");
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&dir).context(
                Code::InternalError,
                format!("creating content directory '{}'", dir.display()),
            )?;
        }
        Ok(ContentStore { root })
    }

    /// The directory holding `blobs/` and `ingest/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is present).
    /// An invalid digest maps to a path that never exists.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        match validate_digest(digest) {
            Ok(hex) => self.root.join("blobs/sha256").join(hex),
            Err(_) => self.root.join("blobs/invalid-digest"),
        }
    }

    /// True if the blob is present.
    pub fn contains(&self, digest: &str) -> bool {
        validate_digest(digest).is_ok() && self.blob_path(digest).is_file()
    }

    /// Opens a present blob for reading; `NotFound` if absent.
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        validate_digest(digest)?;
        File::open(self.blob_path(digest)).context(
            Code::NotFound,
            format!("blob {digest} not found in content store"),
        )
    }

    /// Reads a whole (small) blob such as a manifest or config.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .context(Code::InternalError, format!("reading blob {digest}"))?;
        Ok(data)
    }

    /// Size of a present blob.
    pub fn size(&self, digest: &str) -> Result<u64> {
        validate_digest(digest)?;
        Ok(fs::metadata(self.blob_path(digest))
            .context(
                Code::NotFound,
                format!("blob {digest} not found in content store"),
            )?
            .len())
    }

    /// Starts writing a blob that must turn out to have `expected_digest`
    /// (and `expected_size` when given).
    pub fn ingest(
        &self,
        expected_digest: &str,
        expected_size: Option<u64>,
    ) -> Result<IngestWriter> {
        validate_digest(expected_digest)?;
        let file = tempfile::Builder::new()
            .prefix(&ingest_prefix("ingest"))
            .tempfile_in(self.root.join("ingest"))
            .context(Code::InternalError, "creating ingest file")?;
        Ok(IngestWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
            expected_digest: expected_digest.to_string(),
            expected_size,
            target: self.blob_path(expected_digest),
        })
    }

    /// Copies `reader` into the store, verifying digest and size; returns
    /// the number of bytes. Nothing is stored on mismatch.
    pub fn write_verified(
        &self,
        expected_digest: &str,
        expected_size: Option<u64>,
        mut reader: impl Read,
    ) -> Result<u64> {
        let mut w = self.ingest(expected_digest, expected_size)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ContainerizationError::internal(format!(
                        "reading data for blob {expected_digest}"
                    ))
                    .with_cause(e));
                }
            };
            w.write(&buf[..n])?;
        }
        w.commit()
    }

    /// Stores `data` under its own digest and returns that digest.
    pub fn write_bytes(&self, data: &[u8]) -> Result<String> {
        let digest = crate::digest::sha256_digest(data);
        if !self.contains(&digest) {
            self.write_verified(&digest, Some(data.len() as u64), data)?;
        }
        Ok(digest)
    }

    /// Removes a blob; absent blobs are not an error.
    pub fn delete(&self, digest: &str) -> Result<()> {
        validate_digest(digest)?;
        match fs::remove_file(self.blob_path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContainerizationError::internal(
                format!("deleting blob {digest}"),
            )
            .with_cause(e)),
            _ => Ok(()),
        }
    }

    /// Every blob present, as `(digest, size)`.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).context(Code::InternalError, "listing content store")? {
            let entry = entry.context(Code::InternalError, "listing content store")?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if validate_digest(&digest).is_ok() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((digest, len));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Total bytes of all blobs.
    pub fn total_size(&self) -> Result<u64> {
        Ok(self.list()?.iter().map(|(_, s)| s).sum())
    }

    /// Removes ingest entries (partial blobs, `load` staging directories)
    /// whose writer is dead, and any older than `max_age`; returns how many.
    /// Entries carry their writer's pid (`ingest-<pid>-*`, `load-<pid>-*`),
    /// so a live writer in another process (a build) keeps its files.
    pub fn clean_ingest(&self, max_age: std::time::Duration) -> Result<usize> {
        let dir = self.root.join("ingest");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).context(Code::InternalError, "listing ingest directory")? {
            let Ok(entry) = entry else { continue };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = writer_pid(&name).is_some_and(|pid| !pid_alive(pid));
            if old || orphan {
                let path = entry.path();
                if fs::remove_file(&path)
                    .or_else(|_| fs::remove_dir_all(&path))
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// `<kind>-<pid>-`: the prefix of this process's ingest entries.
pub(crate) fn ingest_prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// The writer pid in an ingest entry's name, if it has one.
fn writer_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("ingest-")
        .or_else(|| name.strip_prefix("load-"))?;
    rest.split_once('-')?.0.parse().ok()
}

/// True while a process `pid` exists (zombies count as gone).
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A blob being written; becomes visible only through `commit`. Dropping it
/// uncommitted removes the partial data.
pub struct IngestWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
    expected_digest: String,
    expected_size: Option<u64>,
    target: PathBuf,
}

impl IngestWriter {
    /// Appends data, refusing to grow past the expected size.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.written += data.len() as u64;
        if let Some(size) = self.expected_size
            && self.written > size
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "blob {} is larger than its declared size {size}",
                self.expected_digest
            )));
        }
        self.hasher.update(data);
        self.file.write_all(data).context(
            Code::InternalError,
            format!("writing blob {}", self.expected_digest),
        )
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies size and digest, makes the data durable and publishes it.
    /// Returns the size. On mismatch nothing is stored.
    pub fn commit(self) -> Result<u64> {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if let Some(size) = self.expected_size
            && self.written != size
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "blob {} size mismatch: expected {size} bytes, got {}",
                self.expected_digest, self.written
            )));
        }
        if digest != self.expected_digest {
            return Err(ContainerizationError::invalid_argument(format!(
                "digest mismatch: expected {}, got {digest}",
                self.expected_digest
            )));
        }
        self.file
            .as_file()
            .sync_all()
            .context(Code::InternalError, format!("syncing blob {digest}"))?;
        // Blobs are immutable once visible.
        let _ = fs::set_permissions(
            self.file.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o444),
        );
        if self.target.exists() {
            return Ok(self.written); // another writer won; same bytes.
        }
        let written = self.written;
        self.file.persist(&self.target).map_err(|e| {
            ContainerizationError::internal(format!("publishing blob {digest}")).with_cause(e.error)
        })?;
        if let Some(dir) = self.target.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    #[test]
    fn verified_write_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let data = b"hello blob".to_vec();
        let d = sha256_digest(&data);
        assert!(!cs.contains(&d));
        assert_eq!(cs.write_verified(&d, Some(10), &data[..]).unwrap(), 10);
        assert!(cs.contains(&d));
        assert_eq!(cs.read(&d).unwrap(), data);
        assert_eq!(cs.list().unwrap(), vec![(d.clone(), 10)]);
        assert_eq!(cs.total_size().unwrap(), 10);
        // A second identical ingest is harmless.
        cs.write_verified(&d, None, &data[..]).unwrap();
        cs.delete(&d).unwrap();
        assert!(!cs.contains(&d));
        assert!(cs.read(&d).unwrap_err().is_code(Code::NotFound));
    }

    #[test]
    fn concurrent_ingests_of_one_digest_are_safe() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let data = vec![7u8; 1 << 20];
        let d = sha256_digest(&data);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    cs.write_verified(&d, Some(data.len() as u64), &data[..])
                        .unwrap()
                });
            }
        });
        assert_eq!(cs.read(&d).unwrap(), data);
        assert_eq!(fs::read_dir(cs.root().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn mismatches_store_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let d = sha256_digest(b"right");
        let e = cs.write_verified(&d, None, &b"wrong"[..]).unwrap_err();
        assert!(e.message.contains("digest mismatch"), "{e}");
        let e = cs.write_verified(&d, Some(4), &b"right"[..]).unwrap_err();
        assert!(e.message.contains("size"), "{e}");
        let e = cs.write_verified(&d, Some(9), &b"right"[..]).unwrap_err();
        assert!(e.message.contains("size mismatch"), "{e}");
        assert!(cs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(cs.root().join("ingest")).unwrap().count(), 0);
        assert!(cs.write_verified("sha256:zz", None, &b""[..]).is_err());
        assert!(!cs.contains("../../etc/passwd"));
    }
}
