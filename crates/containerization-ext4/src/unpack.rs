//! OCI layer unpacking into a [`Formatter`]: tar (plain, gzip, zstd) applied
//! in order with whiteouts (`.wh.NAME`), opaque directories
//! (`.wh..wh..opq`, hiding lower layers only, whatever the entry order),
//! hard links, PAX/GNU long names, xattrs and nanosecond times. File data
//! streams straight into the image; memory holds only the metadata tree.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tar::EntryType;

use crate::formatter::{DeviceKind, FormatOptions, FormatStats, Formatter};
use crate::metadata::{Metadata, Timestamp};
use crate::tree::NodeId;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What an unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Layers applied.
    pub layers: usize,
    /// Tar entries read.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file contents read from the layers.
    pub bytes: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// What the formatter wrote at close.
    pub format: FormatStats,
}

/// Applies OCI layers, one after the other, to an image being formatted.
#[derive(Debug)]
pub struct Unpacker {
    formatter: Formatter,
    stats: UnpackStats,
}

/// Unpacks `layers` (tar, tar+gzip or tar+zstd files, lowest first) into a
/// new sparse ext4 image `out` of `size_bytes`. On error `out` is removed.
pub fn unpack_layers(layers: &[PathBuf], out: &Path, size_bytes: u64) -> Result<UnpackStats> {
    let run = || -> Result<UnpackStats> {
        let mut u = Unpacker::new(Formatter::create(
            out,
            size_bytes,
            FormatOptions::default(),
        )?);
        for l in layers {
            u.apply_layer_file(l)?;
        }
        u.finish()
    };
    let r = run();
    if r.is_err() {
        let _ = std::fs::remove_file(out);
    }
    r
}

/// Normalises a tar path lexically; `None` when it climbs above the root.
pub(crate) fn normalize(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            n => out.push(n.to_vec()),
        }
    }
    Some(out)
}

fn join(comps: &[Vec<u8>]) -> PathBuf {
    let mut p = Vec::from(&b"/"[..]);
    p.extend_from_slice(&comps.join(&b'/'));
    PathBuf::from(std::ffi::OsStr::from_bytes(&p))
}

/// Parses a PAX time (`123.456`, possibly negative) into a timestamp.
fn pax_time(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    let mut nanos: u32 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(if neg {
        if nanos == 0 {
            Timestamp {
                secs: -secs,
                nanos: 0,
            }
        } else {
            Timestamp {
                secs: -secs - 1,
                nanos: 1_000_000_000 - nanos,
            }
        }
    } else {
        Timestamp { secs, nanos }
    })
}

impl Unpacker {
    /// Wraps a fresh formatter.
    pub fn new(formatter: Formatter) -> Unpacker {
        Unpacker {
            formatter,
            stats: UnpackStats::default(),
        }
    }

    /// The formatter, for adding entries besides the layers.
    pub fn formatter_mut(&mut self) -> &mut Formatter {
        &mut self.formatter
    }

    /// Applies the layer stored in file `path` (compression detected).
    pub fn apply_layer_file(&mut self, path: &Path) -> Result<()> {
        let f = File::open(path)
            .context(Code::NotFound, format!("opening layer {}", path.display()))?;
        let label = path.display().to_string();
        self.apply_layer_named(BufReader::with_capacity(1 << 20, f), &label)
    }

    /// Applies one layer read from `reader` (tar, gzip or zstd).
    pub fn apply_layer(&mut self, reader: impl Read + Send + 'static) -> Result<()> {
        let label = format!("#{}", self.stats.layers + 1);
        self.apply_layer_named(reader, &label)
    }

    fn apply_layer_named(&mut self, reader: impl Read + Send + 'static, label: &str) -> Result<()> {
        self.stats.layers += 1;
        self.formatter.layer = self.stats.layers as u32;
        let stream = containerization_archive::open_decompressed(reader)?;
        // Long names and PAX headers are buffered by `tar`: bound them.
        let mut archive = tar::Archive::new(containerization_archive::guard_headers(stream));
        let entries = archive.entries().map_err(|e| {
            ContainerizationError::invalid_argument(format!(
                "layer {label}: not a tar archive: {e}"
            ))
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| {
                ContainerizationError::invalid_argument(format!(
                    "layer {label}: bad tar entry: {e}"
                ))
            })?;
            self.stats.entries += 1;
            let raw_path = entry.path_bytes().into_owned();
            self.apply_entry(&mut entry, &raw_path).map_err(|e| {
                ContainerizationError::new(
                    e.code,
                    format!(
                        "layer {label}: entry {:?}: {}",
                        String::from_utf8_lossy(&raw_path),
                        e.message
                    ),
                )
            })?;
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_path: &[u8],
    ) -> Result<()> {
        let comps = normalize(raw_path).ok_or_else(|| {
            ContainerizationError::invalid_argument("path escapes the root of the image")
        })?;
        let kind = entry.header().entry_type();
        if let Some(name) = comps.last() {
            if name.as_slice() == OPAQUE {
                self.stats.whiteouts += 1;
                if let Some(dir) = self.formatter.lookup_comps(&comps[..comps.len() - 1])
                    && self.formatter.tree.get(dir).is_dir()
                {
                    self.prune_lower(dir);
                }
                return Ok(());
            }
            if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
                if target.starts_with(WHITEOUT_PREFIX) {
                    // Other `.wh..wh.*` markers (aufs metadata) carry nothing for us.
                    return Ok(());
                }
                self.stats.whiteouts += 1;
                if let Some(parent) = self.formatter.lookup_comps(&comps[..comps.len() - 1])
                    && let Some(victim) = self.formatter.child(parent, target)
                    && self.formatter.tree.get(victim).layer < self.formatter.layer
                {
                    self.formatter.remove_child(parent, target);
                }
                return Ok(());
            }
        }
        let path = join(&comps);
        let meta = metadata_of(entry)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if comps.is_empty() {
                    return Err(ContainerizationError::invalid_argument(
                        "a regular file cannot replace the root",
                    ));
                }
                let n = self.formatter.create_file(&path, meta, entry)?;
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            EntryType::Directory => self.formatter.create_dir(&path, meta)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        ContainerizationError::invalid_argument("symlink without a target")
                    })?
                    .into_owned();
                self.formatter
                    .create_symlink(&path, std::ffi::OsStr::from_bytes(&target), meta)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        ContainerizationError::invalid_argument("hard link without a target")
                    })?
                    .into_owned();
                let tcomps = normalize(&target).ok_or_else(|| {
                    ContainerizationError::invalid_argument(format!(
                        "hard link target {:?} escapes the root of the image",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                let tpath = join(&tcomps);
                self.formatter.create_hardlink(&path, &tpath)?;
                if let Some(id) = self.formatter.lookup_comps(&tcomps) {
                    // The inode now has a name in this layer.
                    let layer = self.formatter.layer;
                    self.formatter.tree.get_mut(id).layer = layer;
                }
                self.stats.hardlinks += 1;
            }
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let dk = if kind == EntryType::Char {
                    DeviceKind::Char
                } else {
                    DeviceKind::Block
                };
                self.formatter
                    .create_device(&path, dk, major, minor, meta)?;
            }
            EntryType::Fifo => self.formatter.create_fifo(&path, meta)?,
            other => {
                tracing::warn!(entry = %path.display(), kind = ?other, "skipping unsupported tar entry type");
            }
        }
        Ok(())
    }

    /// Removes everything below `dir` that came from lower layers; entries
    /// of the current layer (before or after the marker) stay.
    fn prune_lower(&mut self, dir: NodeId) {
        let layer = self.formatter.layer;
        let children: Vec<(Vec<u8>, NodeId)> = self
            .formatter
            .tree
            .get(dir)
            .children()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        for (name, id) in children {
            let node = self.formatter.tree.get(id);
            if node.layer < layer {
                self.formatter.remove_child(dir, &name);
            } else if node.is_dir() {
                self.prune_lower(id);
            }
        }
    }

    /// Writes the metadata and closes the image.
    pub fn finish(self) -> Result<UnpackStats> {
        let mut stats = self.stats;
        stats.format = self.formatter.close()?;
        Ok(stats)
    }
}

/// Builds the metadata of a tar entry: header fields overridden by PAX
/// records (ids, nanosecond times) and PAX xattrs.
fn metadata_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Metadata> {
    let h = entry.header();
    let mode = (h.mode().unwrap_or(0o644) & 0o7777) as u16;
    let mut uid = h.uid().unwrap_or(0) as u32;
    let mut gid = h.gid().unwrap_or(0) as u32;
    let mtime_hdr = Timestamp::from_secs(h.mtime().unwrap_or(0) as i64);
    let mut meta = Metadata::with_mode(mode).at(mtime_hdr);
    meta.uid = uid;
    meta.gid = gid;
    let mut atime = None;
    let mut ctime = None;
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| ContainerizationError::invalid_argument(format!("bad PAX header: {e}")))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| {
                ContainerizationError::invalid_argument(format!("bad PAX record: {e}"))
            })?;
            let key = ext.key_bytes();
            let val = ext.value_bytes();
            match key {
                b"uid" => {
                    uid = std::str::from_utf8(val)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(uid)
                }
                b"gid" => {
                    gid = std::str::from_utf8(val)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(gid)
                }
                b"mtime" => {
                    if let Some(t) = pax_time(val) {
                        meta.mtime = t;
                    }
                }
                b"atime" => atime = pax_time(val),
                b"ctime" => ctime = pax_time(val),
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        let Ok(name) = std::str::from_utf8(name) else {
                            continue;
                        };
                        if crate::xattr::split_name(name).is_some() {
                            meta.xattrs.insert(name.to_string(), val.to_vec());
                        } else {
                            tracing::warn!(
                                xattr = name,
                                "skipping extended attribute in an unsupported namespace"
                            );
                        }
                    }
                }
            }
        }
    }
    meta.uid = uid;
    meta.gid = gid;
    meta.atime = atime.unwrap_or(meta.mtime);
    meta.ctime = ctime.unwrap_or(meta.mtime);
    meta.crtime = meta.mtime;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refuses_escape() {
        assert_eq!(
            normalize(b"./a/b/../c"),
            Some(vec![b"a".to_vec(), b"c".to_vec()])
        );
        assert_eq!(normalize(b"../etc/passwd"), None);
        assert_eq!(normalize(b"a/../../x"), None);
        assert_eq!(normalize(b"/"), Some(vec![]));
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            pax_time(b"1.5"),
            Some(Timestamp {
                secs: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            pax_time(b"-1.25"),
            Some(Timestamp {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Timestamp { secs: 12, nanos: 0 }));
        assert_eq!(pax_time(b"x"), None);
    }
}
