//! `Formatter::close`: numbers the inodes, writes directories, extent trees,
//! attribute blocks, inode tables, bitmaps, group descriptors, the journal
//! and the superblock.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::crc::{ext4_crc, fs_seed, inode_seed};
use crate::dir::{DirEntry, build_dir};
use crate::extent;
use crate::formatter::{FormatStats, Formatter, JournalMode};
use crate::inode::{InodeFields, encode, seal};
use crate::layout::*;
use crate::metadata::Metadata;
use crate::tree::{Extent, Kind, NodeId};
use crate::xattr;

const BS: usize = BLOCK_SIZE as usize;

fn file_type(kind: &Kind) -> u8 {
    match kind {
        Kind::File { .. } => ft::REG,
        Kind::Dir { .. } => ft::DIR,
        Kind::Symlink { .. } => ft::LNK,
        Kind::CharDev { .. } => ft::CHR,
        Kind::BlockDev { .. } => ft::BLK,
        Kind::Fifo => ft::FIFO,
        Kind::Socket => ft::SOCK,
    }
}

fn mode_type(kind: &Kind) -> u16 {
    match kind {
        Kind::File { .. } => mode::IFREG,
        Kind::Dir { .. } => mode::IFDIR,
        Kind::Symlink { .. } => mode::IFLNK,
        Kind::CharDev { .. } => mode::IFCHR,
        Kind::BlockDev { .. } => mode::IFBLK,
        Kind::Fifo => mode::IFIFO,
        Kind::Socket => mode::IFSOCK,
    }
}

/// Per-group tallies gathered while writing inodes.
#[derive(Default, Clone, Copy)]
struct GroupStat {
    used_inodes: u64,
    /// Highest used inode index in the group plus one.
    itable_used: u64,
    dirs: u64,
}

impl Formatter {
    /// Writes all metadata and finishes the image. Nothing is visible as a
    /// valid filesystem until this returns.
    pub fn close(mut self) -> Result<FormatStats> {
        self.ensure_lost_found()?;
        let order = self.number_inodes()?;
        let seed = fs_seed(&self.uuid);
        let geo = self.geo;
        let ipg = geo.inodes_per_group;
        let mut stats = vec![GroupStat::default(); geo.groups as usize];
        // Reserved inodes 1..=10 are in use (all zero except the journal).
        stats[0].used_inodes = (FIRST_INODE - 1) as u64;
        stats[0].itable_used = (FIRST_INODE - 1) as u64;
        let mut table = vec![0u8; (ipg * INODE_SIZE) as usize];
        let mut cur_group: u64 = 0;
        if let Some((start, n)) = self.journal {
            let rec = self.journal_inode(start, n, seed)?;
            let off = ((JOURNAL_INODE - 1) as u64 * INODE_SIZE) as usize;
            table[off..off + INODE_SIZE as usize].copy_from_slice(&rec);
        }
        for &(ino, id) in &order {
            let g = (ino as u64 - 1) / ipg;
            if g != cur_group {
                self.write_table(cur_group, &table, stats[cur_group as usize].itable_used)?;
                table.fill(0);
                cur_group = g;
            }
            let idx = (ino as u64 - 1) % ipg;
            let off = (idx * INODE_SIZE) as usize;
            let rec = self.inode_record(ino, id, seed)?;
            table[off..off + INODE_SIZE as usize].copy_from_slice(&rec);
            let st = &mut stats[g as usize];
            if ino >= FIRST_INODE {
                st.used_inodes += 1;
            }
            st.itable_used = st.itable_used.max(idx + 1);
            if self.tree.get(id).is_dir() {
                st.dirs += 1;
            }
        }
        self.write_table(cur_group, &table, stats[cur_group as usize].itable_used)?;
        self.write_group_metadata(&stats, seed)?;
        if let Some((start, n)) = self.journal {
            self.write_journal_superblock(start, n)?;
        }
        self.file.sync_all().context(
            Code::InternalError,
            format!("syncing image {}", self.path.display()),
        )?;
        let freed: u64 = self.freed.iter().map(|e| e.len).sum();
        Ok(FormatStats {
            inodes: order.len() as u64,
            data_bytes: self.data_bytes,
            used_blocks: self.next_block - freed,
        })
    }

    fn ensure_lost_found(&mut self) -> Result<()> {
        let root = self.root;
        let ok = self
            .child(root, b"lost+found")
            .map(|id| self.tree.get(id).is_dir())
            .unwrap_or(false);
        if !ok {
            let t = self.created;
            self.create_dir("/lost+found", Metadata::with_mode(0o700).at(t))?;
        }
        Ok(())
    }

    /// Numbers inodes breadth-first (root 2, lost+found 11, then from 12) so
    /// that a directory's entries sit close together. Returns (ino, node)
    /// in ascending inode order.
    fn number_inodes(&mut self) -> Result<Vec<(u32, NodeId)>> {
        let mut ino_of = vec![0u32; self.tree.inodes.len()];
        let lf = self
            .child(self.root, b"lost+found")
            .expect("lost+found exists");
        ino_of[self.root] = ROOT_INODE;
        ino_of[lf] = LOST_AND_FOUND_INODE;
        let mut order = vec![(ROOT_INODE, self.root), (LOST_AND_FOUND_INODE, lf)];
        let mut next = FIRST_INODE + 1;
        let mut queue = VecDeque::from([self.root]);
        while let Some(d) = queue.pop_front() {
            let children: Vec<NodeId> = self
                .tree
                .get(d)
                .children()
                .map(|c| c.values().copied().collect())
                .unwrap_or_default();
            for c in children {
                if ino_of[c] == 0 {
                    if next as u64 > self.geo.inodes() {
                        return Err(ContainerizationError::invalid_argument(format!(
                            "image {} has room for {} inodes but the tree has more; choose a larger size",
                            self.path.display(),
                            self.geo.inodes()
                        )));
                    }
                    ino_of[c] = next;
                    order.push((next, c));
                    next += 1;
                }
                if self.tree.get(c).is_dir() && c != lf {
                    queue.push_back(c);
                }
            }
        }
        self.ino_of = ino_of;
        Ok(order)
    }

    fn write_at(&self, buf: &[u8], block: u64) -> Result<()> {
        self.file.write_all_at(buf, block * BLOCK_SIZE).context(
            Code::InternalError,
            format!("writing image {}", self.path.display()),
        )
    }

    fn write_table(&self, group: u64, table: &[u8], used: u64) -> Result<()> {
        if used == 0 {
            return Ok(());
        }
        let bytes = (used * INODE_SIZE).next_multiple_of(BLOCK_SIZE) as usize;
        let block = self.geo.inode_tables + group * self.geo.itable_blocks_per_group;
        self.write_at(&table[..bytes], block)
    }

    /// Builds the record of inode `ino` (node `id`), writing its directory
    /// blocks, extent tree blocks and attribute block on the way.
    fn inode_record(
        &mut self,
        ino: u32,
        id: NodeId,
        seed: u32,
    ) -> Result<[u8; INODE_SIZE as usize]> {
        let iseed = inode_seed(seed, ino, 0);
        let node = self.tree.get(id).clone();
        let mut f = InodeFields {
            mode_type: mode_type(&node.kind),
            links: 1,
            size: 0,
            sectors: 0,
            flags: 0,
            i_block: [0u8; 60],
            file_acl: 0,
        };
        let mut data_extents: Option<Vec<Extent>> = None;
        match &node.kind {
            Kind::File { size, extents } => {
                f.size = *size;
                data_extents = Some(extents.clone());
            }
            Kind::Dir { children, parent } => {
                let mut entries = Vec::with_capacity(children.len());
                let mut subdirs: u32 = 0;
                for (name, &c) in children {
                    let cn = self.tree.get(c);
                    if cn.is_dir() {
                        subdirs += 1;
                    }
                    entries.push(DirEntry {
                        name: name.clone(),
                        ino: self.ino_of[c],
                        file_type: file_type(&cn.kind),
                    });
                }
                let parent_ino = self.ino_of[*parent];
                let min_blocks = if ino == LOST_AND_FOUND_INODE { 4 } else { 1 };
                let built = build_dir(
                    ino,
                    parent_ino,
                    &entries,
                    iseed,
                    &self.hash_seed(),
                    min_blocks,
                )
                .map_err(ContainerizationError::invalid_argument)?;
                let n = (built.blocks.len() / BS) as u64;
                let start = self.alloc(n)?;
                self.write_at(&built.blocks, start)?;
                let mut ex = Vec::new();
                let mut done = 0;
                while done < n {
                    let l = (n - done).min(MAX_EXTENT_LEN);
                    ex.push(Extent {
                        logical: done,
                        physical: start + done,
                        len: l,
                    });
                    done += l;
                }
                f.size = n * BLOCK_SIZE;
                if built.indexed {
                    f.flags |= INDEX_FL;
                }
                let links = 2 + subdirs;
                f.links = if links > DIR_NLINK_MAX {
                    1
                } else {
                    links as u16
                };
                data_extents = Some(ex);
            }
            Kind::Symlink { target } => {
                f.size = target.len() as u64;
                if target.len() <= FAST_SYMLINK_MAX {
                    f.i_block[..target.len()].copy_from_slice(target);
                } else {
                    let b = self.alloc(1)?;
                    let mut blk = vec![0u8; BS];
                    blk[..target.len()].copy_from_slice(target);
                    self.write_at(&blk, b)?;
                    data_extents = Some(vec![Extent {
                        logical: 0,
                        physical: b,
                        len: 1,
                    }]);
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                if *major < 256 && *minor < 256 {
                    put32(&mut f.i_block, 0, (major << 8) | minor);
                } else {
                    let enc = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                    put32(&mut f.i_block, 4, enc);
                }
            }
            Kind::Fifo | Kind::Socket => {}
        }
        if !node.is_dir() {
            if node.links > DIR_NLINK_MAX {
                return Err(ContainerizationError::invalid_argument(format!(
                    "an inode has {} hard links; ext4 allows {DIR_NLINK_MAX}",
                    node.links
                )));
            }
            f.links = node.links as u16;
        }
        if let Some(ex) = data_extents {
            let data_blocks: u64 = ex.iter().map(|e| e.len).sum();
            let nt = extent::tree_blocks(ex.len()) as u64;
            let tree_start = if nt > 0 { self.alloc(nt)? } else { 0 };
            let alloc: Vec<u64> = (0..nt).map(|i| tree_start + i).collect();
            let built = extent::build(&ex, &alloc, iseed);
            for (b, content) in &built.blocks {
                self.write_at(content, *b)?;
            }
            f.i_block = built.root;
            f.flags |= EXTENTS_FL;
            f.sectors = (data_blocks + nt) * (BLOCK_SIZE / 512);
        }
        let attrs = xattr::encode_attrs(&node.meta.xattrs)
            .map_err(ContainerizationError::invalid_argument)?;
        let mut rec = [0u8; INODE_SIZE as usize];
        let inline = xattr::fits_inline(&attrs);
        if !attrs.is_empty() && !inline {
            if !xattr::fits_block(&attrs) {
                return Err(ContainerizationError::invalid_argument(format!(
                    "extended attributes of inode {ino} need more than one 4 KiB block"
                )));
            }
            let b = self.alloc(1)?;
            self.write_at(&xattr::build_block(&attrs, b, seed), b)?;
            f.file_acl = b;
            f.sectors += BLOCK_SIZE / 512;
        }
        encode(&f, &node.meta, &mut rec);
        if inline {
            xattr::write_inline(&mut rec, &attrs);
        }
        seal(ino, &mut rec, seed);
        Ok(rec)
    }

    fn journal_inode(
        &mut self,
        start: u64,
        n: u64,
        seed: u32,
    ) -> Result<[u8; INODE_SIZE as usize]> {
        let mut ex = Vec::new();
        let mut done = 0;
        while done < n {
            let l = (n - done).min(MAX_EXTENT_LEN);
            ex.push(Extent {
                logical: done,
                physical: start + done,
                len: l,
            });
            done += l;
        }
        let iseed = inode_seed(seed, JOURNAL_INODE, 0);
        let nt = extent::tree_blocks(ex.len()) as u64;
        let tree_start = if nt > 0 { self.alloc(nt)? } else { 0 };
        let alloc: Vec<u64> = (0..nt).map(|i| tree_start + i).collect();
        let built = extent::build(&ex, &alloc, iseed);
        for (b, content) in &built.blocks {
            self.write_at(content, *b)?;
        }
        self.journal_iblock = built.root;
        let f = InodeFields {
            mode_type: mode::IFREG,
            links: 1,
            size: n * BLOCK_SIZE,
            sectors: (n + nt) * (BLOCK_SIZE / 512),
            flags: EXTENTS_FL,
            i_block: built.root,
            file_acl: 0,
        };
        let meta = Metadata::with_mode(0o600).at(self.created);
        let mut rec = [0u8; INODE_SIZE as usize];
        encode(&f, &meta, &mut rec);
        seal(JOURNAL_INODE, &mut rec, seed);
        Ok(rec)
    }

    fn write_journal_superblock(&self, start: u64, n: u64) -> Result<()> {
        let mut b = vec![0u8; BS];
        let be32 =
            |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
        be32(&mut b, 0x0, 0xC03B_3998);
        be32(&mut b, 0x4, 4); // superblock v2
        be32(&mut b, 0x8, 0);
        be32(&mut b, 0xC, BLOCK_SIZE as u32);
        be32(&mut b, 0x10, n as u32);
        be32(&mut b, 0x14, 1); // first log block
        be32(&mut b, 0x18, 1); // sequence
        be32(&mut b, 0x1C, 0); // start: 0 = clean
        b[0x30..0x40].copy_from_slice(&self.uuid);
        be32(&mut b, 0x40, 1); // nr_users
        self.write_at(&b, start)
    }

    /// Writes block and inode bitmaps, group descriptors and the superblock.
    fn write_group_metadata(&self, stats: &[GroupStat], seed: u32) -> Result<()> {
        let geo = self.geo;
        let ipg = geo.inodes_per_group;
        let mut freed = self.freed.clone();
        freed.sort_by_key(|e| e.physical);
        let mut gdt = vec![0u8; (geo.gdt_blocks * BLOCK_SIZE) as usize];
        let mut free_blocks_total = 0u64;
        let mut free_inodes_total = 0u64;
        let mut fi = 0usize;
        for g in 0..geo.groups {
            let gstart = g * BLOCKS_PER_GROUP;
            let gblocks = geo.blocks_in_group(g);
            // Block bitmap: everything below the allocator cursor is used,
            // except freed extents; bits past the end of the disk are set.
            let mut bb = vec![0u8; BS];
            let used_end = self.next_block.clamp(gstart, gstart + gblocks) - gstart;
            set_bits(&mut bb, 0, used_end);
            while fi < freed.len() && freed[fi].physical + freed[fi].len <= gstart {
                fi += 1;
            }
            let mut k = fi;
            while k < freed.len() && freed[k].physical < gstart + gblocks {
                let s = freed[k].physical.max(gstart) - gstart;
                let e = (freed[k].physical + freed[k].len).min(gstart + gblocks) - gstart;
                clear_bits(&mut bb, s, e);
                k += 1;
            }
            let used = count_bits(&bb, gblocks);
            set_bits(&mut bb, gblocks, BLOCKS_PER_GROUP);
            let free_b = gblocks - used;
            free_blocks_total += free_b;
            // Inode bitmap: used inodes are a prefix of each group's table.
            let mut ib = vec![0u8; BS];
            let st = stats[g as usize];
            set_bits(&mut ib, 0, st.itable_used);
            set_bits(&mut ib, ipg, BLOCKS_PER_GROUP);
            let free_i = ipg - st.used_inodes;
            free_inodes_total += free_i;
            let bb_csum = ext4_crc(seed, &bb[..(BLOCKS_PER_GROUP / 8) as usize]);
            let ib_csum = ext4_crc(seed, &ib[..(ipg / 8) as usize]);
            if bb.iter().any(|&x| x != 0) {
                self.write_at(&bb, geo.block_bitmaps + g)?;
            }
            if ib.iter().any(|&x| x != 0) {
                self.write_at(&ib, geo.inode_bitmaps + g)?;
            }
            let d = &mut gdt[(g * DESC_SIZE) as usize..((g + 1) * DESC_SIZE) as usize];
            let bbl = geo.block_bitmaps + g;
            let ibl = geo.inode_bitmaps + g;
            let itl = geo.inode_tables + g * geo.itable_blocks_per_group;
            put32(d, 0x00, bbl as u32);
            put32(d, 0x04, ibl as u32);
            put32(d, 0x08, itl as u32);
            put16(d, 0x0C, free_b as u16);
            put16(d, 0x0E, free_i as u16);
            put16(d, 0x10, st.dirs as u16);
            put16(d, 0x12, BG_INODE_ZEROED);
            put16(d, 0x18, bb_csum as u16);
            put16(d, 0x1A, ib_csum as u16);
            put16(d, 0x1C, (ipg - st.itable_used) as u16);
            put32(d, 0x20, (bbl >> 32) as u32);
            put32(d, 0x24, (ibl >> 32) as u32);
            put32(d, 0x28, (itl >> 32) as u32);
            put16(d, 0x2C, (free_b >> 16) as u16);
            put16(d, 0x2E, (free_i >> 16) as u16);
            put16(d, 0x30, (st.dirs >> 16) as u16);
            put16(d, 0x32, ((ipg - st.itable_used) >> 16) as u16);
            put16(d, 0x38, (bb_csum >> 16) as u16);
            put16(d, 0x3A, (ib_csum >> 16) as u16);
            let mut c = ext4_crc(seed, &(g as u32).to_le_bytes());
            c = ext4_crc(c, &d[..0x1E]);
            c = ext4_crc(c, &[0, 0]);
            c = ext4_crc(c, &d[0x20..]);
            put16(d, 0x1E, c as u16);
        }
        self.write_at(&gdt, 1)?;
        let sb = self.superblock(free_blocks_total, free_inodes_total);
        self.file.write_all_at(&sb, 1024).context(
            Code::InternalError,
            format!("writing superblock of {}", self.path.display()),
        )
    }

    fn superblock(&self, free_blocks: u64, free_inodes: u64) -> Vec<u8> {
        let geo = self.geo;
        let mut s = vec![0u8; 1024];
        let now = self.created.secs;
        put32(&mut s, 0x00, geo.inodes() as u32);
        put32(&mut s, 0x04, geo.blocks as u32);
        put32(&mut s, 0x0C, free_blocks as u32);
        put32(&mut s, 0x10, free_inodes as u32);
        put32(&mut s, 0x14, 0);
        put32(&mut s, 0x18, 2);
        put32(&mut s, 0x1C, 2);
        put32(&mut s, 0x20, BLOCKS_PER_GROUP as u32);
        put32(&mut s, 0x24, BLOCKS_PER_GROUP as u32);
        put32(&mut s, 0x28, geo.inodes_per_group as u32);
        put32(&mut s, 0x30, now as u32);
        put16(&mut s, 0x36, 0xFFFF);
        put16(&mut s, 0x38, SUPERBLOCK_MAGIC);
        put16(&mut s, 0x3A, 1);
        put16(&mut s, 0x3C, 1);
        put32(&mut s, 0x40, now as u32);
        put32(&mut s, 0x4C, 1);
        put32(&mut s, 0x54, FIRST_INODE);
        put16(&mut s, 0x58, INODE_SIZE as u16);
        let mut compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX | COMPAT_SPARSE_SUPER2;
        if self.journal.is_some() {
            compat |= COMPAT_HAS_JOURNAL;
        }
        put32(&mut s, 0x5C, compat);
        put32(
            &mut s,
            0x60,
            INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG,
        );
        put32(
            &mut s,
            0x64,
            RO_COMPAT_SPARSE_SUPER
                | RO_COMPAT_LARGE_FILE
                | RO_COMPAT_HUGE_FILE
                | RO_COMPAT_DIR_NLINK
                | RO_COMPAT_EXTRA_ISIZE
                | RO_COMPAT_METADATA_CSUM,
        );
        s[0x68..0x78].copy_from_slice(&self.uuid);
        let label = self.opts.label.as_bytes();
        s[0x78..0x78 + label.len()].copy_from_slice(label);
        if self.journal.is_some() {
            put32(&mut s, 0xE0, JOURNAL_INODE);
        }
        for (i, w) in self.hash_seed().iter().enumerate() {
            put32(&mut s, 0xEC + i * 4, *w);
        }
        s[0xFC] = 1; // half-MD4
        if self.journal.is_some() {
            s[0xFD] = 1; // s_jnl_blocks holds a copy of the journal inode's i_block
        }
        put16(&mut s, 0xFE, DESC_SIZE as u16);
        let jmode = match self.opts.journal.map(|j| j.mode) {
            Some(JournalMode::Journal) => 0x20,
            Some(JournalMode::Writeback) => 0x60,
            Some(JournalMode::Ordered) | None => 0x40,
        };
        put32(
            &mut s,
            0x100,
            0x0C | if self.journal.is_some() { jmode } else { 0 },
        );
        put32(&mut s, 0x108, now as u32);
        if let Some((_, n)) = self.journal {
            s[0x10C..0x10C + 60].copy_from_slice(&self.journal_iblock);
            put32(&mut s, 0x10C + 60, 0);
            put32(&mut s, 0x10C + 64, (n * BLOCK_SIZE) as u32);
        }
        put32(&mut s, 0x150, (geo.blocks >> 32) as u32);
        put32(&mut s, 0x158, (free_blocks >> 32) as u32);
        put16(&mut s, 0x15C, EXTRA_ISIZE);
        put16(&mut s, 0x15E, EXTRA_ISIZE);
        put32(&mut s, 0x160, 0x2); // unsigned directory hash
        let flex = (64 - (geo.groups.max(2) - 1).leading_zeros()).max(4);
        s[0x174] = flex as u8;
        s[0x175] = 1; // crc32c
        s[0x274] = (now >> 32) as u8;
        s[0x275] = (now >> 32) as u8;
        s[0x276] = (now >> 32) as u8;
        s[0x277] = (now >> 32) as u8;
        let c = ext4_crc(!0, &s[..0x3FC]);
        put32(&mut s, 0x3FC, c);
        s
    }
}

impl Formatter {
    /// Directory hash seed, derived from the UUID so that images are
    /// reproducible when the UUID is given.
    fn hash_seed(&self) -> [u32; 4] {
        let mut seed = [0u32; 4];
        for (i, w) in seed.iter_mut().enumerate() {
            *w = ext4_crc(0x5eed_0000 + i as u32, &self.uuid);
        }
        seed
    }
}

fn set_bits(b: &mut [u8], from: u64, to: u64) {
    let mut i = from;
    while i < to {
        if i.is_multiple_of(8) && i + 8 <= to {
            b[(i / 8) as usize] = 0xFF;
            i += 8;
        } else {
            b[(i / 8) as usize] |= 1 << (i % 8);
            i += 1;
        }
    }
}

fn clear_bits(b: &mut [u8], from: u64, to: u64) {
    for i in from..to {
        b[(i / 8) as usize] &= !(1 << (i % 8));
    }
}

fn count_bits(b: &[u8], n: u64) -> u64 {
    let full = (n / 8) as usize;
    let mut c: u64 = b[..full].iter().map(|x| x.count_ones() as u64).sum();
    for i in (full as u64 * 8)..n {
        c += ((b[(i / 8) as usize] >> (i % 8)) & 1) as u64;
    }
    c
}
