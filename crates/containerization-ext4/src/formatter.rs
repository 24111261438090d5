//! `Formatter`: builds an ext4 filesystem in a sparse file. File data is
//! written to its final place as it streams in (all-zero blocks become
//! holes); inodes, directories and group metadata are written by `close()`.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::geometry::Geometry;
use crate::layout::{BLOCK_SIZE, MAX_EXTENT_LEN, MAX_NAME_LEN};
use crate::metadata::{Metadata, Timestamp};
use crate::tree::{Extent, Kind, Node, NodeId, Tree};

/// How the journal orders data (recorded as the default mount option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalMode {
    /// Data written before its metadata is committed (ext4's default).
    #[default]
    Ordered,
    /// Metadata-only journaling.
    Writeback,
    /// Data and metadata both journaled.
    Journal,
}

/// An internal JBD2 journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalOptions {
    /// Journal size; `None` picks mke2fs's default for the filesystem size.
    pub size_bytes: Option<u64>,
    /// Data ordering mode.
    pub mode: JournalMode,
}

/// Options of a new filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// Add a journal (`None`: no journal, as for read-mostly image snapshots).
    pub journal: Option<JournalOptions>,
    /// Volume label (at most 16 bytes).
    pub label: String,
    /// Filesystem UUID; random when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Bytes of capacity per inode (mke2fs's `-i`); 16 KiB by default.
    pub bytes_per_inode: u64,
    /// Lower bound on the number of inodes.
    pub min_inodes: u64,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            journal: None,
            label: String::new(),
            uuid: None,
            bytes_per_inode: 16384,
            min_inodes: 0,
        }
    }
}

/// Kind of device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Character device.
    Char,
    /// Block device.
    Block,
}

/// Counters of what the formatter wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatStats {
    /// Live inodes written (including the root and lost+found).
    pub inodes: u64,
    /// Data bytes written to the image (holes excluded).
    pub data_bytes: u64,
    /// Blocks in use when closed.
    pub used_blocks: u64,
}

const BUF_SIZE: usize = 1 << 20;

/// Builds an ext4 filesystem image; see the module docs.
pub struct Formatter {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) geo: Geometry,
    pub(crate) opts: FormatOptions,
    pub(crate) uuid: [u8; 16],
    pub(crate) tree: Tree,
    pub(crate) root: NodeId,
    /// Next free block of the sequential allocator.
    pub(crate) next_block: u64,
    /// Blocks released by unlink (holes punched; never reused).
    pub(crate) freed: Vec<Extent>,
    /// Journal blocks (start, count), reserved at creation.
    pub(crate) journal: Option<(u64, u64)>,
    pub(crate) created: Timestamp,
    pub(crate) layer: u32,
    pub(crate) data_bytes: u64,
    /// Inode number of each node, filled by `close()`.
    pub(crate) ino_of: Vec<u32>,
    /// The journal inode's `i_block`, copied into the superblock.
    pub(crate) journal_iblock: [u8; 60],
    buf: Vec<u8>,
}

impl std::fmt::Debug for Formatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formatter")
            .field("path", &self.path)
            .field("geometry", &self.geo)
            .finish()
    }
}

/// Splits an image path into its names; `..` is refused because no entry may
/// point outside the image root.
pub(crate) fn components(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "path {} contains '..' and would escape the filesystem root",
                    path.display()
                )));
            }
            Component::Normal(n) => {
                let b = n.as_bytes();
                if b.len() > MAX_NAME_LEN {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "name of {} is {} bytes long; ext4 allows {MAX_NAME_LEN}",
                        path.display(),
                        b.len()
                    )));
                }
                out.push(b.to_vec());
            }
        }
    }
    Ok(out)
}

static ZERO_BLOCK: [u8; BLOCK_SIZE as usize] = [0u8; BLOCK_SIZE as usize];

fn is_zero(block: &[u8]) -> bool {
    // Slice equality on bytes lowers to memcmp, fast in every build profile.
    block == &ZERO_BLOCK[..block.len()]
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut u);
    }
    if u == [0u8; 16] {
        // Fall back to time-derived bytes; uniqueness is best effort only.
        let t = Timestamp::now();
        u[..8].copy_from_slice(&t.secs.to_le_bytes());
        u[8..12].copy_from_slice(&t.nanos.to_le_bytes());
        u[12..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Default journal size for a filesystem of `blocks` blocks (mke2fs's table).
fn default_journal_blocks(blocks: u64) -> u64 {
    match blocks {
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    }
}

impl Formatter {
    /// Creates (or truncates) `path` as a sparse file of `size_bytes` and
    /// prepares an empty filesystem with `/` and `/lost+found`.
    pub fn create(
        path: impl AsRef<Path>,
        size_bytes: u64,
        opts: FormatOptions,
    ) -> Result<Formatter> {
        let path = path.as_ref().to_path_buf();
        if opts.label.len() > 16 {
            return Err(ContainerizationError::invalid_argument(format!(
                "volume label {:?} is longer than 16 bytes",
                opts.label
            )));
        }
        let geo = Geometry::new(size_bytes, opts.bytes_per_inode, opts.min_inodes)
            .map_err(ContainerizationError::invalid_argument)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .context(
                Code::InternalError,
                format!("creating image {}", path.display()),
            )?;
        file.set_len(geo.blocks * BLOCK_SIZE).context(
            Code::InternalError,
            format!("sizing image {}", path.display()),
        )?;
        let created = Timestamp::now();
        let mut tree = Tree::default();
        let mut root_meta = Metadata::with_mode(0o755).at(created);
        root_meta.xattrs.clear();
        let root = tree.add(Node {
            kind: Kind::Dir {
                children: Default::default(),
                parent: 0,
            },
            meta: root_meta,
            links: 1,
            layer: 0,
        });
        let mut next_block = geo.data_start;
        let journal = match opts.journal {
            Some(j) => {
                let n = match j.size_bytes {
                    Some(s) => s.div_ceil(BLOCK_SIZE).max(1024),
                    None => default_journal_blocks(geo.blocks),
                };
                if next_block + n + 64 > geo.blocks {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "image size {size_bytes} bytes is too small for a {} byte journal",
                        n * BLOCK_SIZE
                    )));
                }
                let start = next_block;
                next_block += n;
                Some((start, n))
            }
            None => None,
        };
        let uuid = opts.uuid.unwrap_or_else(random_uuid);
        let mut f = Formatter {
            file,
            path,
            geo,
            opts,
            uuid,
            tree,
            root,
            next_block,
            freed: Vec::new(),
            journal,
            created,
            layer: 0,
            data_bytes: 0,
            ino_of: Vec::new(),
            journal_iblock: [0u8; 60],
            buf: vec![0u8; BUF_SIZE],
        };
        f.create_dir("/lost+found", Metadata::with_mode(0o700).at(created))?;
        Ok(f)
    }

    /// Size of the filesystem in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.geo.blocks * BLOCK_SIZE
    }

    /// Creates a directory (and any missing parents, mode 0755). An existing
    /// directory keeps its contents and takes the new metadata; any other
    /// existing entry is replaced.
    pub fn create_dir(&mut self, path: impl AsRef<Path>, meta: Metadata) -> Result<()> {
        let path = path.as_ref();
        let comps = components(path)?;
        if comps.is_empty() {
            let layer = self.layer;
            let root = self.tree.get_mut(self.root);
            root.meta = meta;
            root.layer = layer;
            return Ok(());
        }
        let (parent, name) = self.parent_of(path, &comps)?;
        if let Some(existing) = self.child(parent, &name)
            && self.tree.get(existing).is_dir()
        {
            let layer = self.layer;
            let n = self.tree.get_mut(existing);
            n.meta = meta;
            n.layer = layer;
            return Ok(());
        }
        let node = Node {
            kind: Kind::Dir {
                children: Default::default(),
                parent,
            },
            meta,
            links: 1,
            layer: self.layer,
        };
        self.replace(parent, name, node);
        Ok(())
    }

    /// Creates a regular file whose contents are read from `data` and written
    /// to the image as they stream (all-zero blocks become holes). Returns the
    /// file size. An existing entry at `path` is replaced.
    pub fn create_file(
        &mut self,
        path: impl AsRef<Path>,
        meta: Metadata,
        data: &mut dyn Read,
    ) -> Result<u64> {
        let path = path.as_ref();
        let comps = components(path)?;
        if comps.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "cannot replace the root directory with a file",
            ));
        }
        let (parent, name) = self.parent_of(path, &comps)?;
        let (size, extents) = self.write_data(path, data)?;
        let node = Node {
            kind: Kind::File { size, extents },
            meta,
            links: 1,
            layer: self.layer,
        };
        self.replace(parent, name, node);
        Ok(size)
    }

    /// Creates a symbolic link to `target` (stored as given, never followed).
    pub fn create_symlink(
        &mut self,
        path: impl AsRef<Path>,
        target: impl AsRef<OsStr>,
        meta: Metadata,
    ) -> Result<()> {
        let target = target.as_ref().as_bytes().to_vec();
        if target.is_empty() || target.len() >= BLOCK_SIZE as usize {
            return Err(ContainerizationError::invalid_argument(format!(
                "symlink {} has a target of {} bytes; it must be 1..4095",
                path.as_ref().display(),
                target.len()
            )));
        }
        self.create_special(path.as_ref(), Kind::Symlink { target }, meta)
    }

    /// Creates a character or block device node.
    pub fn create_device(
        &mut self,
        path: impl AsRef<Path>,
        kind: DeviceKind,
        major: u32,
        minor: u32,
        meta: Metadata,
    ) -> Result<()> {
        if major > 0xfff || minor > 0xfffff {
            return Err(ContainerizationError::invalid_argument(format!(
                "device {} has number {major}:{minor}, beyond ext4's 12-bit major / 20-bit minor",
                path.as_ref().display()
            )));
        }
        let k = match kind {
            DeviceKind::Char => Kind::CharDev { major, minor },
            DeviceKind::Block => Kind::BlockDev { major, minor },
        };
        self.create_special(path.as_ref(), k, meta)
    }

    /// Creates a FIFO.
    pub fn create_fifo(&mut self, path: impl AsRef<Path>, meta: Metadata) -> Result<()> {
        self.create_special(path.as_ref(), Kind::Fifo, meta)
    }

    /// Creates a Unix socket node.
    pub fn create_socket(&mut self, path: impl AsRef<Path>, meta: Metadata) -> Result<()> {
        self.create_special(path.as_ref(), Kind::Socket, meta)
    }

    /// Creates `path` as another name of the existing non-directory `target`.
    pub fn create_hardlink(
        &mut self,
        path: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> Result<()> {
        let (path, target) = (path.as_ref(), target.as_ref());
        let tid = self.lookup(target)?.ok_or_else(|| {
            ContainerizationError::not_found(format!(
                "hard link {} points to {}, which does not exist",
                path.display(),
                target.display()
            ))
        })?;
        if self.tree.get(tid).is_dir() {
            return Err(ContainerizationError::invalid_argument(format!(
                "hard link {} points to directory {}",
                path.display(),
                target.display()
            )));
        }
        let comps = components(path)?;
        if comps.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "cannot replace the root directory with a hard link",
            ));
        }
        let (parent, name) = self.parent_of(path, &comps)?;
        if self.child(parent, &name) == Some(tid) {
            return Ok(());
        }
        self.remove_child(parent, &name);
        self.tree.get_mut(tid).links += 1;
        self.tree
            .get_mut(parent)
            .children_mut()
            .expect("dir")
            .insert(name, tid);
        Ok(())
    }

    /// Sets one extended attribute on an existing entry.
    pub fn set_xattr(&mut self, path: impl AsRef<Path>, name: &str, value: &[u8]) -> Result<()> {
        let path = path.as_ref();
        let id = self.lookup(path)?.ok_or_else(|| {
            ContainerizationError::not_found(format!("{} does not exist", path.display()))
        })?;
        let mut attrs = self.tree.get(id).meta.xattrs.clone();
        attrs.insert(name.to_string(), value.to_vec());
        crate::xattr::encode_attrs(&attrs).map_err(|e| {
            ContainerizationError::invalid_argument(format!("{}: {e}", path.display()))
        })?;
        self.tree.get_mut(id).meta.xattrs = attrs;
        Ok(())
    }

    /// Removes `path` (directories with everything below). Returns whether
    /// it existed. Freed data blocks become holes in the image.
    pub fn unlink(&mut self, path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        let comps = components(path)?;
        if comps.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "cannot remove the root directory",
            ));
        }
        let Some(parent) = self.lookup_comps(&comps[..comps.len() - 1]) else {
            return Ok(false);
        };
        if !self.tree.get(parent).is_dir() {
            return Ok(false);
        }
        Ok(self.remove_child(parent, &comps[comps.len() - 1]))
    }

    /// Whether `path` exists in the image.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        matches!(self.lookup(path.as_ref()), Ok(Some(_)))
    }

    // ----- internals shared with the unpacker -----

    fn create_special(&mut self, path: &Path, kind: Kind, meta: Metadata) -> Result<()> {
        let comps = components(path)?;
        if comps.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "cannot replace the root directory",
            ));
        }
        let (parent, name) = self.parent_of(path, &comps)?;
        let node = Node {
            kind,
            meta,
            links: 1,
            layer: self.layer,
        };
        self.replace(parent, name, node);
        Ok(())
    }

    pub(crate) fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.tree.get(dir).children()?.get(name).copied()
    }

    pub(crate) fn lookup_comps(&self, comps: &[Vec<u8>]) -> Option<NodeId> {
        let mut cur = self.root;
        for c in comps {
            cur = self.child(cur, c)?;
        }
        Some(cur)
    }

    pub(crate) fn lookup(&self, path: &Path) -> Result<Option<NodeId>> {
        Ok(self.lookup_comps(&components(path)?))
    }

    /// Finds (creating missing directories) the parent of `comps`; a parent
    /// that exists but is not a directory is an error.
    fn parent_of(&mut self, path: &Path, comps: &[Vec<u8>]) -> Result<(NodeId, Vec<u8>)> {
        let mut cur = self.root;
        let layer = self.layer;
        for c in &comps[..comps.len() - 1] {
            let next = match self.child(cur, c) {
                Some(n) => n,
                None => {
                    let meta = Metadata::with_mode(0o755).at(self.created);
                    let node = Node {
                        kind: Kind::Dir {
                            children: Default::default(),
                            parent: cur,
                        },
                        meta,
                        links: 1,
                        layer,
                    };
                    self.insert(cur, c.clone(), node)
                }
            };
            let n = self.tree.get_mut(next);
            if !n.is_dir() {
                return Err(ContainerizationError::invalid_argument(format!(
                    "cannot create {}: {} is not a directory",
                    path.display(),
                    String::from_utf8_lossy(c)
                )));
            }
            // A directory a later layer writes into belongs to that layer too
            // (an opaque whiteout above must not hide it).
            n.layer = n.layer.max(layer);
            cur = next;
        }
        Ok((cur, comps[comps.len() - 1].clone()))
    }

    fn insert(&mut self, parent: NodeId, name: Vec<u8>, node: Node) -> NodeId {
        let id = self.tree.add(node);
        self.tree
            .get_mut(parent)
            .children_mut()
            .expect("dir")
            .insert(name, id);
        id
    }

    fn replace(&mut self, parent: NodeId, name: Vec<u8>, node: Node) -> NodeId {
        self.remove_child(parent, &name);
        self.insert(parent, name, node)
    }

    /// Removes a directory entry; returns whether there was one.
    pub(crate) fn remove_child(&mut self, parent: NodeId, name: &[u8]) -> bool {
        let Some(id) = self
            .tree
            .get_mut(parent)
            .children_mut()
            .and_then(|c| c.remove(name))
        else {
            return false;
        };
        let mut freed = Vec::new();
        self.tree.unlink_node(id, &mut freed);
        self.release(freed);
        true
    }

    /// Punches holes where freed data was, so the image stays sparse.
    pub(crate) fn release(&mut self, freed: Vec<Extent>) {
        use std::os::fd::AsRawFd;
        for e in &freed {
            // SAFETY: fallocate on our own open descriptor with in-range
            // offsets; failure only leaves stale (unreferenced) data behind.
            unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    (e.physical * BLOCK_SIZE) as libc::off_t,
                    (e.len * BLOCK_SIZE) as libc::off_t,
                );
            }
        }
        self.freed.extend(freed);
    }

    /// Reserves `n` contiguous blocks.
    pub(crate) fn alloc(&mut self, n: u64) -> Result<u64> {
        if self.next_block + n > self.geo.blocks {
            return Err(ContainerizationError::new(
                Code::InvalidArgument,
                format!(
                    "image {} is full ({} bytes); choose a larger size",
                    self.path.display(),
                    self.geo.blocks * BLOCK_SIZE
                ),
            ));
        }
        let b = self.next_block;
        self.next_block += n;
        Ok(b)
    }

    fn write_data(&mut self, path: &Path, data: &mut dyn Read) -> Result<(u64, Vec<Extent>)> {
        let bs = BLOCK_SIZE as usize;
        let mut size: u64 = 0;
        let mut extents: Vec<Extent> = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| -> Result<()> {
            loop {
                let n = read_full(data, &mut buf).context(
                    Code::InternalError,
                    format!("reading data of {}", path.display()),
                )?;
                if n == 0 {
                    break;
                }
                let first_logical = size / BLOCK_SIZE;
                if first_logical + (n as u64).div_ceil(BLOCK_SIZE) > (1 << 32) {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "{} is larger than the 16 TiB ext4 allows with 4 KiB blocks",
                        path.display()
                    )));
                }
                let nblocks = n.div_ceil(bs);
                let mut i = 0;
                while i < nblocks {
                    if is_zero(&buf[i * bs..((i + 1) * bs).min(n)]) {
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < nblocks && !is_zero(&buf[i * bs..((i + 1) * bs).min(n)]) {
                        i += 1;
                    }
                    let run = (i - start) as u64;
                    let phys = self.alloc(run)?;
                    let bytes = &buf[start * bs..(i * bs).min(n)];
                    self.file.write_all_at(bytes, phys * BLOCK_SIZE).context(
                        Code::InternalError,
                        format!("writing image {}", self.path.display()),
                    )?;
                    self.data_bytes += bytes.len() as u64;
                    push_extent(&mut extents, first_logical + start as u64, phys, run);
                }
                size += n as u64;
                if n < buf.len() {
                    break;
                }
            }
            Ok(())
        })();
        self.buf = buf;
        if let Err(e) = result {
            // Data already written for this file is unreferenced: give it back.
            self.release(extents);
            return Err(e);
        }
        Ok((size, extents))
    }
}

fn push_extent(extents: &mut Vec<Extent>, logical: u64, physical: u64, mut len: u64) {
    let (mut logical, mut physical) = (logical, physical);
    if let Some(last) = extents.last_mut()
        && last.logical + last.len == logical
        && last.physical + last.len == physical
    {
        let add = (MAX_EXTENT_LEN - last.len).min(len);
        last.len += add;
        logical += add;
        physical += add;
        len -= add;
    }
    while len > 0 {
        let l = len.min(MAX_EXTENT_LEN);
        extents.push(Extent {
            logical,
            physical,
            len: l,
        });
        logical += l;
        physical += l;
        len -= l;
    }
}

/// Reads until `buf` is full or the stream ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
