//! Where COPY reads from: the build context on the host (with
//! `.dockerignore`) or another stage's filesystem (an unpacked ext4 image),
//! behind one small trait so copy logic and globbing are written once.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_ext4::{Ext4, FileType};

use crate::dockerignore::DockerIgnore;

/// Type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed).
    Symlink,
    /// Device, FIFO or socket: skipped by COPY.
    Other,
}

/// What COPY needs to know about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Type.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: u64,
}

/// A read-only file tree addressed by `/`-separated relative paths (`""` is
/// the root).
pub trait SourceTree: Send + Sync {
    /// Status of `rel` without following a final symlink; `None` if absent.
    fn stat(&self, rel: &str) -> Result<Option<Entry>>;
    /// Names in directory `rel`, sorted.
    fn list(&self, rel: &str) -> Result<Vec<String>>;
    /// Contents of regular file `rel`.
    fn open(&self, rel: &str) -> Result<Box<dyn Read + '_>>;
    /// Target of symlink `rel`.
    fn read_link(&self, rel: &str) -> Result<String>;
    /// True when `rel` must be left out (`.dockerignore`).
    fn excluded(&self, _rel: &str) -> bool {
        false
    }
}

/// Joins two relative paths.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Cleans a source path lexically; `None` when it climbs above the root.
pub fn clean_rel(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// The build context directory.
#[derive(Debug)]
pub struct HostTree {
    root: PathBuf,
    ignore: DockerIgnore,
}

impl HostTree {
    /// The context at `root`, filtered by `ignore`.
    pub fn new(root: &Path, ignore: DockerIgnore) -> HostTree {
        HostTree {
            root: root.to_path_buf(),
            ignore,
        }
    }

    /// The host path of `rel`: symlinks in its directories are followed
    /// inside the context only (an absolute or climbing target is taken
    /// relative to the context root, as Docker does), so no source reaches
    /// outside the context. The last component is not followed.
    fn path(&self, rel: &str) -> PathBuf {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let Some((last, dirs)) = comps.split_last() else {
            return self.root.clone();
        };
        let mut cur: Vec<String> = Vec::new();
        let mut todo: Vec<String> = dirs.iter().rev().map(|s| s.to_string()).collect();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = self.root.join(cur.join("/")).join(&c);
            match fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                    hops += 1;
                    let target = fs::read_link(&candidate)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(target.split('/').rev().map(String::from));
                }
                _ => cur.push(c),
            }
        }
        cur.push(last.to_string());
        self.root.join(cur.join("/"))
    }
}

impl SourceTree for HostTree {
    fn stat(&self, rel: &str) -> Result<Option<Entry>> {
        let m = match fs::symlink_metadata(self.path(rel)) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "cannot read {rel} in the build context"
                ))
                .with_cause(e));
            }
        };
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Ok(Some(Entry {
            kind,
            mode: m.permissions().mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime: m.mtime().max(0) as u64,
        }))
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let dir = fs::read_dir(self.path(rel)).context(
            Code::InvalidArgument,
            format!("cannot list {rel} in the build context"),
        )?;
        for e in dir {
            let e = e.context(Code::InvalidArgument, "listing the build context")?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, rel: &str) -> Result<Box<dyn Read + '_>> {
        let f = fs::File::open(self.path(rel)).context(
            Code::InvalidArgument,
            format!("cannot read {rel} in the build context"),
        )?;
        Ok(Box::new(f))
    }

    fn read_link(&self, rel: &str) -> Result<String> {
        let t = fs::read_link(self.path(rel)).context(
            Code::InvalidArgument,
            format!("cannot read link {rel} in the build context"),
        )?;
        Ok(t.to_string_lossy().into_owned())
    }

    fn excluded(&self, rel: &str) -> bool {
        // The Dockerfile and .dockerignore are still sent, as by Docker.
        !rel.is_empty() && self.ignore.is_excluded(rel)
    }
}

/// A stage's filesystem, unpacked into an ext4 image.
#[derive(Debug)]
pub struct Ext4Tree {
    fs: Ext4,
}

impl Ext4Tree {
    /// Opens the image at `path`.
    pub fn open(path: &Path) -> Result<Ext4Tree> {
        Ok(Ext4Tree {
            fs: Ext4::open(path)?,
        })
    }

    /// The reader, for callers that need more than the trait.
    pub fn ext4(&self) -> &Ext4 {
        &self.fs
    }
}

fn abs(rel: &str) -> String {
    format!("/{rel}")
}

/// Maps an ext4 file type to a COPY kind.
pub fn kind_of(t: FileType) -> Kind {
    match t {
        FileType::File => Kind::File,
        FileType::Dir => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl SourceTree for Ext4Tree {
    fn stat(&self, rel: &str) -> Result<Option<Entry>> {
        match self.fs.stat(abs(rel)) {
            Ok(s) => Ok(Some(Entry {
                kind: kind_of(s.file_type),
                mode: s.mode as u32 & 0o7777,
                uid: s.uid,
                gid: s.gid,
                size: s.size,
                mtime: s.mtime.secs.max(0) as u64,
            })),
            Err(e) if e.is_code(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .fs
            .read_dir(abs(rel))?
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn open(&self, rel: &str) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.fs.open_file(abs(rel))?))
    }

    fn read_link(&self, rel: &str) -> Result<String> {
        Ok(self.fs.read_link(abs(rel))?.to_string_lossy().into_owned())
    }
}

/// Expands a COPY source (possibly a glob, per path component as Go's
/// `filepath.Match`) to the existing relative paths it names, sorted.
pub fn expand_source(tree: &dyn SourceTree, src: &str) -> Result<Vec<String>> {
    let clean = clean_rel(src).ok_or_else(|| {
        ContainerizationError::invalid_argument(format!(
            "source {src} is outside the build context"
        ))
    })?;
    let comps: Vec<&str> = clean.split('/').filter(|c| !c.is_empty()).collect();
    let mut found = vec![String::new()];
    for comp in comps {
        let mut next = Vec::new();
        let is_glob = comp.contains(['*', '?', '[']);
        for base in &found {
            if !is_glob {
                let p = join(base, comp);
                if tree.stat(&p)?.is_some() {
                    next.push(p);
                }
                continue;
            }
            if tree.stat(base)?.map(|e| e.kind) != Some(Kind::Dir) {
                continue;
            }
            let pattern = DockerIgnore::parse(comp)?;
            let Some(p) = pattern.patterns().first() else {
                continue;
            };
            for name in tree.list(base)? {
                if p.matches(&name) {
                    next.push(join(base, &name));
                }
            }
        }
        found = next;
    }
    found.retain(|p| !tree.excluded(p));
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_symlinks_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("real")).unwrap();
        fs::write(ctx.join("real/f"), "inside").unwrap();
        fs::write(dir.path().join("f"), "outside").unwrap();
        std::os::unix::fs::symlink("/", ctx.join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", ctx.join("up")).unwrap();
        std::os::unix::fs::symlink("real", ctx.join("rel")).unwrap();
        let t = HostTree::new(&ctx, DockerIgnore::default());
        let read = |p: &str| {
            let mut s = String::new();
            t.open(p).unwrap().read_to_string(&mut s).unwrap();
            s
        };
        assert_eq!(read("rel/f"), "inside");
        assert_eq!(read("abs/real/f"), "inside", "/ is the context root");
        assert_eq!(read("up/real/f"), "inside", ".. stops at the context root");
        assert!(t.stat("up/f").unwrap().is_none(), "never the file outside");
        assert_eq!(t.stat("rel").unwrap().unwrap().kind, Kind::Symlink);
    }
}
