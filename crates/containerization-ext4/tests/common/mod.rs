//! Helpers shared by the integration tests: e2fsck and debugfs wrappers, and
//! three independent readings of an image's tree (our reader, the ext4-view
//! crate, debugfs) that must agree.
#![allow(dead_code)]

pub mod layer;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use containerization_ext4::{Ext4, FileType};
use sha2::{Digest, Sha256};

/// Runs `e2fsck -fn` and panics with its output unless it exits 0.
pub fn fsck(image: &Path) {
    containerization_ext4::e2fsck_check(image).unwrap_or_else(|e| panic!("{e}"));
}

/// Runs debugfs requests (one per line) against `image`; returns stdout.
pub fn debugfs(image: &Path, requests: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cmds = dir.path().join("cmds");
    std::fs::write(&cmds, requests).unwrap();
    let out = Command::new("debugfs")
        .arg("-f")
        .arg(&cmds)
        .arg(image)
        .output()
        .expect("debugfs not found: install e2fsprogs (apt-get install e2fsprogs)");
    assert!(
        out.status.success(),
        "debugfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Content of an entry as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Regular file with the sha256 of its contents.
    File(String),
    Dir,
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    Socket,
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ent {
    pub kind: Kind,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u16,
    pub mtime: (i64, u32),
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub ino: u32,
}

/// Tree keyed by path relative to the root ("a/b"), root and lost+found left out.
pub type Tree = BTreeMap<Vec<u8>, Ent>;

pub fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// The tree as our reader sees it.
pub fn read_tree(image: &Path) -> Tree {
    let fs = Ext4::open(image).unwrap();
    let mut out = Tree::new();
    walk(&fs, 2, b"", &mut out);
    out.remove(&b"lost+found"[..]);
    out
}

fn walk(fs: &Ext4, ino: u32, prefix: &[u8], out: &mut Tree) {
    for e in fs.read_dir_inode(ino).unwrap() {
        let path = join(prefix, e.name.as_bytes());
        let st = fs.stat_inode(e.ino).unwrap();
        let abs = [b"/", path.as_slice()].concat();
        let abs = Path::new(std::ffi::OsStr::from_bytes(&abs));
        let kind = match st.file_type {
            FileType::File if st.size > 64 << 20 => Kind::File(format!("large:{}", st.size)),
            FileType::File => {
                let mut r = fs.open_file_inode(e.ino).unwrap();
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Kind::File(hex(&h.finalize()))
            }
            FileType::Dir => Kind::Dir,
            FileType::Symlink => Kind::Symlink(
                fs.read_link_inode(e.ino)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            ),
            FileType::CharDevice => Kind::Char(st.rdev.0, st.rdev.1),
            FileType::BlockDevice => Kind::Block(st.rdev.0, st.rdev.1),
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
        };
        assert_eq!(
            e.file_type,
            Some(st.file_type),
            "dir entry type of {}",
            abs.display()
        );
        let is_dir = kind == Kind::Dir;
        out.insert(
            path.clone(),
            Ent {
                kind,
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
                size: st.size,
                nlink: st.nlink,
                mtime: (st.mtime.secs, st.mtime.nanos),
                xattrs: fs.xattrs_inode(e.ino).unwrap(),
                ino: e.ino,
            },
        );
        if is_dir {
            walk(fs, e.ino, &path, out);
        }
    }
}

/// Checks the image with e2fsck, then checks that ext4-view and debugfs
/// see the same tree as our reader; returns that tree.
pub fn check_image(image: &Path) -> Tree {
    fsck(image);
    let ours = read_tree(image);
    compare_with_ext4_view(image, &ours);
    compare_with_debugfs(image, &ours);
    ours
}

fn compare_with_ext4_view(image: &Path, ours: &Tree) {
    let fs = ext4_view::Ext4::load_from_path(image).unwrap();
    let mut seen = 0usize;
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(dir) = stack.pop() {
        let dpath = [b"/", dir.as_slice()].concat();
        for e in fs.read_dir(ext4_view::Path::new(&dpath)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().as_ref().to_vec();
            if name == b"." || name == b".." || (dir.is_empty() && name == b"lost+found") {
                continue;
            }
            let path = join(&dir, &name);
            let mine = ours.get(&path).unwrap_or_else(|| {
                panic!(
                    "ext4-view sees {:?}, our reader does not",
                    String::from_utf8_lossy(&path)
                )
            });
            let md = match e.metadata() {
                Ok(md) => md,
                // ext4-view 1.0 rejects raw seconds >= 2^31 (before 1970 or
                // after 2038) that ext4's epoch bits allow; the kernel and
                // debugfs accept them.
                Err(err)
                    if !(0..1 << 31).contains(&mine.mtime.0)
                        && format!("{err:?}").contains("InodeTimestamp") =>
                {
                    seen += 1;
                    continue;
                }
                Err(err) => panic!(
                    "ext4-view metadata of {}: {err}",
                    String::from_utf8_lossy(&path)
                ),
            };
            let what = String::from_utf8_lossy(&path).into_owned();
            assert_eq!(md.mode() & 0o7777, mine.mode, "mode of {what}");
            assert_eq!(md.uid(), mine.uid, "uid of {what}");
            assert_eq!(md.gid(), mine.gid, "gid of {what}");
            assert_eq!(md.len(), mine.size, "size of {what}");
            assert_eq!(
                (md.modified().seconds(), md.modified().nanoseconds()),
                mine.mtime,
                "mtime of {what}"
            );
            let abs = [b"/", path.as_slice()].concat();
            match &mine.kind {
                Kind::Dir => {
                    assert!(md.is_dir(), "{what} is a dir");
                    stack.push(path.clone());
                }
                Kind::File(h) if mine.size <= 64 << 20 => {
                    let data = fs.read(ext4_view::Path::new(&abs)).unwrap();
                    assert_eq!(&sha(&data), h, "contents of {what}");
                }
                Kind::Symlink(t) => {
                    assert!(md.is_symlink(), "{what} is a symlink");
                    let l = fs.read_link(ext4_view::Path::new(&abs)).unwrap();
                    assert_eq!(l.as_ref(), t.as_slice(), "target of {what}");
                }
                _ => {}
            }
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        ours.len(),
        "ext4-view and our reader see different entry counts"
    );
}

fn compare_with_debugfs(image: &Path, ours: &Tree) {
    // One `stat`-free listing per directory: `ls -p` prints
    // /ino/mode/uid/gid/name/size/ for each entry.
    let dirs: Vec<&Vec<u8>> = ours
        .iter()
        .filter(|(_, e)| e.kind == Kind::Dir)
        .map(|(p, _)| p)
        .collect();
    if dirs.len() > 2000 {
        return;
    }
    let mut req = String::from("ls -p /\n");
    for d in &dirs {
        let Ok(s) = std::str::from_utf8(d) else {
            continue;
        };
        if s.contains(' ') || s.contains('"') {
            continue;
        }
        req.push_str(&format!("ls -p /{s}\n"));
    }
    let out = debugfs(image, &req);
    let mut count = 0;
    let mut cur_dir: Option<Vec<u8>> = None;
    for line in out.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"debugfs: ls -p /") {
            cur_dir = Some(rest.to_vec());
            continue;
        }
        if !line.starts_with(b"/") {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
        if f.len() < 7 {
            continue;
        }
        let name = f[5..f.len() - 2].join(&b'/');
        if name == b"." || name == b".." || name.is_empty() {
            continue;
        }
        let Some(dir) = &cur_dir else { continue };
        let path = join(dir, &name);
        if path == b"lost+found" {
            continue;
        }
        let Some(mine) = ours.get(&path) else {
            panic!(
                "debugfs sees {:?}, our reader does not",
                String::from_utf8_lossy(&path)
            );
        };
        let num = |b: &[u8]| {
            std::str::from_utf8(b)
                .unwrap()
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("number {:?}", String::from_utf8_lossy(b)))
                as u64
        };
        let what = String::from_utf8_lossy(&path).into_owned();
        assert_eq!(num(f[1]) as u32, mine.ino, "inode of {what}");
        let mode = u32::from_str_radix(std::str::from_utf8(f[2]).unwrap(), 8).unwrap();
        assert_eq!((mode & 0o7777) as u16, mine.mode, "mode of {what}");
        assert_eq!(num(f[3]) as u32, mine.uid, "uid of {what}");
        assert_eq!(num(f[4]) as u32, mine.gid, "gid of {what}");
        if matches!(mine.kind, Kind::File(_) | Kind::Symlink(_)) {
            assert_eq!(num(f[f.len() - 2]), mine.size, "size of {what}");
        }
        count += 1;
    }
    assert!(count > 0 || ours.is_empty(), "debugfs listed nothing");
}
