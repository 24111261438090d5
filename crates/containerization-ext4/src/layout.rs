//! On-disk constants of the ext4 format this crate writes and reads.

/// Block size used by the formatter (4 KiB).
pub const BLOCK_SIZE: u64 = 4096;
/// Size of every inode record we write.
pub(crate) const INODE_SIZE: u64 = 256;
/// Blocks per group (one bitmap block of bits).
pub(crate) const BLOCKS_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// Group descriptor size with the 64bit feature.
pub(crate) const DESC_SIZE: u64 = 64;
/// `i_extra_isize` we write: covers the checksum high half, nanosecond
/// times, creation time, version and project id.
pub(crate) const EXTRA_ISIZE: u16 = 32;
/// Start of in-inode extended attributes (after the 128-byte base + extra).
pub(crate) const INLINE_XATTR_OFFSET: usize = 128 + EXTRA_ISIZE as usize;

/// ext4 superblock magic.
pub const SUPERBLOCK_MAGIC: u16 = 0xEF53;
/// Inode number of the root directory.
pub const ROOT_INODE: u32 = 2;
/// Inode number of the journal.
pub(crate) const JOURNAL_INODE: u32 = 8;
/// Inode number of `lost+found` in images we write.
pub const LOST_AND_FOUND_INODE: u32 = 11;
/// First inode number not reserved by the format.
pub(crate) const FIRST_INODE: u32 = 11;

pub(crate) const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub(crate) const COMPAT_EXT_ATTR: u32 = 0x8;
pub(crate) const COMPAT_DIR_INDEX: u32 = 0x20;
pub(crate) const COMPAT_SPARSE_SUPER2: u32 = 0x200;

pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
pub(crate) const INCOMPAT_EXTENTS: u32 = 0x40;
pub(crate) const INCOMPAT_64BIT: u32 = 0x80;
pub(crate) const INCOMPAT_FLEX_BG: u32 = 0x200;

pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub(crate) const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub(crate) const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub(crate) const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// Inode flag: the inode uses extents.
pub(crate) const EXTENTS_FL: u32 = 0x80000;
/// Inode flag: the directory has a hashed index.
pub(crate) const INDEX_FL: u32 = 0x1000;

/// Group descriptor flag: the inode table is zeroed.
pub(crate) const BG_INODE_ZEROED: u16 = 0x4;

/// Extent header magic.
pub(crate) const EXTENT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent.
pub(crate) const MAX_EXTENT_LEN: u64 = 32768;
/// Extent (or index) entries in one tree block.
pub(crate) const EXTENTS_PER_BLOCK: usize = ((BLOCK_SIZE as usize) - 12) / 12;

/// Extended attribute block / in-inode header magic.
pub(crate) const XATTR_MAGIC: u32 = 0xEA02_0000;

/// Longest name in a directory entry.
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target stored inside the inode.
pub(crate) const FAST_SYMLINK_MAX: usize = 59;
/// Link count above which a directory's count is pinned to 1 (dir_nlink).
pub(crate) const DIR_NLINK_MAX: u32 = 65000;

/// File-type codes of directory entries.
pub(crate) mod ft {
    pub const REG: u8 = 1;
    pub const DIR: u8 = 2;
    pub const CHR: u8 = 3;
    pub const BLK: u8 = 4;
    pub const FIFO: u8 = 5;
    pub const SOCK: u8 = 6;
    pub const LNK: u8 = 7;
}

/// `S_IF*` type bits of `i_mode`.
pub(crate) mod mode {
    pub const IFMT: u16 = 0o170000;
    pub const IFSOCK: u16 = 0o140000;
    pub const IFLNK: u16 = 0o120000;
    pub const IFREG: u16 = 0o100000;
    pub const IFBLK: u16 = 0o060000;
    pub const IFDIR: u16 = 0o040000;
    pub const IFCHR: u16 = 0o020000;
    pub const IFIFO: u16 = 0o010000;
}

/// Little-endian field helpers over byte buffers.
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
/// Reads a little-endian u16; the caller guarantees `off + 2 <= b.len()`.
pub(crate) fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
/// Reads a little-endian u32; the caller guarantees `off + 4 <= b.len()`.
pub(crate) fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
