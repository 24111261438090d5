//! Where everything goes in an image of a given size. All group metadata
//! (bitmaps, inode tables) is packed at the start (one flex group), so data
//! and directories fill the rest contiguously.

use crate::layout::{BLOCK_SIZE, BLOCKS_PER_GROUP, DESC_SIZE, INODE_SIZE};

/// The fixed layout of a filesystem.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub blocks: u64,
    pub groups: u64,
    pub inodes_per_group: u64,
    pub gdt_blocks: u64,
    pub block_bitmaps: u64,
    pub inode_bitmaps: u64,
    pub inode_tables: u64,
    pub itable_blocks_per_group: u64,
    /// First block after the group metadata.
    pub data_start: u64,
}

impl Geometry {
    /// Lays out a filesystem of `size_bytes` with about one inode per
    /// `bytes_per_inode` (at least `min_inodes`). Returns a message when the
    /// size cannot hold a filesystem.
    pub fn new(size_bytes: u64, bytes_per_inode: u64, min_inodes: u64) -> Result<Geometry, String> {
        let blocks = size_bytes / BLOCK_SIZE;
        if blocks < 32 {
            return Err(format!(
                "image size {size_bytes} bytes is too small for ext4 (at least 128 KiB)"
            ));
        }
        if blocks >= 1 << 32 {
            return Err(format!(
                "image size {size_bytes} bytes exceeds the 16 TiB this formatter supports"
            ));
        }
        let groups = blocks.div_ceil(BLOCKS_PER_GROUP);
        let per_inode_blocks = (bytes_per_inode.max(BLOCK_SIZE)) / BLOCK_SIZE;
        let wanted = (blocks / per_inode_blocks).max(min_inodes).max(64);
        let per_table_block = BLOCK_SIZE / INODE_SIZE;
        let ipg = wanted
            .div_ceil(groups)
            .next_multiple_of(per_table_block)
            .min(BLOCK_SIZE * 8);
        let itb = ipg * INODE_SIZE / BLOCK_SIZE;
        let gdt_blocks = (groups * DESC_SIZE).div_ceil(BLOCK_SIZE);
        let block_bitmaps = 1 + gdt_blocks;
        let inode_bitmaps = block_bitmaps + groups;
        let inode_tables = inode_bitmaps + groups;
        let data_start = inode_tables + groups * itb;
        if data_start + 16 > blocks {
            return Err(format!(
                "image size {size_bytes} bytes leaves no room for data after the inode tables"
            ));
        }
        Ok(Geometry {
            blocks,
            groups,
            inodes_per_group: ipg,
            gdt_blocks,
            block_bitmaps,
            inode_bitmaps,
            inode_tables,
            itable_blocks_per_group: itb,
            data_start,
        })
    }

    /// Total number of inodes.
    pub fn inodes(&self) -> u64 {
        self.groups * self.inodes_per_group
    }

    /// Number of blocks in group `g` (the last may be short).
    pub fn blocks_in_group(&self, g: u64) -> u64 {
        (self.blocks - g * BLOCKS_PER_GROUP).min(BLOCKS_PER_GROUP)
    }
}
