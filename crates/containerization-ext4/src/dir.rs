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

/// The ext4 directory hash we write: half-MD4 over unsigned chars, seeded
/// with the superblock's `s_hash_seed` (`s_def_hash_version = 1` and the
/// unsigned-hash flag), the default of mke2fs and what every reader knows.
pub(crate) fn half_md4_hash(name: &[u8], seed: &[u32; 4]) -> u32 {
    let mut buf: [u32; 4] = if seed.iter().any(|&x| x != 0) {
        *seed
    } else {
        [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
    };
    let mut p = name;
    let mut len = name.len() as i64;
    while len > 0 {
        let input = str2hashbuf(p, 8);
        half_md4_transform(&mut buf, &input);
        len -= 32;
        p = if p.len() > 32 { &p[32..] } else { &[] };
    }
    let mut hash = buf[1] & !1;
    if hash == 0x7fff_ffff << 1 {
        hash = 0x7fff_fffe << 1;
    }
    hash
}

fn str2hashbuf(msg: &[u8], num: usize) -> [u32; 8] {
    let mut out = [0u32; 8];
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = msg.len().min(num * 4);
    let mut k = 0usize;
    let mut remaining = num as i64;
    for (i, &c) in msg[..take].iter().enumerate() {
        val = (c as u32).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[k] = val;
            k += 1;
            val = pad;
            remaining -= 1;
        }
    }
    remaining -= 1;
    if remaining >= 0 {
        out[k] = val;
        k += 1;
    }
    while remaining > 0 {
        out[k] = pad;
        k += 1;
        remaining -= 1;
    }
    out
}

fn half_md4_transform(buf: &mut [u32; 4], x: &[u32; 8]) {
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a.wrapping_add($f($b, $c, $d)).wrapping_add($x);
            $a = $a.rotate_left($s);
        };
    }
    round!(f, a, b, c, d, x[0], 3);
    round!(f, d, a, b, c, x[1], 7);
    round!(f, c, d, a, b, x[2], 11);
    round!(f, b, c, d, a, x[3], 19);
    round!(f, a, b, c, d, x[4], 3);
    round!(f, d, a, b, c, x[5], 7);
    round!(f, c, d, a, b, x[6], 11);
    round!(f, b, c, d, a, x[7], 19);
    round!(g, a, b, c, d, x[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, x[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, x[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, x[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
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
    hash_seed: &[u32; 4],
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
    build_htree(&dot, &dotdot, entries, seed, hash_seed).map(|blocks| BuiltDir {
        blocks,
        indexed: true,
    })
}

fn build_htree(
    dot: &DirEntry,
    dotdot: &DirEntry,
    entries: &[DirEntry],
    seed: u32,
    hash_seed: &[u32; 4],
) -> Result<Vec<u8>, String> {
    let mut hashed: Vec<(u32, &DirEntry)> = entries
        .iter()
        .map(|e| (half_md4_hash(&e.name, hash_seed), e))
        .collect();
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
        root[28] = 1; // half-MD4
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
    fn half_md4_differs_by_name_and_seed() {
        let z = [0u32; 4];
        assert_ne!(half_md4_hash(b"a", &z), half_md4_hash(b"b", &z));
        assert_ne!(half_md4_hash(b"a", &z), half_md4_hash(b"a", &[1, 2, 3, 4]));
        assert_eq!(half_md4_hash(b"a", &z) & 1, 0);
    }

    #[test]
    fn small_dir_is_one_linear_block() {
        let e = vec![DirEntry {
            name: b"x".to_vec(),
            ino: 12,
            file_type: ft::REG,
        }];
        let d = build_dir(2, 2, &e, 0, &[0; 4], 1).unwrap();
        assert_eq!(d.blocks.len(), BS);
        assert!(!d.indexed);
    }
}
#[cfg(test)]
mod hash_vectors {
    #[test]
    fn matches_debugfs_dx_hash() {
        // debugfs -R "dx_hash -h half_md4 -s 01234567-89ab-cdef-0123-456789abcdef hello"
        let seed = [0x6745_2301, 0xefcd_ab89, 0x6745_2301, 0xefcd_ab89];
        assert_eq!(super::half_md4_hash(b"hello", &seed), 0xa26e_4a80);
        // debugfs -R "dx_hash -h half_md4 hello" (zero seed: default buffer)
        assert_eq!(super::half_md4_hash(b"hello", &[0; 4]), 0x1746_da32);
    }
}
