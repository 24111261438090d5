//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the plain
//! tests that replay the seed corpus, so the targets stay buildable and
//! exercised on stable Rust. Not part of the supported API.

use std::io::{Cursor, Read};
use std::path::PathBuf;

use crate::formatter::{FormatOptions, Formatter};
use crate::reader::{Ext4, FileType};
use crate::unpack::Unpacker;

const MAX_VISITS: usize = 4096;
const MAX_DEPTH: usize = 16;
const MAX_READ: u64 = 1 << 20;

/// A scratch file private to this thread, in RAM when `/dev/shm` exists.
fn scratch(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!(
        "containerization-ext4-fuzz-{}-{:?}-{name}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// Walks everything reachable in `fs` with bounded effort.
fn walk(fs: &Ext4) {
    let _ = fs.superblock();
    let mut stack = vec![(crate::layout::ROOT_INODE, 0usize)];
    let mut visits = 0;
    while let Some((ino, depth)) = stack.pop() {
        let Ok(entries) = fs.read_dir_inode(ino) else {
            continue;
        };
        for e in entries {
            visits += 1;
            if visits > MAX_VISITS {
                return;
            }
            let Ok(st) = fs.stat_inode(e.ino) else {
                continue;
            };
            let _ = fs.xattrs_inode(e.ino);
            match st.file_type {
                FileType::Dir if depth < MAX_DEPTH => stack.push((e.ino, depth + 1)),
                FileType::File => {
                    if let Ok(r) = fs.open_file_inode(e.ino) {
                        let _ = std::io::copy(&mut r.take(MAX_READ), &mut std::io::sink());
                    }
                }
                FileType::Symlink => {
                    let _ = fs.read_link_inode(e.ino);
                }
                _ => {}
            }
        }
    }
    // Path resolution with symlinks, on whatever names exist at the top.
    for p in ["/", "/lost+found", "/a/b/c", "/etc/passwd", "/link/x"] {
        let _ = fs.stat(p);
        let _ = fs.read_file(p);
    }
}

/// Fuzz target `ext4_reader`: open `data` as an ext4 image and read it all.
/// Must never panic, hang or allocate without bound.
pub fn ext4_reader(data: &[u8]) {
    let path = scratch("image");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(fs) = Ext4::open(&path) {
        walk(&fs);
    }
    let _ = std::fs::remove_file(&path);
}

/// Fuzz target `layer_unpack`: apply `data` as a layer to a small image,
/// then read the result back. Must never panic or hang.
pub fn layer_unpack(data: &[u8]) {
    let path = scratch("layer.ext4");
    if let Ok(f) = Formatter::create(&path, 8 << 20, FormatOptions::default()) {
        let mut u = Unpacker::new(f);
        let applied = u.apply_layer(Cursor::new(data.to_vec()));
        if applied.is_ok()
            && u.finish().is_ok()
            && let Ok(fs) = Ext4::open(&path)
        {
            walk(&fs);
        }
    }
    let _ = std::fs::remove_file(&path);
}
