//! Extended attributes: name prefixes, in-inode and block encodings, and the
//! conversion of POSIX ACLs from the VFS (tar) form to ext4's on-disk form.

use std::collections::BTreeMap;

use crate::crc::ext4_crc;
use crate::layout::{
    BLOCK_SIZE, INLINE_XATTR_OFFSET, INODE_SIZE, XATTR_MAGIC, get16, get32, put16, put32,
};

const PREFIXES: &[(u8, &str)] = &[
    (2, "system.posix_acl_access"),
    (3, "system.posix_acl_default"),
    (1, "user."),
    (4, "trusted."),
    (6, "security."),
    (7, "system."),
];

/// Splits a full attribute name into (name index, suffix).
pub(crate) fn split_name(name: &str) -> Option<(u8, &str)> {
    for &(idx, prefix) in PREFIXES {
        if idx == 2 || idx == 3 {
            if name == prefix {
                return Some((idx, ""));
            }
        } else if let Some(rest) = name.strip_prefix(prefix)
            && !rest.is_empty()
            && rest.len() <= 255
        {
            return Some((idx, rest));
        }
    }
    None
}

/// Joins a name index and suffix back into the full name.
pub(crate) fn join_name(index: u8, suffix: &[u8]) -> Option<String> {
    let prefix = PREFIXES.iter().find(|(i, _)| *i == index)?.1;
    let suffix = std::str::from_utf8(suffix).ok()?;
    Some(format!("{prefix}{suffix}"))
}

/// Converts a VFS-format POSIX ACL (version 2, 8-byte entries) to ext4's
/// on-disk format (version 1, 4-byte entries for the owner/group/mask/other
/// tags). Returns `None` when the value is malformed.
pub(crate) fn acl_to_disk(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) || get32(v, 0) != 2 {
        return None;
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks_exact(8) {
        let tag = get16(e, 0);
        out.extend_from_slice(&e[0..4]);
        match tag {
            0x02 | 0x08 => out.extend_from_slice(&e[4..8]),
            0x01 | 0x04 | 0x10 | 0x20 => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Converts an ext4 on-disk POSIX ACL back to the VFS format.
pub(crate) fn acl_from_disk(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < 4 || get32(v, 0) != 1 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut i = 4;
    while i < v.len() {
        if i + 4 > v.len() {
            return None;
        }
        let tag = get16(v, i);
        out.extend_from_slice(&v[i..i + 4]);
        match tag {
            0x02 | 0x08 => {
                if i + 8 > v.len() {
                    return None;
                }
                out.extend_from_slice(&v[i + 4..i + 8]);
                i += 8;
            }
            _ => {
                out.extend_from_slice(&u32::MAX.to_le_bytes());
                i += 4;
            }
        }
    }
    Some(out)
}

/// One attribute in encoded form.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Encodes a full-name map into sorted attributes (the order the kernel's
/// block lookup expects). Unknown namespaces are an error.
pub(crate) fn encode_attrs(xattrs: &BTreeMap<String, Vec<u8>>) -> Result<Vec<Attr>, String> {
    let mut out = Vec::new();
    for (k, v) in xattrs {
        let (index, suffix) =
            split_name(k).ok_or_else(|| format!("unsupported extended attribute name {k:?}"))?;
        let value = if index == 2 || index == 3 {
            acl_to_disk(v).ok_or_else(|| format!("malformed POSIX ACL in {k}"))?
        } else {
            v.clone()
        };
        out.push(Attr {
            index,
            name: suffix.as_bytes().to_vec(),
            value,
        });
    }
    out.sort_by(|a, b| {
        a.index
            .cmp(&b.index)
            .then(a.name.len().cmp(&b.name.len()))
            .then(a.name.cmp(&b.name))
    });
    Ok(out)
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn entries_size(attrs: &[Attr]) -> usize {
    attrs.iter().map(|a| 16 + pad4(a.name.len())).sum::<usize>() + 4
}

fn values_size(attrs: &[Attr]) -> usize {
    attrs.iter().map(|a| pad4(a.value.len())).sum()
}

/// Space available for attributes inside a 256-byte inode.
pub(crate) const INLINE_SPACE: usize = INODE_SIZE as usize - INLINE_XATTR_OFFSET - 4;

/// Whether `attrs` fit in the inode.
pub(crate) fn fits_inline(attrs: &[Attr]) -> bool {
    entries_size(attrs) + values_size(attrs) <= INLINE_SPACE
}

/// Whether `attrs` fit in one block.
pub(crate) fn fits_block(attrs: &[Attr]) -> bool {
    entries_size(attrs) + values_size(attrs) <= BLOCK_SIZE as usize - 32
}

fn entry_hash(a: &Attr) -> u32 {
    let mut h: u32 = 0;
    for &c in &a.name {
        // e2fsprogs and the kernel historically hash names as signed chars.
        h = (h << 5) ^ (h >> 27) ^ (c as i8 as i32 as u32);
    }
    let mut padded = a.value.clone();
    padded.resize(pad4(a.value.len()), 0);
    for w in padded.chunks_exact(4) {
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    }
    h
}

/// Writes entries at `area[0..]` and values from `area.len()` down; value
/// offsets are relative to `area` (in-inode) or to the block start, which the
/// caller achieves by passing the whole block with `entries_at = 32`.
fn write_entries(area: &mut [u8], entries_at: usize, attrs: &[Attr]) -> Vec<u32> {
    let mut off = entries_at;
    let mut vend = area.len();
    let mut hashes = Vec::new();
    for a in attrs {
        vend -= pad4(a.value.len());
        area[vend..vend + a.value.len()].copy_from_slice(&a.value);
        let h = entry_hash(a);
        hashes.push(h);
        area[off] = a.name.len() as u8;
        area[off + 1] = a.index;
        put16(
            area,
            off + 2,
            if a.value.is_empty() { 0 } else { vend as u16 },
        );
        put32(area, off + 4, 0);
        put32(area, off + 8, a.value.len() as u32);
        put32(area, off + 12, h);
        area[off + 16..off + 16 + a.name.len()].copy_from_slice(&a.name);
        off += 16 + pad4(a.name.len());
    }
    hashes
}

/// Writes the in-inode attribute area (`inode[INLINE_XATTR_OFFSET..]`).
pub(crate) fn write_inline(inode: &mut [u8], attrs: &[Attr]) {
    if attrs.is_empty() {
        return;
    }
    put32(inode, INLINE_XATTR_OFFSET, XATTR_MAGIC);
    write_entries(&mut inode[INLINE_XATTR_OFFSET + 4..], 0, attrs);
}

/// Builds an attribute block stored at physical block `blk`.
pub(crate) fn build_block(attrs: &[Attr], blk: u64, fs_seed: u32) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    put32(&mut b, 0, XATTR_MAGIC);
    put32(&mut b, 4, 1); // refcount
    put32(&mut b, 8, 1); // blocks
    let hashes = write_entries(&mut b, 32, attrs);
    let mut h: u32 = 0;
    for eh in hashes {
        h = (h << 16) ^ (h >> 16) ^ eh;
    }
    put32(&mut b, 12, h);
    let mut c = ext4_crc(fs_seed, &blk.to_le_bytes());
    c = ext4_crc(c, &b);
    put32(&mut b, 16, c);
    b
}

/// Parses attribute entries starting at `area[start..]`, with value offsets
/// relative to `area[base..]`. Malformed entries end the walk with an error.
pub(crate) fn parse_entries(
    area: &[u8],
    start: usize,
    base: usize,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let mut off = start;
    loop {
        if off + 4 > area.len() {
            return Err("extended attribute list runs past its area".into());
        }
        if get32(area, off) == 0 {
            return Ok(());
        }
        if off + 16 > area.len() {
            return Err("extended attribute entry runs past its area".into());
        }
        let name_len = area[off] as usize;
        let index = area[off + 1];
        let voff = get16(area, off + 2) as usize;
        let inum = get32(area, off + 4);
        let vsize = get32(area, off + 8) as usize;
        if inum != 0 {
            return Err("extended attribute stored in an inode is not supported".into());
        }
        let name_end = off + 16 + name_len;
        if name_end > area.len() {
            return Err("extended attribute name runs past its area".into());
        }
        let vstart = base.checked_add(voff).ok_or("bad value offset")?;
        let vend = vstart.checked_add(vsize).ok_or("bad value size")?;
        if vend > area.len() {
            return Err("extended attribute value runs past its area".into());
        }
        let name = join_name(index, &area[off + 16..name_end])
            .ok_or("unknown extended attribute namespace")?;
        let mut value = area[vstart..vend].to_vec();
        if index == 2 || index == 3 {
            value = acl_from_disk(&value).ok_or("malformed POSIX ACL")?;
        }
        out.insert(name, value);
        off += 16 + pad4(name_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_join() {
        assert_eq!(split_name("security.capability"), Some((6, "capability")));
        assert_eq!(split_name("system.posix_acl_access"), Some((2, "")));
        assert_eq!(split_name("bogus.x"), None);
        assert_eq!(join_name(1, b"foo").as_deref(), Some("user.foo"));
    }

    #[test]
    fn inline_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("user.a".to_string(), b"hello".to_vec());
        m.insert(
            "security.capability".to_string(),
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        );
        let attrs = encode_attrs(&m).unwrap();
        assert!(fits_inline(&attrs));
        let mut inode = vec![0u8; 256];
        write_inline(&mut inode, &attrs);
        let mut back = BTreeMap::new();
        parse_entries(&inode[INLINE_XATTR_OFFSET + 4..], 0, 0, &mut back).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn acl_round_trip() {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, u32::MAX),
            (2, 5, 1000),
            (4, 5, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        let d = acl_to_disk(&v).unwrap();
        assert_eq!(acl_from_disk(&d).unwrap(), v);
    }
}
