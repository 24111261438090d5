//! COPY and ADD: a layer built on the host from the context or another
//! stage, with Docker's destination rules, `--chown`, `--chmod` and ADD's
//! extraction of local archives.

use std::collections::BTreeSet;
use std::io::{BufReader, Read};

use containerization_archive::{ArchiveReader, EntryKind};
use containerization_error::{ContainerizationError, Result};

use super::layer::{LayerWriter, header};
use super::tree::{Kind, SourceTree, clean_rel, expand_source, join};
use crate::ast::CopySource;

/// One COPY or ADD, resolved against the stage.
#[derive(Debug)]
pub struct CopyJob<'a> {
    /// `COPY` or `ADD` (for messages).
    pub keyword: &'a str,
    /// Sources as parsed.
    pub sources: &'a [CopySource],
    /// Destination as written.
    pub dest: &'a str,
    /// The stage's working directory (relative destinations start there).
    pub workdir: &'a str,
    /// `--chown`, resolved to ids.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`, as an octal mode.
    pub chmod: Option<u32>,
    /// Keep the sources' owners (`--from`); otherwise files belong to root.
    pub keep_owner: bool,
    /// ADD: extract local tar archives.
    pub unpack_archives: bool,
}

/// Parses `--chmod`; only octal modes are supported.
pub fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            ContainerizationError::unsupported(format!(
                "--chmod={s}: only octal modes (such as 0755) are supported"
            ))
        })
}

/// The state the destination is copied into.
struct Ctx<'a> {
    job: &'a CopyJob<'a>,
    image: &'a dyn SourceTree,
    out: &'a mut LayerWriter,
    /// Directories already in the layer or the image.
    dirs: BTreeSet<String>,
}

impl Ctx<'_> {
    fn owner(&self, uid: u32, gid: u32) -> (u32, u32) {
        match self.job.owner {
            Some(o) => o,
            None if self.job.keep_owner => (uid, gid),
            None => (0, 0),
        }
    }

    /// Adds the missing parent directories of `path` (relative to `/`).
    fn parents(&mut self, path: &str) -> Result<()> {
        let comps: Vec<&str> = path.split('/').collect();
        let mut cur = String::new();
        for c in &comps[..comps.len().saturating_sub(1)] {
            cur = join(&cur, c);
            self.ensure_dir(&cur, 0o755, None)?;
        }
        Ok(())
    }

    /// Creates directory `path` in the layer unless it already exists.
    fn ensure_dir(&mut self, path: &str, mode: u32, meta: Option<(u32, u32, u64)>) -> Result<()> {
        if path.is_empty() || self.dirs.contains(path) {
            return Ok(());
        }
        if self.image.stat(path)?.is_some_and(|e| e.kind == Kind::Dir) {
            self.dirs.insert(path.to_string());
            return Ok(());
        }
        let (uid, gid, mtime) = meta.unwrap_or((0, 0, 0));
        let (uid, gid) = match self.job.owner {
            Some(o) => o,
            None => (uid, gid),
        };
        let mut h = header(tar::EntryType::Directory, mode, uid, gid, mtime);
        self.out
            .append(&mut h, &format!("{path}/"), std::io::empty())?;
        self.dirs.insert(path.to_string());
        Ok(())
    }

    /// Copies `src` of `tree` to `dest`: a file, a symlink, or (for a
    /// directory) its contents, recursively.
    fn copy(&mut self, tree: &dyn SourceTree, src: &str, dest: &str) -> Result<()> {
        let Some(e) = tree.stat(src)? else {
            return Ok(());
        };
        let (uid, gid) = self.owner(e.uid, e.gid);
        let mode = self.job.chmod.unwrap_or(e.mode);
        match e.kind {
            Kind::Dir => {
                self.ensure_dir(dest, mode, Some((e.uid, e.gid, e.mtime)))?;
                for name in tree.list(src)? {
                    let child = join(src, &name);
                    if tree.excluded(&child) {
                        continue;
                    }
                    self.copy(tree, &child, &join(dest, &name))?;
                }
            }
            Kind::File => {
                self.dirs.remove(dest);
                let mut h = header(tar::EntryType::Regular, mode, uid, gid, e.mtime);
                h.set_size(e.size);
                let data = tree.open(src)?;
                // A file that changed size while read would corrupt the tar.
                let data = data.take(e.size);
                self.out.append(&mut h, dest, data)?;
            }
            Kind::Symlink => {
                let target = tree.read_link(src)?;
                let mut h = header(tar::EntryType::Symlink, 0o777, uid, gid, e.mtime);
                self.out.append_link(&mut h, dest, &target)?;
            }
            Kind::Other => {}
        }
        Ok(())
    }

    /// ADD of a local archive: its members land under directory `dest`.
    fn extract(&mut self, tree: &dyn SourceTree, src: &str, dest: &str) -> Result<()> {
        let mut data = Vec::new();
        tree.open(src)?.read_to_end(&mut data).map_err(|e| {
            ContainerizationError::invalid_argument(format!("reading {src}")).with_cause(e)
        })?;
        self.ensure_dir(dest, 0o755, None)?;
        let mut archive = ArchiveReader::from_reader(std::io::Cursor::new(data));
        for entry in archive.entries()? {
            let mut entry = entry?;
            let info = entry.info().clone();
            let Some(rel) = info.normalized_path() else {
                return Err(ContainerizationError::invalid_argument(format!(
                    "ADD {src}: member {} climbs out of the destination",
                    info.path.display()
                )));
            };
            let rel = rel.to_string_lossy().into_owned();
            if rel.is_empty() {
                continue;
            }
            let path = join(dest, &rel);
            self.parents(&path)?;
            let (uid, gid) = (info.uid as u32, info.gid as u32);
            let link = info
                .link_name
                .as_ref()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            match info.kind {
                EntryKind::Directory => {
                    let mut h = header(tar::EntryType::Directory, info.mode, uid, gid, info.mtime);
                    self.out
                        .append(&mut h, &format!("{path}/"), std::io::empty())?;
                    self.dirs.insert(path);
                }
                EntryKind::File => {
                    let mut h = header(tar::EntryType::Regular, info.mode, uid, gid, info.mtime);
                    h.set_size(info.size);
                    self.out.append(&mut h, &path, BufReader::new(&mut entry))?;
                }
                EntryKind::Symlink => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, uid, gid, info.mtime);
                    self.out.append_link(&mut h, &path, &link)?;
                }
                EntryKind::Hardlink => {
                    let target = clean_rel(&link).unwrap_or_default();
                    let mut h = header(tar::EntryType::Link, info.mode, uid, gid, info.mtime);
                    self.out.append_link(&mut h, &path, &join(dest, &target))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// True when the start of `tree`'s file `src` is a tar archive (plain, gzip
/// or zstd), so ADD extracts it.
fn is_archive(tree: &dyn SourceTree, src: &str) -> bool {
    let Ok(r) = tree.open(src) else { return false };
    let mut head = Vec::new();
    if r.take(4).read_to_end(&mut head).is_err() {
        return false;
    }
    let Ok(r) = tree.open(src) else { return false };
    let mut buf = Vec::new();
    // A decompressor needs an owned 'static reader: peek at a bounded prefix.
    if r.take(1 << 20).read_to_end(&mut buf).is_err() {
        return false;
    }
    let Ok(mut dec) = containerization_archive::open_decompressed(std::io::Cursor::new(buf)) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut got = 0;
    while got < 512 {
        match dec.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &block[257..262] == b"ustar"
}

/// Writes the layer of `job`: sources from `tree`, the current filesystem
/// `image` (to find existing directories), into `out`.
pub fn copy_layer(
    job: &CopyJob<'_>,
    tree: &dyn SourceTree,
    image: &dyn SourceTree,
    out: &mut LayerWriter,
) -> Result<()> {
    let kw = job.keyword;
    let dest_abs = if job.dest.starts_with('/') {
        job.dest.to_string()
    } else {
        format!("{}/{}", job.workdir, job.dest)
    };
    let dest = clean_rel(&dest_abs).unwrap_or_default();
    let mut resolved: Vec<String> = Vec::new();
    let mut heredocs = Vec::new();
    for s in job.sources {
        match s {
            CopySource::Heredoc(h) => heredocs.push(h),
            CopySource::Path(p) if p.contains("://") || p.starts_with("git@") => {
                return Err(ContainerizationError::unsupported(format!(
                    "{kw} {p}: remote sources are not supported (the builder has no internet access); download the file into the context and COPY it"
                )));
            }
            CopySource::Path(p) => {
                let found = expand_source(tree, p)?;
                if found.is_empty() {
                    return Err(ContainerizationError::not_found(format!(
                        "{kw} failed: {p}: no such file or directory in the {}",
                        if job.keep_owner {
                            "source stage or image"
                        } else {
                            "build context"
                        }
                    )));
                }
                resolved.extend(found);
            }
        }
    }
    let count = resolved.len() + heredocs.len();
    let dest_is_dir = job.dest.ends_with('/')
        || count > 1
        || dest.is_empty()
        || image.stat(&dest)?.is_some_and(|e| e.kind == Kind::Dir);
    let mut ctx = Ctx {
        job,
        image,
        out,
        dirs: BTreeSet::new(),
    };
    if dest_is_dir {
        ctx.parents(&join(&dest, "x"))?;
        ctx.ensure_dir(&dest, 0o755, None)?;
    } else {
        ctx.parents(&dest)?;
    }
    for src in &resolved {
        let e = tree.stat(src)?.expect("expanded sources exist");
        let name = src.rsplit('/').next().unwrap_or(src);
        if e.kind == Kind::File && job.unpack_archives && is_archive(tree, src) {
            ctx.extract(tree, src, &dest)?;
            continue;
        }
        let target = match e.kind {
            Kind::Dir => dest.clone(),
            _ if dest_is_dir => join(&dest, name),
            _ => dest.clone(),
        };
        if e.kind == Kind::Dir && dest_is_dir && ctx.dirs.contains(&dest) {
            // Copy the directory's contents into the existing destination.
            for child in tree.list(src)? {
                let c = join(src, &child);
                if !tree.excluded(&c) {
                    ctx.copy(tree, &c, &join(&dest, &child))?;
                }
            }
            continue;
        }
        ctx.copy(tree, src, &target)?;
    }
    for h in heredocs {
        let path = if dest_is_dir {
            join(&dest, &h.delimiter)
        } else {
            dest.clone()
        };
        let (uid, gid) = job.owner.unwrap_or((0, 0));
        let mode = job.chmod.unwrap_or(0o644);
        let mut hd = header(tar::EntryType::Regular, mode, uid, gid, 0);
        hd.set_size(h.content.len() as u64);
        ctx.out.append(&mut hd, &path, h.content.as_bytes())?;
    }
    Ok(())
}
