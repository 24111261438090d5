//! `Ext4`: a read-only view of an ext4 image. Every length and block number
//! read from the image is checked against the image itself, so a corrupt or
//! hostile image gives an error, never a panic, a hang or a huge allocation.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::layout::{EXTENT_MAGIC, SUPERBLOCK_MAGIC, XATTR_MAGIC, get16, get32, mode};
use crate::metadata::Timestamp;
use crate::xattr::parse_entries;

const MAX_DEPTH: u16 = 5;
const MAX_EXTENTS: usize = 1 << 20;
const MAX_SYMLINK_HOPS: usize = 40;

fn corrupt(msg: impl Into<String>) -> ContainerizationError {
    ContainerizationError::invalid_argument(format!("corrupt ext4 image: {}", msg.into()))
}

/// Summary of the superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperblockInfo {
    /// Block size in bytes.
    pub block_size: u64,
    /// Total blocks.
    pub blocks_count: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Total inodes.
    pub inodes_count: u32,
    /// Free inodes.
    pub free_inodes: u32,
    /// Inodes per block group.
    pub inodes_per_group: u32,
    /// Size of an inode record.
    pub inode_size: u16,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Volume label.
    pub label: String,
    /// Compatible feature bits.
    pub feature_compat: u32,
    /// Incompatible feature bits.
    pub feature_incompat: u32,
    /// Read-only-compatible feature bits.
    pub feature_ro_compat: u32,
}

/// Type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// FIFO.
    Fifo,
    /// Unix socket.
    Socket,
}

/// Status of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Inode number.
    pub ino: u32,
    /// Entry type.
    pub file_type: FileType,
    /// Permission bits incl. setuid/setgid/sticky.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Link count.
    pub nlink: u16,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// Device number (major, minor) of device nodes.
    pub rdev: (u32, u32),
    /// Allocated 512-byte sectors.
    pub sectors: u64,
    /// Inode flags.
    pub flags: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryInfo {
    /// Entry name (any bytes but `/` and NUL).
    pub name: OsString,
    /// Inode number.
    pub ino: u32,
    /// Type from the directory entry.
    pub file_type: Option<FileType>,
}

/// A mapped run of a file: `len` blocks at `physical` from file block `logical`.
#[derive(Debug, Clone, Copy)]
struct Run {
    logical: u64,
    physical: u64,
    len: u64,
    initialized: bool,
}

/// A decoded inode.
#[derive(Debug, Clone)]
struct Inode {
    ino: u32,
    raw: Vec<u8>,
    stat: Stat,
}

/// A read-only ext4 image.
#[derive(Debug)]
pub struct Ext4 {
    file: File,
    len: u64,
    sb: SuperblockInfo,
    inode_tables: Vec<u64>,
}

impl Ext4 {
    /// Opens an image file (or block device) and validates its superblock.
    pub fn open(path: impl AsRef<Path>) -> Result<Ext4> {
        let path = path.as_ref();
        let file = File::open(path).context(
            Code::NotFound,
            format!("opening ext4 image {}", path.display()),
        )?;
        let mut len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            // Block devices report 0; ask for the end instead.
            use std::io::Seek;
            len = (&file).seek(std::io::SeekFrom::End(0)).unwrap_or(0);
        }
        let mut s = vec![0u8; 1024];
        read_exact_at(&file, len, &mut s, 1024)?;
        if get16(&s, 0x38) != SUPERBLOCK_MAGIC {
            return Err(corrupt("bad superblock magic"));
        }
        let log = get32(&s, 0x18);
        if log > 6 {
            return Err(corrupt("block size out of range"));
        }
        let bs = 1024u64 << log;
        let incompat = get32(&s, 0x60);
        let is64 = incompat & 0x80 != 0;
        let blocks_count = get32(&s, 0x04) as u64
            | if is64 {
                (get32(&s, 0x150) as u64) << 32
            } else {
                0
            };
        let free_blocks = get32(&s, 0x0C) as u64
            | if is64 {
                (get32(&s, 0x158) as u64) << 32
            } else {
                0
            };
        let bpg = get32(&s, 0x20) as u64;
        let ipg = get32(&s, 0x28);
        let rev = get32(&s, 0x4C);
        let inode_size = if rev == 0 { 128 } else { get16(&s, 0x58) };
        let first_data_block = get32(&s, 0x14) as u64;
        if bpg == 0 || bpg > bs * 8 || ipg == 0 || ipg as u64 > bs * 8 {
            return Err(corrupt("group sizes out of range"));
        }
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size as u64 > bs {
            return Err(corrupt("inode size out of range"));
        }
        if blocks_count <= first_data_block
            || blocks_count.saturating_mul(bs) > len.saturating_add(bs)
        {
            return Err(corrupt(format!(
                "superblock claims {blocks_count} blocks of {bs} bytes but the image has {len} bytes"
            )));
        }
        let desc_size = if is64 { get16(&s, 0xFE) as u64 } else { 32 };
        if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(corrupt("group descriptor size out of range"));
        }
        let groups = (blocks_count - first_data_block).div_ceil(bpg);
        let inodes_count = get32(&s, 0x00);
        if (groups as u128) * (ipg as u128) < inodes_count as u128 {
            return Err(corrupt("inode count exceeds the groups' capacity"));
        }
        let gdt_bytes = groups * desc_size;
        if gdt_bytes > len {
            return Err(corrupt("group descriptor table larger than the image"));
        }
        let gdt_at = (first_data_block + 1) * bs;
        let mut gdt = vec![0u8; gdt_bytes as usize];
        read_exact_at(&file, len, &mut gdt, gdt_at)?;
        let mut inode_tables = Vec::with_capacity(groups as usize);
        for g in 0..groups as usize {
            let d = &gdt[g * desc_size as usize..];
            let lo = get32(d, 0x08) as u64;
            let hi = if desc_size >= 64 {
                get32(d, 0x28) as u64
            } else {
                0
            };
            inode_tables.push(lo | (hi << 32));
        }
        let label_raw = &s[0x78..0x88];
        let label_end = label_raw.iter().position(|&b| b == 0).unwrap_or(16);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&s[0x68..0x78]);
        let sb = SuperblockInfo {
            block_size: bs,
            blocks_count,
            free_blocks,
            inodes_count,
            free_inodes: get32(&s, 0x10),
            inodes_per_group: ipg,
            inode_size,
            uuid,
            label: String::from_utf8_lossy(&label_raw[..label_end]).into_owned(),
            feature_compat: get32(&s, 0x5C),
            feature_incompat: incompat,
            feature_ro_compat: get32(&s, 0x64),
        };
        Ok(Ext4 {
            file,
            len,
            sb,
            inode_tables,
        })
    }

    /// The superblock summary.
    pub fn superblock(&self) -> &SuperblockInfo {
        &self.sb
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.sb.block_size
    }

    /// Status of `path` (a final symlink is not followed).
    pub fn stat(&self, path: impl AsRef<Path>) -> Result<Stat> {
        Ok(self.resolve(path.as_ref(), false)?.stat)
    }

    /// Status of inode `ino`.
    pub fn stat_inode(&self, ino: u32) -> Result<Stat> {
        Ok(self.inode(ino)?.stat)
    }

    /// Entries of the directory at `path`, without `.` and `..`.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<DirEntryInfo>> {
        let ino = self.resolve(path.as_ref(), true)?;
        self.dir_entries(&ino)
    }

    /// Entries of directory inode `ino`, without `.` and `..`.
    pub fn read_dir_inode(&self, ino: u32) -> Result<Vec<DirEntryInfo>> {
        let inode = self.inode(ino)?;
        self.dir_entries(&inode)
    }

    /// The whole contents of the regular file at `path` (symlinks followed).
    /// Files larger than the image itself must be read with [`Ext4::open_file`].
    pub fn read_file(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = path.as_ref();
        let mut r = self.open_file(path)?;
        if r.size > self.len {
            return Err(ContainerizationError::invalid_argument(format!(
                "{} is {} bytes, larger than the image; read it as a stream",
                path.display(),
                r.size
            )));
        }
        let mut out = Vec::with_capacity(r.size as usize);
        r.read_to_end(&mut out)
            .context(Code::InvalidArgument, format!("reading {}", path.display()))?;
        Ok(out)
    }

    /// A streaming reader of the regular file at `path` (symlinks followed);
    /// holes read as zeros.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<FileReader<'_>> {
        let path = path.as_ref();
        let inode = self.resolve(path, true)?;
        if inode.stat.file_type != FileType::File {
            return Err(ContainerizationError::invalid_argument(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let runs = self.runs(&inode)?;
        Ok(FileReader {
            fs: self,
            runs,
            size: inode.stat.size,
            pos: 0,
        })
    }

    /// A streaming reader of regular file inode `ino`.
    pub fn open_file_inode(&self, ino: u32) -> Result<FileReader<'_>> {
        let inode = self.inode(ino)?;
        if inode.stat.file_type != FileType::File {
            return Err(ContainerizationError::invalid_argument(format!(
                "inode {ino} is not a regular file"
            )));
        }
        let runs = self.runs(&inode)?;
        Ok(FileReader {
            fs: self,
            runs,
            size: inode.stat.size,
            pos: 0,
        })
    }

    /// Target of symbolic link inode `ino`.
    pub fn read_link_inode(&self, ino: u32) -> Result<PathBuf> {
        let inode = self.inode(ino)?;
        if inode.stat.file_type != FileType::Symlink {
            return Err(ContainerizationError::invalid_argument(format!(
                "inode {ino} is not a symbolic link"
            )));
        }
        Ok(PathBuf::from(OsString::from_vec(self.link_target(&inode)?)))
    }

    /// Target of the symbolic link at `path`.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let inode = self.resolve(path, false)?;
        if inode.stat.file_type != FileType::Symlink {
            return Err(ContainerizationError::invalid_argument(format!(
                "{} is not a symbolic link",
                path.display()
            )));
        }
        Ok(PathBuf::from(OsString::from_vec(self.link_target(&inode)?)))
    }

    /// Extended attributes of `path` (a final symlink is not followed).
    pub fn xattrs(&self, path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<u8>>> {
        let inode = self.resolve(path.as_ref(), false)?;
        self.inode_xattrs(&inode)
    }

    /// Extended attributes of inode `ino`.
    pub fn xattrs_inode(&self, ino: u32) -> Result<BTreeMap<String, Vec<u8>>> {
        let inode = self.inode(ino)?;
        self.inode_xattrs(&inode)
    }

    // ----- internals -----

    fn read_block_into(&self, block: u64, buf: &mut [u8]) -> Result<()> {
        if block >= self.sb.blocks_count {
            return Err(corrupt(format!(
                "block {block} beyond the end of the filesystem"
            )));
        }
        read_exact_at(&self.file, self.len, buf, block * self.sb.block_size)
    }

    fn read_block(&self, block: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; self.sb.block_size as usize];
        self.read_block_into(block, &mut b)?;
        Ok(b)
    }

    fn inode(&self, ino: u32) -> Result<Inode> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(corrupt(format!("inode number {ino} out of range")));
        }
        let ipg = self.sb.inodes_per_group as u64;
        let g = (ino as u64 - 1) / ipg;
        let idx = (ino as u64 - 1) % ipg;
        let table = *self
            .inode_tables
            .get(g as usize)
            .ok_or_else(|| corrupt("inode group out of range"))?;
        let isz = self.sb.inode_size as u64;
        let off = table
            .checked_mul(self.sb.block_size)
            .and_then(|b| b.checked_add(idx * isz))
            .ok_or_else(|| corrupt("inode table offset overflows"))?;
        let mut raw = vec![0u8; isz as usize];
        read_exact_at(&self.file, self.len, &mut raw, off)?;
        let stat = decode_stat(ino, &raw, self.sb.feature_ro_compat & 0x8 != 0);
        Ok(Inode { ino, raw, stat })
    }

    /// Resolves `path` from the root, following intermediate symlinks (and
    /// the last one when `follow_last`), never leaving the image root.
    fn resolve(&self, path: &Path, follow_last: bool) -> Result<Inode> {
        let mut stack: Vec<u32> = vec![crate::layout::ROOT_INODE];
        let mut pending: Vec<Vec<u8>> = path
            .as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .rev()
            .map(|c| c.to_vec())
            .collect();
        let mut hops = 0;
        let mut cur = self.inode(crate::layout::ROOT_INODE)?;
        while let Some(name) = pending.pop() {
            if name == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                cur = self.inode(*stack.last().expect("root stays"))?;
                continue;
            }
            if cur.stat.file_type != FileType::Dir {
                return Err(ContainerizationError::not_found(format!(
                    "{}: a component is not a directory",
                    path.display()
                )));
            }
            let ino = self
                .dir_entries(&cur)?
                .into_iter()
                .find(|e| e.name.as_bytes() == name.as_slice())
                .map(|e| e.ino)
                .ok_or_else(|| {
                    ContainerizationError::not_found(format!(
                        "{} not found in the image",
                        path.display()
                    ))
                })?;
            let next = self.inode(ino)?;
            let is_last = pending.is_empty();
            if next.stat.file_type == FileType::Symlink && (!is_last || follow_last) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "{}: too many levels of symbolic links",
                        path.display()
                    )));
                }
                let target = self.link_target(&next)?;
                if target.starts_with(b"/") {
                    stack.truncate(1);
                    cur = self.inode(crate::layout::ROOT_INODE)?;
                }
                for c in target
                    .split(|&b| b == b'/')
                    .filter(|c| !c.is_empty() && *c != b".")
                    .rev()
                {
                    pending.push(c.to_vec());
                }
                continue;
            }
            stack.push(ino);
            cur = next;
        }
        Ok(cur)
    }

    fn runs(&self, inode: &Inode) -> Result<Vec<Run>> {
        let flags = inode.stat.flags;
        if flags & crate::layout::EXTENTS_FL == 0 {
            if inode.stat.size == 0 || inode.stat.file_type == FileType::Symlink {
                return Ok(Vec::new());
            }
            return Err(ContainerizationError::unsupported(format!(
                "inode {} uses block maps; only extent-mapped files are supported",
                inode.ino
            )));
        }
        let mut runs = Vec::new();
        let mut budget = (self.sb.blocks_count).min(1 << 20);
        self.walk_extents(
            &inode.raw[0x28..0x64],
            MAX_DEPTH + 1,
            &mut runs,
            &mut budget,
        )?;
        runs.sort_by_key(|r| r.logical);
        for w in runs.windows(2) {
            if w[0].logical + w[0].len > w[1].logical {
                return Err(corrupt(format!(
                    "overlapping extents in inode {}",
                    inode.ino
                )));
            }
        }
        Ok(runs)
    }

    fn walk_extents(
        &self,
        node: &[u8],
        max_depth: u16,
        out: &mut Vec<Run>,
        budget: &mut u64,
    ) -> Result<()> {
        if node.len() < 12 || get16(node, 0) != EXTENT_MAGIC {
            return Err(corrupt("bad extent header"));
        }
        let entries = get16(node, 2) as usize;
        let max = get16(node, 4) as usize;
        let depth = get16(node, 6);
        if entries > max || 12 + max * 12 > node.len() || depth >= max_depth {
            return Err(corrupt("extent header out of range"));
        }
        for i in 0..entries {
            let e = &node[12 + i * 12..24 + i * 12];
            if depth == 0 {
                let raw_len = get16(e, 4) as u64;
                let (len, initialized) = if raw_len > 32768 {
                    (raw_len - 32768, false)
                } else {
                    (raw_len, true)
                };
                let physical = ((get16(e, 6) as u64) << 32) | get32(e, 8) as u64;
                if physical.saturating_add(len) > self.sb.blocks_count {
                    return Err(corrupt("extent beyond the end of the filesystem"));
                }
                if out.len() >= MAX_EXTENTS {
                    return Err(corrupt("too many extents"));
                }
                out.push(Run {
                    logical: get32(e, 0) as u64,
                    physical,
                    len,
                    initialized,
                });
            } else {
                if *budget == 0 {
                    return Err(corrupt("extent tree too large"));
                }
                *budget -= 1;
                let child = ((get16(e, 8) as u64) << 32) | get32(e, 4) as u64;
                let b = self.read_block(child)?;
                self.walk_extents(&b, depth, out, budget)?;
            }
        }
        Ok(())
    }

    fn dir_entries(&self, inode: &Inode) -> Result<Vec<DirEntryInfo>> {
        if inode.stat.file_type != FileType::Dir {
            return Err(ContainerizationError::invalid_argument(format!(
                "inode {} is not a directory",
                inode.ino
            )));
        }
        if inode.stat.size > self.len {
            return Err(corrupt(format!(
                "directory inode {} is larger than the image",
                inode.ino
            )));
        }
        let bs = self.sb.block_size;
        let runs = self.runs(inode)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; bs as usize];
        let nblocks = inode.stat.size.div_ceil(bs);
        for r in runs {
            if !r.initialized {
                continue;
            }
            for k in 0..r.len {
                if r.logical + k >= nblocks {
                    break;
                }
                self.read_block_into(r.physical + k, &mut buf)?;
                parse_dir_block(&buf, &mut out)?;
            }
        }
        Ok(out)
    }

    fn link_target(&self, inode: &Inode) -> Result<Vec<u8>> {
        let size = inode.stat.size;
        if size == 0 || size >= self.sb.block_size.max(4096) {
            return Err(corrupt(format!(
                "symlink inode {} has size {size}",
                inode.ino
            )));
        }
        if inode.stat.flags & crate::layout::EXTENTS_FL == 0 && size < 60 {
            return Ok(inode.raw[0x28..0x28 + size as usize].to_vec());
        }
        let runs = self.runs(inode)?;
        let r = runs
            .first()
            .ok_or_else(|| corrupt("slow symlink without data"))?;
        let b = self.read_block(r.physical)?;
        Ok(b[..size as usize].to_vec())
    }

    fn inode_xattrs(&self, inode: &Inode) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let raw = &inode.raw;
        if raw.len() > 128 {
            let extra = get16(raw, 0x80) as usize;
            let start = 128 + extra;
            if extra.is_multiple_of(4) && start + 4 <= raw.len() && get32(raw, start) == XATTR_MAGIC
            {
                parse_entries(&raw[start + 4..], 0, 0, &mut out).map_err(corrupt)?;
            }
        }
        let acl = get32(raw, 0x68) as u64 | ((get16(raw, 0x76) as u64) << 32);
        if acl != 0 {
            let b = self.read_block(acl)?;
            if get32(&b, 0) != XATTR_MAGIC || get32(&b, 8) != 1 {
                return Err(corrupt(format!(
                    "bad extended attribute block of inode {}",
                    inode.ino
                )));
            }
            parse_entries(&b, 32, 0, &mut out).map_err(corrupt)?;
        }
        Ok(out)
    }
}

fn parse_dir_block(b: &[u8], out: &mut Vec<DirEntryInfo>) -> Result<()> {
    let mut off = 0usize;
    while off + 8 <= b.len() {
        let ino = get32(b, off);
        let rec = get16(b, off + 4) as usize;
        let name_len = b[off + 6] as usize;
        let ft = b[off + 7];
        if rec < 8 || off + rec > b.len() || (ino != 0 && 8 + name_len > rec) {
            return Err(corrupt("directory entry out of range"));
        }
        if ino != 0 {
            let name = &b[off + 8..off + 8 + name_len];
            if name != b"." && name != b".." {
                out.push(DirEntryInfo {
                    name: OsString::from_vec(name.to_vec()),
                    ino,
                    file_type: match ft {
                        1 => Some(FileType::File),
                        2 => Some(FileType::Dir),
                        3 => Some(FileType::CharDevice),
                        4 => Some(FileType::BlockDevice),
                        5 => Some(FileType::Fifo),
                        6 => Some(FileType::Socket),
                        7 => Some(FileType::Symlink),
                        _ => None,
                    },
                });
            }
        }
        off += rec;
    }
    Ok(())
}

fn decode_stat(ino: u32, raw: &[u8], huge: bool) -> Stat {
    let m = get16(raw, 0);
    let file_type = match m & mode::IFMT {
        mode::IFDIR => FileType::Dir,
        mode::IFLNK => FileType::Symlink,
        mode::IFCHR => FileType::CharDevice,
        mode::IFBLK => FileType::BlockDevice,
        mode::IFIFO => FileType::Fifo,
        mode::IFSOCK => FileType::Socket,
        _ => FileType::File,
    };
    let extra = if raw.len() > 0x82 {
        get16(raw, 0x80) as usize
    } else {
        0
    };
    let has = |end: usize| raw.len() >= end && 128 + extra >= end;
    let ex = |off: usize| if has(off + 4) { get32(raw, off) } else { 0 };
    let flags = get32(raw, 0x20);
    let mut sectors = get32(raw, 0x1C) as u64;
    if huge {
        sectors |= (get16(raw, 0x74) as u64) << 32;
    }
    let rdev = if matches!(file_type, FileType::CharDevice | FileType::BlockDevice) {
        let old = get32(raw, 0x28);
        if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            let n = get32(raw, 0x2C);
            ((n & 0xfff00) >> 8, (n & 0xff) | ((n >> 12) & 0xfff00))
        }
    } else {
        (0, 0)
    };
    Stat {
        ino,
        file_type,
        mode: m & 0o7777,
        uid: get16(raw, 0x02) as u32 | ((get16(raw, 0x78) as u32) << 16),
        gid: get16(raw, 0x18) as u32 | ((get16(raw, 0x7A) as u32) << 16),
        size: get32(raw, 0x04) as u64 | ((get32(raw, 0x6C) as u64) << 32),
        nlink: get16(raw, 0x1A),
        atime: Timestamp::decode(get32(raw, 0x08), ex(0x8C)),
        ctime: Timestamp::decode(get32(raw, 0x0C), ex(0x84)),
        mtime: Timestamp::decode(get32(raw, 0x10), ex(0x88)),
        crtime: if has(0x98) {
            Timestamp::decode(get32(raw, 0x90), ex(0x94))
        } else {
            Timestamp::default()
        },
        rdev,
        sectors,
        flags,
    }
}

fn read_exact_at(file: &File, len: u64, buf: &mut [u8], off: u64) -> Result<()> {
    if off
        .checked_add(buf.len() as u64)
        .is_none_or(|end| end > len)
    {
        return Err(corrupt(format!(
            "read of {} bytes at {off} past the end of the image",
            buf.len()
        )));
    }
    file.read_exact_at(buf, off)
        .context(Code::InternalError, "reading ext4 image")
}

/// Streams a regular file's contents; holes and unwritten extents read as
/// zeros.
#[derive(Debug)]
pub struct FileReader<'a> {
    fs: &'a Ext4,
    runs: Vec<Run>,
    size: u64,
    pos: u64,
}

impl FileReader<'_> {
    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl std::io::Seek for FileReader<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new = new.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        self.pos = new;
        Ok(new)
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.fs.sb.block_size;
        let lblk = self.pos / bs;
        let in_blk = self.pos % bs;
        let want = (buf.len() as u64).min(self.size - self.pos);
        // Find the run containing lblk, or the next run after it.
        let i = self.runs.partition_point(|r| r.logical + r.len <= lblk);
        let n = match self.runs.get(i) {
            Some(r) if r.logical <= lblk => {
                let avail = (r.logical + r.len - lblk) * bs - in_blk;
                let n = want.min(avail) as usize;
                if r.initialized {
                    let off = (r.physical + (lblk - r.logical)) * bs + in_blk;
                    read_exact_at(&self.fs.file, self.fs.len, &mut buf[..n], off)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                } else {
                    buf[..n].fill(0);
                }
                n
            }
            next => {
                let hole_end = next.map(|r| r.logical * bs).unwrap_or(u64::MAX);
                let n = want.min(hole_end - self.pos) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}
