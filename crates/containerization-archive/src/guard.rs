//! `HeaderGuard`: refuses tar metadata members (GNU long names and links,
//! PAX headers) larger than a limit before `tar` reads them into memory.
//!
//! `tar` buffers such members whole, and their size comes from the archive:
//! a few KiB of gzip can declare a long name of many GiB. The guard watches
//! the stream as it passes (headers are parsed, data is forwarded
//! untouched) and fails the read that reaches an oversized member's header.

use std::io::{self, Read};

/// Largest GNU long name/link or PAX header member accepted (real ones are
/// a few KiB: paths are at most 4 KiB, extended attributes 64 KiB).
pub const MAX_HEADER_MEMBER: u64 = 1 << 20;

const BLOCK: usize = 512;

/// A `Read` over a tar stream that checks every member header on the way.
#[derive(Debug)]
pub struct HeaderGuard<R> {
    inner: R,
    limit: u64,
    header: [u8; BLOCK],
    filled: usize,
    /// Bytes of the current member's data (with padding) still to pass.
    data_left: u64,
    /// GNU sparse extension blocks follow (before the member's data).
    extension: bool,
    /// Data (with padding) of a sparse member, passed after its extensions.
    pending_data: u64,
    /// Data of the current PAX header, kept to find a `size` override.
    pax: Option<Vec<u8>>,
    /// Unpadded size of the PAX data being captured.
    pax_size: u64,
    /// Size the last PAX header gave the next member.
    size_override: Option<u64>,
}

/// Wraps `inner` (an uncompressed tar stream) in a guard with the default limit.
pub fn guard_headers<R: Read>(inner: R) -> HeaderGuard<R> {
    HeaderGuard::with_limit(inner, MAX_HEADER_MEMBER)
}

fn too_big(kind: &str, size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a tar {kind} member of {size} bytes exceeds the limit of {limit} bytes"),
    )
}

/// A tar numeric field: octal text, or base-256 when the top bit is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// The `size` record of PAX data, if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    let mut found = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return found;
        }
        let record = &rest[space + 1..len];
        if let Some(v) = record.strip_prefix(b"size=") {
            let v = v.strip_suffix(b"\n").unwrap_or(v);
            found = std::str::from_utf8(v).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    found
}

impl<R: Read> HeaderGuard<R> {
    /// Wraps `inner`, refusing metadata members over `limit` bytes.
    pub fn with_limit(inner: R, limit: u64) -> Self {
        HeaderGuard {
            inner,
            limit,
            header: [0; BLOCK],
            filled: 0,
            data_left: 0,
            extension: false,
            pending_data: 0,
            pax: None,
            pax_size: 0,
            size_override: None,
        }
    }

    /// Looks at a complete 512-byte block in header position.
    fn on_header(&mut self) -> io::Result<()> {
        let h = &self.header;
        if self.extension {
            // A GNU sparse extension block: byte 504 says whether another
            // follows; after the last one comes the member's data.
            self.extension = h[504] != 0;
            if !self.extension {
                self.data_left = std::mem::take(&mut self.pending_data);
            }
            return Ok(());
        }
        if h.iter().all(|b| *b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        let kind = h[156];
        let declared = numeric(&h[124..136]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a tar header has a corrupt size",
            )
        })?;
        // As `tar` reads them: L, K and x are buffered whole; x's `size`
        // applies to the next member that is not one of these.
        let meta = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let size = if meta {
            declared
        } else {
            self.size_override.take().unwrap_or(declared)
        };
        if meta && size > self.limit {
            let what = match kind {
                b'L' => "long name",
                b'K' => "long link name",
                _ => "PAX header",
            };
            return Err(too_big(what, size, self.limit));
        }
        if kind == b'x' {
            self.pax = Some(Vec::with_capacity(size as usize));
            self.pax_size = size;
        }
        // `tar` skips the size field's worth of data for every type.
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        // Old GNU sparse headers may be followed by extension blocks.
        self.extension = kind == b'S' && h[482] != 0;
        if self.extension {
            self.pending_data = padded;
        } else {
            self.data_left = padded;
        }
        Ok(())
    }

    fn on_data(&mut self, data: &[u8]) {
        if let Some(pax) = &mut self.pax {
            let want = (self.pax_size as usize).saturating_sub(pax.len());
            pax.extend_from_slice(&data[..data.len().min(want)]);
        }
        if self.data_left == 0
            && let Some(pax) = self.pax.take()
        {
            self.size_override = pax_size(&pax);
        }
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.data_left > 0 {
            let want = buf
                .len()
                .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            self.data_left -= n as u64;
            self.on_data(&buf[..n]);
            return Ok(n);
        }
        let want = buf.len().min(BLOCK - self.filled);
        let n = self.inner.read(&mut buf[..want])?;
        self.header[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == BLOCK {
            self.filled = 0;
            self.on_header()?;
            if self.data_left == 0 {
                self.on_data(&[]);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(kind: tar::EntryType, name: &str, data: &[u8]) -> (tar::Header, Vec<u8>) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        (h, data.to_vec())
    }

    fn archive(members: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (h, d) in members {
            b.append(h, &d[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(data: &[u8], limit: u64) -> io::Result<Vec<String>> {
        let mut a = tar::Archive::new(HeaderGuard::with_limit(data, limit));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut body = Vec::new();
            e.read_to_end(&mut body)?;
            out.push(format!(
                "{}:{}",
                String::from_utf8_lossy(&e.path_bytes()),
                body.len()
            ));
        }
        Ok(out)
    }

    #[test]
    fn ordinary_archives_pass_unchanged() {
        let long = "d/".repeat(150) + "file";
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1000);
        h.set_mode(0o644);
        b.append_pax_extensions([("SCHILY.xattr.user.x", &b"v"[..])])
            .unwrap();
        b.append_data(&mut h, "pax", &vec![7u8; 1000][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", "pax").unwrap();
        let data = b.into_inner().unwrap();
        let mut plain = Vec::new();
        HeaderGuard::with_limit(&data[..], 1024)
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data, "the guard forwards every byte");
        assert_eq!(
            names(&data, 1024).unwrap(),
            vec![format!("{long}:3"), "pax:1000".into(), "link:0".into()]
        );
    }

    #[test]
    fn oversized_metadata_members_are_refused() {
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
            tar::EntryType::XHeader,
        ] {
            let data = archive(&[
                member(kind, "././@LongLink", &vec![b'a'; 5000]),
                member(tar::EntryType::Regular, "f", b"x"),
            ]);
            let e = names(&data, 4096).unwrap_err();
            assert!(e.to_string().contains("exceeds the limit"), "{kind:?}: {e}");
            assert!(names(&data, 8192).is_ok(), "{kind:?} under the limit");
        }
    }

    #[test]
    fn pax_size_override_is_followed() {
        // A PAX header gives the next member a size its own header lacks;
        // the guard must find the next header after that data.
        let body = vec![1u8; 3000];
        let pax = b"13 size=3000\n".to_vec();
        let mut file = tar::Header::new_ustar();
        file.as_ustar_mut().unwrap().name[..1].copy_from_slice(b"f");
        file.set_size(0);
        file.set_mode(0o644);
        file.set_cksum();
        let (ph, pd) = member(tar::EntryType::XHeader, "PaxHeader", &pax);
        let mut raw = Vec::new();
        raw.extend_from_slice(ph.as_bytes());
        raw.extend_from_slice(&pd);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
        raw.extend_from_slice(file.as_bytes());
        raw.extend_from_slice(&body);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
        let (big, bd) = member(tar::EntryType::GNULongName, "././@LongLink", &[b'n'; 900]);
        raw.extend_from_slice(big.as_bytes());
        raw.extend_from_slice(&bd);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
        raw.extend_from_slice(&[0u8; 1024]);
        let e = names(&raw, 512).unwrap_err();
        assert!(e.to_string().contains("long name member of 900"), "{e}");
        assert_eq!(pax_size(&pax), Some(3000));
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(numeric(b"00000001750\0"), Some(1000));
        assert_eq!(numeric(b"          1\0"), Some(1));
        assert_eq!(
            numeric(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]),
            Some(1 << 33)
        );
        assert_eq!(numeric(b"\0\0\0"), Some(0));
    }
}
