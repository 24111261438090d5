//! Layer blobs: a tar+gzip stream written into the content store while both
//! digests (compressed blob, uncompressed `diff_id`) are computed on the fly.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_oci::ContentStore;
use containerization_oci::media_types::OCI_LAYER_GZIP;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A layer of a stage: the blob in the content store and its `diff_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the blob as stored (compressed).
    pub digest: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// Media type of the blob.
    pub media_type: String,
}

/// Hashes what passes through to the inner writer.
struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Inner = HashWriter<GzEncoder<HashWriter<BufWriter<File>>>>;

/// Builds one layer: append entries, then
/// [`LayerWriter::finish`] stores it.
pub struct LayerWriter {
    tar: tar::Builder<Inner>,
    file: File,
    entries: usize,
}

impl std::fmt::Debug for LayerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerWriter({} entries)", self.entries)
    }
}

fn io_err(e: io::Error) -> ContainerizationError {
    ContainerizationError::internal("writing a layer").with_cause(e)
}

impl LayerWriter {
    /// A new, empty layer spooled to an unnamed temporary file.
    pub fn new() -> Result<LayerWriter> {
        let file = tempfile::tempfile().context(Code::InternalError, "creating a layer file")?;
        let out = HashWriter {
            inner: BufWriter::new(file.try_clone().map_err(io_err)?),
            hasher: Sha256::new(),
            written: 0,
        };
        let gz = GzEncoder::new(out, Compression::fast());
        let raw = HashWriter {
            inner: gz,
            hasher: Sha256::new(),
            written: 0,
        };
        let mut tar = tar::Builder::new(raw);
        tar.mode(tar::HeaderMode::Complete);
        Ok(LayerWriter {
            tar,
            file,
            entries: 0,
        })
    }

    /// Number of entries appended.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Appends a regular file, directory, symlink, ... given a header whose
    /// size is already set, and its data.
    pub fn append(&mut self, header: &mut tar::Header, path: &str, data: impl Read) -> Result<()> {
        self.entries += 1;
        let path = path.trim_start_matches('/');
        self.tar.append_data(header, path, data).map_err(|e| {
            ContainerizationError::internal(format!("writing {path} into a layer")).with_cause(e)
        })
    }

    /// Appends a symlink or hard link named `path` pointing at `target`.
    pub fn append_link(
        &mut self,
        header: &mut tar::Header,
        path: &str,
        target: &str,
    ) -> Result<()> {
        self.entries += 1;
        let path = path.trim_start_matches('/');
        self.tar.append_link(header, path, target).map_err(|e| {
            ContainerizationError::internal(format!("writing link {path} into a layer"))
                .with_cause(e)
        })
    }

    /// Finishes the tar and moves the blob into `content`.
    pub fn finish(self, content: &ContentStore) -> Result<LayerRef> {
        let raw = self.tar.into_inner().map_err(io_err)?;
        let diff_id = format!("sha256:{}", hex::encode(raw.hasher.finalize()));
        let mut out = raw.inner.finish().map_err(io_err)?;
        out.flush().map_err(io_err)?;
        let size = out.written;
        let HashWriter { inner, hasher, .. } = out;
        drop(inner);
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let mut file = self.file;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        if !content.contains(&digest) {
            content.write_verified(&digest, Some(size), file)?;
        }
        Ok(LayerRef {
            digest,
            size,
            diff_id,
            media_type: OCI_LAYER_GZIP.to_string(),
        })
    }
}

/// A tar header for an entry of `kind` with the usual defaults filled in.
pub fn header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}
