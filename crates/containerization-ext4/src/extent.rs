//! Extent trees: up to four extents live in the inode; more need leaf and
//! index blocks, whose numbers the caller allocates.

use crate::crc::ext4_crc;
use crate::layout::{BLOCK_SIZE, EXTENT_MAGIC, EXTENTS_PER_BLOCK, put16, put32};
use crate::tree::Extent;

const BS: usize = BLOCK_SIZE as usize;

/// The extent tree of one inode, ready to write.
pub(crate) struct BuiltTree {
    /// The 60 bytes of `i_block`.
    pub root: [u8; 60],
    /// Tree blocks as (physical block, contents).
    pub blocks: Vec<(u64, Vec<u8>)>,
}

fn header(b: &mut [u8], entries: usize, max: usize, depth: u16) {
    put16(b, 0, EXTENT_MAGIC);
    put16(b, 2, entries as u16);
    put16(b, 4, max as u16);
    put16(b, 6, depth);
    put32(b, 8, 0);
}

fn leaf_entry(b: &mut [u8], off: usize, e: &Extent) {
    put32(b, off, e.logical as u32);
    put16(b, off + 4, e.len as u16);
    put16(b, off + 6, (e.physical >> 32) as u16);
    put32(b, off + 8, e.physical as u32);
}

fn index_entry(b: &mut [u8], off: usize, logical: u64, child: u64) {
    put32(b, off, logical as u32);
    put32(b, off + 4, child as u32);
    put16(b, off + 8, (child >> 32) as u16);
    put16(b, off + 10, 0);
}

/// Seals a tree block with its checksum tail.
fn seal(b: &mut [u8], seed: u32) {
    let tail = 12 + EXTENTS_PER_BLOCK * 12;
    let c = ext4_crc(seed, &b[..tail]);
    put32(b, tail, c);
}

/// Number of tree blocks `n` extents need.
pub(crate) fn tree_blocks(n: usize) -> usize {
    if n <= 4 {
        return 0;
    }
    let mut total = 0;
    let mut level = n;
    while level > 4 {
        level = level.div_ceil(EXTENTS_PER_BLOCK);
        total += level;
    }
    total
}

/// Builds the tree for `extents` (sorted by logical block), placing its
/// blocks at `alloc` (exactly [`tree_blocks`] numbers).
pub(crate) fn build(extents: &[Extent], alloc: &[u64], seed: u32) -> BuiltTree {
    let mut root = [0u8; 60];
    if extents.len() <= 4 {
        header(&mut root, extents.len(), 4, 0);
        for (i, e) in extents.iter().enumerate() {
            leaf_entry(&mut root, 12 + i * 12, e);
        }
        return BuiltTree {
            root,
            blocks: Vec::new(),
        };
    }
    let mut next = alloc.iter().copied();
    let mut blocks = Vec::new();
    // (first logical block, physical block) of each node of the level built.
    let mut level: Vec<(u64, u64)> = Vec::new();
    for chunk in extents.chunks(EXTENTS_PER_BLOCK) {
        let mut b = vec![0u8; BS];
        header(&mut b, chunk.len(), EXTENTS_PER_BLOCK, 0);
        for (i, e) in chunk.iter().enumerate() {
            leaf_entry(&mut b, 12 + i * 12, e);
        }
        seal(&mut b, seed);
        let p = next.next().expect("allocated tree block");
        level.push((chunk[0].logical, p));
        blocks.push((p, b));
    }
    let mut depth: u16 = 1;
    while level.len() > 4 {
        let mut upper = Vec::new();
        for chunk in level.chunks(EXTENTS_PER_BLOCK) {
            let mut b = vec![0u8; BS];
            header(&mut b, chunk.len(), EXTENTS_PER_BLOCK, depth);
            for (i, &(l, p)) in chunk.iter().enumerate() {
                index_entry(&mut b, 12 + i * 12, l, p);
            }
            seal(&mut b, seed);
            let p = next.next().expect("allocated tree block");
            upper.push((chunk[0].0, p));
            blocks.push((p, b));
        }
        level = upper;
        depth += 1;
    }
    header(&mut root, level.len(), 4, depth);
    for (i, &(l, p)) in level.iter().enumerate() {
        index_entry(&mut root, 12 + i * 12, l, p);
    }
    BuiltTree { root, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_counts() {
        assert_eq!(tree_blocks(4), 0);
        assert_eq!(tree_blocks(5), 1);
        assert_eq!(tree_blocks(340 * 4), 4);
        assert_eq!(tree_blocks(340 * 4 + 1), 6);
    }
}
