//! The layer a RUN produced: the ext4 image after the command compared with
//! the image before it (type, mode, owner, size, times, link target,
//! xattrs); changed entries go into the layer, deleted ones become `.wh.`
//! whiteouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use containerization_error::Result;
use containerization_ext4::{Ext4, FileType, Stat};

use super::layer::{LayerWriter, header};
use super::tree::join;

/// Paths (relative, no leading `/`) whose entries are left out of the
/// diff, with everything below them: mount points the builder added.
pub type Ignore = BTreeSet<String>;

fn entries(fs: &Ext4, rel: &str) -> Result<BTreeMap<String, u32>> {
    Ok(fs
        .read_dir(format!("/{rel}"))?
        .into_iter()
        .map(|e| (e.name.to_string_lossy().into_owned(), e.ino))
        .collect())
}

fn same(a: &Stat, b: &Stat) -> bool {
    a.file_type == b.file_type
        && a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.size == b.size
        && a.mtime == b.mtime
        && a.ctime == b.ctime
        && a.rdev == b.rdev
}

struct Differ<'a> {
    before: &'a Ext4,
    after: &'a Ext4,
    out: &'a mut LayerWriter,
    ignore: &'a Ignore,
    /// Inode -> first path written, for hard links inside the layer.
    links: HashMap<u32, String>,
    changes: usize,
}

impl Differ<'_> {
    fn walk(&mut self, rel: &str) -> Result<()> {
        let old = entries(self.before, rel)?;
        let new = entries(self.after, rel)?;
        for name in old.keys() {
            let path = join(rel, name);
            if !new.contains_key(name) && !self.ignore.contains(&path) {
                let wh = join(rel, &format!(".wh.{name}"));
                let mut h = header(tar::EntryType::Regular, 0o644, 0, 0, 0);
                self.out.append(&mut h, &wh, std::io::empty())?;
                self.changes += 1;
            }
        }
        for (name, &ino) in &new {
            let path = join(rel, name);
            if self.ignore.contains(&path) {
                continue;
            }
            let st = self.after.stat_inode(ino)?;
            let prior = match old.get(name) {
                Some(&o) => Some(self.before.stat_inode(o)?),
                None => None,
            };
            let changed = match &prior {
                None => true,
                Some(p) => {
                    !same(p, &st)
                        || (st.file_type == FileType::Symlink
                            && self.before.read_link_inode(p.ino)?
                                != self.after.read_link_inode(ino)?)
                        || self.before.xattrs_inode(p.ino)? != self.after.xattrs_inode(ino)?
                }
            };
            let was_dir = prior.as_ref().is_some_and(|p| p.file_type == FileType::Dir);
            if changed {
                self.emit(&path, &st)?;
            }
            if st.file_type == FileType::Dir {
                if was_dir {
                    self.walk(&path)?;
                } else {
                    self.add_tree(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Everything below a new directory.
    fn add_tree(&mut self, rel: &str) -> Result<()> {
        for (name, ino) in entries(self.after, rel)? {
            let path = join(rel, &name);
            if self.ignore.contains(&path) {
                continue;
            }
            let st = self.after.stat_inode(ino)?;
            self.emit(&path, &st)?;
            if st.file_type == FileType::Dir {
                self.add_tree(&path)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, path: &str, st: &Stat) -> Result<()> {
        self.changes += 1;
        let mtime = st.mtime.secs.max(0) as u64;
        let mode = st.mode as u32 & 0o7777;
        let h = |t| header(t, mode, st.uid, st.gid, mtime);
        match st.file_type {
            FileType::Dir => {
                let mut hd = h(tar::EntryType::Directory);
                self.out
                    .append(&mut hd, &format!("{path}/"), std::io::empty())?;
            }
            FileType::File => {
                if st.nlink > 1 {
                    if let Some(first) = self.links.get(&st.ino) {
                        let first = first.clone();
                        let mut hd = h(tar::EntryType::Link);
                        return self.out.append_link(&mut hd, path, &first);
                    }
                    self.links.insert(st.ino, path.to_string());
                }
                let mut hd = h(tar::EntryType::Regular);
                hd.set_size(st.size);
                let data = self.after.open_file_inode(st.ino)?.take(st.size);
                self.out.append(&mut hd, path, data)?;
            }
            FileType::Symlink => {
                let target = self.after.read_link_inode(st.ino)?;
                let mut hd = h(tar::EntryType::Symlink);
                self.out
                    .append_link(&mut hd, path, &target.to_string_lossy())?;
            }
            FileType::CharDevice | FileType::BlockDevice => {
                let kind = if st.file_type == FileType::CharDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut hd = h(kind);
                let _ = hd.set_device_major(st.rdev.0);
                let _ = hd.set_device_minor(st.rdev.1);
                self.out.append(&mut hd, path, std::io::empty())?;
            }
            FileType::Fifo => {
                let mut hd = h(tar::EntryType::Fifo);
                self.out.append(&mut hd, path, std::io::empty())?;
            }
            // Sockets cannot be stored in a tar layer; Docker drops them too.
            FileType::Socket => {}
        }
        Ok(())
    }
}

/// Writes the changes from `before` to `after` into `out`; returns how many
/// entries changed (0: the command left the filesystem as it was).
pub fn diff(before: &Ext4, after: &Ext4, ignore: &Ignore, out: &mut LayerWriter) -> Result<usize> {
    let mut d = Differ {
        before,
        after,
        out,
        ignore,
        links: HashMap::new(),
        changes: 0,
    };
    // The root directory itself: its metadata rarely matters and the guest
    // touches its times on every file creation, so it is not diffed.
    d.walk("")?;
    Ok(d.changes)
}
