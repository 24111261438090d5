//! Builds OCI layer tarballs for tests.

use tar::{EntryType, Header};

/// A layer under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
    pub mtime: u64,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Complete);
        Layer {
            b,
            mtime: 1_600_000_000,
        }
    }

    fn header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = self.header(EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_mode(path, 0o644, data)
    }

    pub fn file_mode(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        let mut h = self.header(EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A file with owner, PAX records (xattrs, nanosecond times) and mode.
    pub fn file_full(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        pax: &[(&str, &[u8])],
        data: &[u8],
    ) -> &mut Self {
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, *v)))
                .unwrap();
        }
        let mut h = self.header(EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = self.header(EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = self.header(EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path
            .rsplit_once('/')
            .map(|(d, n)| (format!("{d}/"), n))
            .unwrap_or((String::new(), path));
        self.file(&format!("{dir}.wh.{name}"), b"")
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn device(&mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = self.header(kind, 0o600, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let mut h = self.header(EntryType::Fifo, 0o600, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry whose stored name is `raw` exactly (bypassing the tar
    /// crate's checks), to build hostile layers.
    pub fn raw(&mut self, kind: EntryType, raw: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = self.header(kind, 0o644, data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..raw.len()].copy_from_slice(raw);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// A file whose long name travels in a PAX `path` record.
    pub fn pax_path_file(&mut self, path: &[u8], data: &[u8]) -> &mut Self {
        self.b.append_pax_extensions([("path", path)]).unwrap();
        let mut h = self.header(EntryType::Regular, 0o644, data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..10].copy_from_slice(b"truncated!");
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}
