//! Safe extraction: every member lands inside the destination or is refused.
//!
//! Parent directories are resolved one component at a time with `lstat`, so
//! a symlink planted by an earlier member is followed only while it stays
//! inside the destination; one that points out (absolute, or `..` past the
//! root) makes the member fail.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::entry::{ArchiveEntry, EntryKind};

/// Symlink hops allowed while resolving one path, as the kernel's ELOOP limit.
const MAX_SYMLINK_HOPS: usize = 40;

pub(crate) struct Extractor {
    root: PathBuf,
}

enum Step {
    Up,
    Down(OsString),
}

impl Extractor {
    pub(crate) fn new(to: &Path) -> Result<Self> {
        fs::create_dir_all(to).context(
            Code::InternalError,
            format!("creating extraction directory '{}'", to.display()),
        )?;
        let root = fs::canonicalize(to).context(
            Code::InternalError,
            format!("resolving extraction directory '{}'", to.display()),
        )?;
        Ok(Self { root })
    }

    pub(crate) fn extract(&mut self, mut entry: ArchiveEntry<'_>) -> Result<()> {
        let info = entry.info().clone();
        let name = info.path.display().to_string();
        let rel = member_path(&info.path, &name)?;
        let Some(file_name) = rel.file_name().map(|f| f.to_os_string()) else {
            return Ok(()); // "./" itself: the destination already exists.
        };
        if info.kind == EntryKind::Other {
            return Ok(());
        }
        let parent = self.resolve(rel.parent().unwrap_or(Path::new("")), true, &name)?;
        let dest = parent.join(&file_name);
        clear_destination(&dest, info.kind == EntryKind::Directory, &name)?;

        if info.kind == EntryKind::Hardlink {
            let target = info.link_name.clone().unwrap_or_default();
            let target_rel = member_path(&target, &name)
                .map_err(|_| escape(&name, &format!("hard link target '{}'", target.display())))?;
            let source = match (target_rel.parent(), target_rel.file_name()) {
                (Some(p), Some(f)) => self.resolve(p, false, &name)?.join(f),
                _ => return Err(escape(&name, "hard link to the destination root")),
            };
            return fs::hard_link(&source, &dest).context(
                Code::InvalidArgument,
                format!(
                    "archive entry '{name}': cannot link to '{}'",
                    target.display()
                ),
            );
        }
        entry.inner.unpack(&dest).context(
            Code::InternalError,
            format!("extracting archive entry '{name}'"),
        )?;
        Ok(())
    }

    /// Maps `rel` to a real directory under the root without following any
    /// symlink out of it, creating missing directories when `create`.
    fn resolve(&self, rel: &Path, create: bool, name: &str) -> Result<PathBuf> {
        let mut queue: VecDeque<Step> = steps(rel);
        let mut stack: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(step) = queue.pop_front() {
            let part = match step {
                Step::Up => {
                    if stack.pop().is_none() {
                        return Err(escape(name, "a path that climbs out"));
                    }
                    continue;
                }
                Step::Down(part) => part,
            };
            let mut here = self.root.clone();
            here.extend(&stack);
            here.push(&part);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(escape(name, "too many levels of symlinks"));
                    }
                    let target = fs::read_link(&here)?;
                    if target.has_root() {
                        return Err(escape(
                            name,
                            &format!(
                                "symlink '{}' -> '{}'",
                                rel_display(&stack, &part),
                                target.display()
                            ),
                        ));
                    }
                    // The link's target is relative to the link's directory,
                    // which is `stack`; splice its steps in front.
                    for s in steps(&target).into_iter().rev() {
                        queue.push_front(s);
                    }
                }
                Ok(m) if m.is_dir() => stack.push(part),
                Ok(_) => {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "archive entry '{name}': '{}' is not a directory",
                        rel_display(&stack, &part)
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&here).context(
                        Code::InternalError,
                        format!("archive entry '{name}': creating '{}'", here.display()),
                    )?;
                    stack.push(part);
                }
                Err(e) => {
                    return Err(ContainerizationError::new(
                        if e.kind() == io::ErrorKind::NotFound {
                            Code::InvalidArgument
                        } else {
                            Code::InternalError
                        },
                        format!(
                            "archive entry '{name}': cannot resolve '{}'",
                            rel_display(&stack, &part)
                        ),
                    )
                    .with_cause(e));
                }
            }
        }
        let mut out = self.root.clone();
        out.extend(&stack);
        Ok(out)
    }
}

/// The member's path relative to the destination; absolute paths and `..`
/// are refused.
fn member_path(path: &Path, name: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(escape(name, "an absolute path"));
            }
            Component::ParentDir => return Err(escape(name, "a path that climbs out")),
        }
    }
    Ok(out)
}

fn steps(path: &Path) -> VecDeque<Step> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Step::Down(n.to_os_string())),
            Component::ParentDir => Some(Step::Up),
            _ => None,
        })
        .collect()
}

/// Removes whatever is at `dest` unless it is a real directory and the new
/// member is one too: a member replaces earlier ones, and never writes
/// through a symlink left at its own name.
fn clear_destination(dest: &Path, is_dir: bool, name: &str) -> Result<()> {
    let removed = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && is_dir => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(dest),
        Ok(_) => fs::remove_file(dest),
    };
    removed.context(
        Code::InternalError,
        format!("archive entry '{name}': replacing '{}'", dest.display()),
    )
}

fn rel_display(stack: &[OsString], part: &OsString) -> String {
    let mut p: PathBuf = stack.iter().collect();
    p.push(part);
    p.display().to_string()
}

fn escape(name: &str, why: &str) -> ContainerizationError {
    ContainerizationError::invalid_argument(format!(
        "archive entry '{name}' would be extracted outside the destination: {why}"
    ))
}
