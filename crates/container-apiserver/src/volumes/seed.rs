//! Copies an image directory into a new volume (Docker's behaviour: a new
//! volume mounted over a directory of the image starts with its files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerization_error::Result;
use containerization_ext4::{DeviceKind, Ext4, FileType, Formatter, Metadata, ROOT_INODE, Stat};

fn metadata(fs: &Ext4, st: &Stat) -> Result<Metadata> {
    let mut m = Metadata::with_mode(st.mode);
    m.uid = st.uid;
    m.gid = st.gid;
    m.atime = st.atime;
    m.mtime = st.mtime;
    m.ctime = st.ctime;
    m.crtime = st.crtime;
    m.xattrs = fs.xattrs_inode(st.ino)?;
    Ok(m)
}

/// Copies the tree at `dir` of the image `image` into the root of `out`.
/// Nothing is copied when `dir` is missing or not a directory. Returns the
/// number of entries copied.
pub(crate) fn copy_image_dir(image: &Path, dir: &str, out: &mut Formatter) -> Result<u64> {
    let fs = Ext4::open(image)?;
    let st = match fs.stat(dir) {
        Ok(st) if st.file_type == FileType::Dir => st,
        _ => return Ok(0),
    };
    out.create_dir("/", metadata(&fs, &st)?)?;
    let mut links: HashMap<u32, PathBuf> = HashMap::new();
    let mut count = 0;
    let mut stack = vec![(st.ino, PathBuf::from("/"))];
    while let Some((ino, at)) = stack.pop() {
        for e in fs.read_dir_inode(ino)? {
            if e.name == "." || e.name == ".." || e.ino == 0 {
                continue;
            }
            if ino == ROOT_INODE && e.name == "lost+found" {
                continue;
            }
            let path = at.join(&e.name);
            let st = fs.stat_inode(e.ino)?;
            count += 1;
            if st.file_type != FileType::Dir && st.nlink > 1 {
                if let Some(first) = links.get(&e.ino) {
                    out.create_hardlink(&path, first)?;
                    continue;
                }
                links.insert(e.ino, path.clone());
            }
            let meta = metadata(&fs, &st)?;
            match st.file_type {
                FileType::Dir => {
                    out.create_dir(&path, meta)?;
                    stack.push((e.ino, path));
                }
                FileType::File => {
                    let mut r = fs.open_file_inode(e.ino)?;
                    out.create_file(&path, meta, &mut r)?;
                }
                FileType::Symlink => {
                    let target = fs.read_link_inode(e.ino)?;
                    out.create_symlink(&path, target.as_os_str(), meta)?;
                }
                FileType::CharDevice | FileType::BlockDevice => {
                    let kind = if st.file_type == FileType::CharDevice {
                        DeviceKind::Char
                    } else {
                        DeviceKind::Block
                    };
                    out.create_device(&path, kind, st.rdev.0, st.rdev.1, meta)?;
                }
                FileType::Fifo => out.create_fifo(&path, meta)?,
                FileType::Socket => out.create_socket(&path, meta)?,
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerization_ext4::FormatOptions;

    #[test]
    fn copies_a_subtree_with_metadata_links_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("image.ext4");
        let mut f = Formatter::create(&img, 32 << 20, FormatOptions::default()).unwrap();
        let mut m = Metadata::with_mode(0o750);
        m.uid = 7;
        f.create_dir("/srv/data/sub", Metadata::with_mode(0o755))
            .unwrap();
        f.create_dir("/srv/data", m).unwrap();
        f.create_file("/srv/data/a", Metadata::with_mode(0o644), &mut &b"aaa"[..])
            .unwrap();
        f.create_hardlink("/srv/data/sub/b", "/srv/data/a").unwrap();
        f.create_symlink("/srv/data/l", "a", Metadata::with_mode(0o777))
            .unwrap();
        f.create_file("/other", Metadata::default(), &mut &b"x"[..])
            .unwrap();
        f.close().unwrap();

        let vol = dir.path().join("vol.img");
        let mut out = Formatter::create(&vol, 32 << 20, FormatOptions::default()).unwrap();
        assert_eq!(copy_image_dir(&img, "/srv/data", &mut out).unwrap(), 4);
        out.close().unwrap();
        let v = Ext4::open(&vol).unwrap();
        let root = v.stat("/").unwrap();
        assert_eq!((root.mode, root.uid), (0o750, 7));
        assert_eq!(v.read_file("/a").unwrap(), b"aaa");
        assert_eq!(v.stat("/sub/b").unwrap().ino, v.stat("/a").unwrap().ino);
        assert_eq!(v.read_link("/l").unwrap(), PathBuf::from("a"));
        assert!(v.stat("/other").is_err());

        let mut out = Formatter::create(&vol, 32 << 20, FormatOptions::default()).unwrap();
        assert_eq!(copy_image_dir(&img, "/missing", &mut out).unwrap(), 0);
        assert_eq!(copy_image_dir(&img, "/other", &mut out).unwrap(), 0);
    }
}
