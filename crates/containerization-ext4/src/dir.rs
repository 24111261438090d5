//! Directory blocks: linear leaves with checksum tails, and hashed (htree)
//! indexes for directories that need more than one block.

use crate::crc::ext4_crc;
use crate::layout::{BLOCK_SIZE, ft, put16, put32};

const BS: usize = BLOCK_SIZE as usize;
/// Size of the fake directory entry that carries a leaf block's checksum.
const TAIL: usize = 12;
/// Usable bytes of a leaf block.
const LEAF_SPACE: usize = BS - TAIL;
/// Index entries in the root block (after `.`, `..` and the root info; one
/// slot is given up for the checksum tail).
const ROOT_LIMIT: usize = (BS - 32 - 8) / 8;
/// Index entries in an interior index block.
const NODE_LIMIT: usize = (BS - 8 - 8) / 8;

/// One entry to store in a directory.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u32,
    pub file_type: u8,
}

/// The built directory: its blocks in logical order and whether it is
/// hash-indexed.
pub(crate) struct BuiltDir {
    pub blocks: Vec<u8>,
    pub indexed: bool,
}

/// The legacy ext4 directory hash (`dx_hack_hash`, unsigned-char variant).
/// We write `s_def_hash_version = legacy` with the unsigned-hash flag.
pub(crate) fn legacy_hash(name: &[u8]) -> u32 {
    let (mut hash0, mut hash1): (u32, u32) = (0x12a3_fe2d, 0x37ab_e8f9);
    for &c in name {
        let mut hash = hash1.wrapping_add(hash0 ^ (c as u32).wrapping_mul(7_152_373));
        if hash & 0x8000_0000 != 0 {
            hash = hash.wrapping_sub(0x7fff_ffff);
        }
        hash1 = hash0;
        hash0 = hash;
    }
    hash0 << 1
}

fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

fn put_entry(b: &mut [u8], off: usize, e: &DirEntry, rec: usize) {
    put32(b, off, e.ino);
    put16(b, off + 4, rec as u16);
    b[off + 6] = e.name.len() as u8;
    b[off + 7] = e.file_type;
    b[off + 8..off + 8 + e.name.len()].copy_from_slice(&e.name);
}

/// Fills in the checksum tail of a leaf block.
fn seal_leaf(block: &mut [u8], seed: u32) {
    let t = BS - TAIL;
    put32(block, t, 0);
    put16(block, t + 4, TAIL as u16);
    block[t + 6] = 0;
    block[t + 7] = 0xDE;
    let csum = ext4_crc(seed, &block[..t]);
    put32(block, t + 8, csum);
}

/// Packs entries into leaf blocks, returning each block and the index of the
/// first entry it holds. `start_hint` is where the first block starts
/// (`.`/`..` already placed by the caller for linear directories).
fn pack_leaves(entries: &[DirEntry], first_block_used: usize) -> Vec<(Vec<u8>, usize)> {
    let mut out: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut block = vec![0u8; BS];
    let mut used = first_block_used;
    let mut last_off: Option<usize> = None;
    let mut first_idx = 0;
    for (i, e) in entries.iter().enumerate() {
        let rl = rec_len(e.name.len());
        if used + rl > LEAF_SPACE {
            close_block(&mut block, last_off, used);
            out.push((std::mem::replace(&mut block, vec![0u8; BS]), first_idx));
            used = 0;
            last_off = None;
            first_idx = i;
        }
        put_entry(&mut block, used, e, rl);
        last_off = Some(used);
        used += rl;
    }
    close_block(&mut block, last_off, used);
    out.push((block, first_idx));
    out
}

/// Stretches the last entry to the tail, or writes an empty entry spanning
/// the block when it holds none.
fn close_block(block: &mut [u8], last_off: Option<usize>, used: usize) {
    match last_off {
        Some(off) => put16(block, off + 4, (LEAF_SPACE - off) as u16),
        None => {
            debug_assert_eq!(used, 0);
            put32(block, 0, 0);
            put16(block, 4, LEAF_SPACE as u16);
        }
    }
}

/// Builds a directory's blocks. `entries` excludes `.` and `..`. `seed` is
/// the directory inode's checksum seed. `min_blocks` pads with empty blocks
/// (lost+found keeps spare blocks so fsck never has to allocate).
pub(crate) fn build_dir(
    ino: u32,
    parent: u32,
    entries: &[DirEntry],
    seed: u32,
    min_blocks: usize,
) -> Result<BuiltDir, String> {
    let dot = DirEntry {
        name: b".".to_vec(),
        ino,
        file_type: ft::DIR,
    };
    let dotdot = DirEntry {
        name: b"..".to_vec(),
        ino: parent,
        file_type: ft::DIR,
    };
    let linear_size: usize = 24 + entries.iter().map(|e| rec_len(e.name.len())).sum::<usize>();
    if linear_size <= LEAF_SPACE {
        let mut all = Vec::with_capacity(entries.len() + 2);
        all.push(dot);
        all.push(dotdot);
        all.extend_from_slice(entries);
        let mut blocks = Vec::new();
        for (mut b, _) in pack_leaves(&all, 0) {
            seal_leaf(&mut b, seed);
            blocks.extend_from_slice(&b);
        }
        while blocks.len() < min_blocks * BS {
            let mut b = vec![0u8; BS];
            close_block(&mut b, None, 0);
            seal_leaf(&mut b, seed);
            blocks.extend_from_slice(&b);
        }
        return Ok(BuiltDir {
            blocks,
            indexed: false,
        });
    }
    build_htree(&dot, &dotdot, entries, seed).map(|blocks| BuiltDir {
        blocks,
        indexed: true,
    })
}

fn build_htree(
    dot: &DirEntry,
    dotdot: &DirEntry,
    entries: &[DirEntry],
    seed: u32,
) -> Result<Vec<u8>, String> {
    let mut hashed: Vec<(u32, &DirEntry)> =
        entries.iter().map(|e| (legacy_hash(&e.name), e)).collect();
    hashed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let sorted: Vec<DirEntry> = hashed.iter().map(|(_, e)| (*e).clone()).collect();
    let leaves = pack_leaves(&sorted, 0);
    // Index keys: the hash of each leaf's first entry, with the low bit set
    // when a hash collision continues from the previous leaf.
    let mut keys: Vec<u32> = Vec::with_capacity(leaves.len());
    for (i, (_, first)) in leaves.iter().enumerate() {
        let h = hashed[*first].0;
        if i > 0 && *first > 0 && hashed[*first - 1].0 == h {
            keys.push(h | 1);
        } else {
            keys.push(h);
        }
    }
    let nleaves = leaves.len();
    let levels = if nleaves <= ROOT_LIMIT { 0 } else { 1 };
    let nnodes = if levels == 0 {
        0
    } else {
        nleaves.div_ceil(NODE_LIMIT)
    };
    if nnodes > ROOT_LIMIT {
        return Err(format!(
            "directory with {} entries is too large for a two-level index",
            entries.len()
        ));
    }
    // Logical layout: 0 = root, 1..=nleaves = leaves, then index nodes.
    let total = 1 + nleaves + nnodes;
    let mut out = vec![0u8; total * BS];
    for (i, (mut b, _)) in leaves.into_iter().enumerate() {
        seal_leaf(&mut b, seed);
        out[(1 + i) * BS..(2 + i) * BS].copy_from_slice(&b);
    }
    // Root block.
    {
        let root = &mut out[..BS];
        put_entry(root, 0, dot, 12);
        put_entry(root, 12, dotdot, BS - 12);
        // dx_root_info: reserved, hash version (legacy), info length, levels.
        put32(root, 24, 0);
        root[28] = 0;
        root[29] = 8;
        root[30] = levels as u8;
        root[31] = 0;
    }
    if levels == 0 {
        let refs: Vec<(u32, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, 1 + i as u32))
            .collect();
        write_index(&mut out[..BS], 32, ROOT_LIMIT, &refs, seed);
    } else {
        let mut root_refs = Vec::new();
        for n in 0..nnodes {
            let lo = n * NODE_LIMIT;
            let hi = (lo + NODE_LIMIT).min(nleaves);
            let refs: Vec<(u32, u32)> = (lo..hi).map(|i| (keys[i], 1 + i as u32)).collect();
            let lblk = 1 + nleaves + n;
            let node = &mut out[lblk * BS..(lblk + 1) * BS];
            put32(node, 0, 0);
            put16(node, 4, BS as u16);
            write_index(node, 8, NODE_LIMIT, &refs, seed);
            root_refs.push((keys[lo], lblk as u32));
        }
        write_index(&mut out[..BS], 32, ROOT_LIMIT, &root_refs, seed);
    }
    Ok(out)
}

/// Writes a dx entry array at `off` (count/limit header in the first slot,
/// whose hash is implied 0) and its checksum tail.
fn write_index(block: &mut [u8], off: usize, limit: usize, refs: &[(u32, u32)], seed: u32) {
    put16(block, off, limit as u16);
    put16(block, off + 2, refs.len() as u16);
    for (i, &(hash, lblk)) in refs.iter().enumerate() {
        let e = off + i * 8;
        if i > 0 {
            put32(block, e, hash);
        }
        put32(block, e + 4, lblk);
    }
    let tail = off + limit * 8;
    put32(block, tail, 0);
    let mut csum = ext4_crc(seed, &block[..off + refs.len() * 8]);
    csum = ext4_crc(csum, &block[tail..tail + 4]);
    csum = ext4_crc(csum, &[0u8; 4]);
    put32(block, tail + 4, csum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_hash_is_stable() {
        // Values fixed by the kernel's dx_hack_hash_unsigned.
        assert_eq!(legacy_hash(b""), 0x12a3_fe2d << 1);
        assert_ne!(legacy_hash(b"a"), legacy_hash(b"b"));
    }

    #[test]
    fn small_dir_is_one_linear_block() {
        let e = vec![DirEntry {
            name: b"x".to_vec(),
            ino: 12,
            file_type: ft::REG,
        }];
        let d = build_dir(2, 2, &e, 0, 1).unwrap();
        assert_eq!(d.blocks.len(), BS);
        assert!(!d.indexed);
    }
}
