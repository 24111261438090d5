//! Encoding of the 256-byte inode record.

use crate::crc::ext4_crc;
use crate::layout::{EXTRA_ISIZE, INODE_SIZE, put16, put32};
use crate::metadata::Metadata;

/// Fields of an inode other than its metadata.
pub(crate) struct InodeFields {
    pub mode_type: u16,
    pub links: u16,
    pub size: u64,
    /// Allocated size in 512-byte sectors.
    pub sectors: u64,
    pub flags: u32,
    pub i_block: [u8; 60],
    pub file_acl: u64,
}

/// Encodes an inode and seals its checksum.
pub(crate) fn encode(f: &InodeFields, meta: &Metadata, out: &mut [u8]) {
    debug_assert_eq!(out.len(), INODE_SIZE as usize);
    out.fill(0);
    put16(out, 0x00, f.mode_type | (meta.mode & 0o7777));
    put16(out, 0x02, meta.uid as u16);
    put32(out, 0x04, f.size as u32);
    let (a, ax) = meta.atime.encode();
    let (c, cx) = meta.ctime.encode();
    let (m, mx) = meta.mtime.encode();
    let (cr, crx) = meta.crtime.encode();
    put32(out, 0x08, a);
    put32(out, 0x0C, c);
    put32(out, 0x10, m);
    put16(out, 0x18, meta.gid as u16);
    put16(out, 0x1A, f.links);
    put32(out, 0x1C, f.sectors as u32);
    put32(out, 0x20, f.flags);
    out[0x28..0x64].copy_from_slice(&f.i_block);
    put32(out, 0x68, f.file_acl as u32);
    put32(out, 0x6C, (f.size >> 32) as u32);
    put16(out, 0x74, (f.sectors >> 32) as u16);
    put16(out, 0x76, (f.file_acl >> 32) as u16);
    put16(out, 0x78, (meta.uid >> 16) as u16);
    put16(out, 0x7A, (meta.gid >> 16) as u16);
    put16(out, 0x80, EXTRA_ISIZE);
    put32(out, 0x84, cx);
    put32(out, 0x88, mx);
    put32(out, 0x8C, ax);
    put32(out, 0x90, cr);
    put32(out, 0x94, crx);
}

/// Computes and stores the inode checksum (fields 0x7C and 0x82 zero while
/// summing).
pub(crate) fn seal(ino: u32, out: &mut [u8], fs_seed: u32) {
    put16(out, 0x7C, 0);
    put16(out, 0x82, 0);
    let generation = u32::from_le_bytes([out[0x64], out[0x65], out[0x66], out[0x67]]);
    let seed = crate::crc::inode_seed(fs_seed, ino, generation);
    let c = ext4_crc(seed, out);
    put16(out, 0x7C, c as u16);
    put16(out, 0x82, (c >> 16) as u16);
}
