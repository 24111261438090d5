//! One member of a tar archive: its metadata and its data stream.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

/// The type of an archive member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file (including contiguous files).
    File,
    /// A directory.
    Directory,
    /// A symbolic link; the target is in `EntryInfo::link_name`.
    Symlink,
    /// A hard link to an earlier member named by `EntryInfo::link_name`.
    Hardlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// Anything else (vendor extensions); skipped by extraction.
    Other,
}

/// Metadata of an archive member, with long names and PAX records applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Path inside the archive, as stored (may start with `./`).
    pub path: PathBuf,
    /// Member type.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Size of the data in bytes (0 for non-files).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Target of a symlink or hardlink.
    pub link_name: Option<PathBuf>,
    /// Device numbers for character and block devices.
    pub device: Option<(u32, u32)>,
    /// Extended attributes from PAX `SCHILY.xattr.*` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryInfo {
    /// The path with `./` and leading `/` removed, the form used to compare
    /// member names; `None` when the path climbs out with `..`.
    pub fn normalized_path(&self) -> Option<PathBuf> {
        normalize(&self.path)
    }
}

/// Strips `.` and root components; refuses `..` (returns `None`).
pub(crate) fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// A member being read from an archive; `Read` yields its data.
pub struct ArchiveEntry<'a> {
    pub(crate) inner: tar::Entry<'a, Box<dyn Read + Send>>,
    pub(crate) info: EntryInfo,
}

impl<'a> ArchiveEntry<'a> {
    pub(crate) fn new(mut inner: tar::Entry<'a, Box<dyn Read + Send>>) -> Result<Self> {
        let info = read_info(&mut inner)?;
        Ok(Self { inner, info })
    }

    /// The member's metadata.
    pub fn info(&self) -> &EntryInfo {
        &self.info
    }
}

impl Read for ArchiveEntry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

fn read_info(e: &mut tar::Entry<'_, Box<dyn Read + Send>>) -> Result<EntryInfo> {
    let path = e
        .path()
        .context(
            Code::InvalidArgument,
            "archive entry has an unreadable path",
        )?
        .into_owned();
    let bad = |what: &str, err: io::Error| {
        ContainerizationError::invalid_argument(format!(
            "archive entry '{}' has an invalid {what}",
            path.display()
        ))
        .with_cause(err)
    };
    let h = e.header();
    let et = h.entry_type();
    let kind = if et.is_file() || et.is_contiguous() {
        EntryKind::File
    } else if et.is_dir() {
        EntryKind::Directory
    } else if et.is_symlink() {
        EntryKind::Symlink
    } else if et.is_hard_link() {
        EntryKind::Hardlink
    } else if et.is_character_special() {
        EntryKind::CharDevice
    } else if et.is_block_special() {
        EntryKind::BlockDevice
    } else if et.is_fifo() {
        EntryKind::Fifo
    } else {
        EntryKind::Other
    };
    let mode = h.mode().map_err(|err| bad("mode", err))?;
    // Blank owner fields mean 0, as Go's archive/tar reads them.
    let uid = h.uid().unwrap_or(0);
    let gid = h.gid().unwrap_or(0);
    let mtime = h.mtime().unwrap_or(0);
    let device = match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            let major = h.device_major().map_err(|err| bad("device number", err))?;
            let minor = h.device_minor().map_err(|err| bad("device number", err))?;
            Some((major.unwrap_or(0), minor.unwrap_or(0)))
        }
        _ => None,
    };
    let size = if kind == EntryKind::File { e.size() } else { 0 };
    let link_name = e
        .link_name()
        .map_err(|err| bad("link name", err))?
        .map(|l| l.into_owned());
    let mut xattrs = Vec::new();
    if let Some(exts) = e.pax_extensions().map_err(|err| bad("PAX header", err))? {
        for ext in exts {
            let ext = ext.map_err(|err| bad("PAX header", err))?;
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(EntryInfo {
        path,
        kind,
        mode,
        uid,
        gid,
        size,
        mtime,
        link_name,
        device,
        xattrs,
    })
}
