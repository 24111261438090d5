//! The task's root filesystem: containerd's snapshot mounts are mounted on the
//! host, copied into an ext4 image by our userspace formatter, and unmounted
//! again; the image becomes the VM's root block device.
//!
//! Why a copy and not virtiofs: see the crate README ("Rootfs").

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use containerization_error::{ContainerizationError, Result};
use containerization_ext4::{DeviceKind, FormatOptions, Formatter, Metadata, Timestamp};
use nix::mount::{MntFlags, MsFlags};

/// Free space the image gets on top of the copied tree (the file is sparse,
/// so unused space costs nothing on the host).
pub const HEADROOM: u64 = 1 << 30;

/// One mount as containerd describes it (`containerd.types.Mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    /// `overlay`, `bind`, `ext4`, ...
    pub kind: String,
    /// Source (a path, or `overlay`).
    pub source: String,
    /// mount(8)-style options.
    pub options: Vec<String>,
}

/// What a conversion copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// Entries (files, dirs, links, nodes) copied.
    pub entries: u64,
    /// File bytes copied.
    pub bytes: u64,
    /// Size of the (sparse) image.
    pub image_size: u64,
}

/// Splits mount(8) options into flags and the data string the filesystem
/// parses (`lowerdir=...,upperdir=...`).
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

/// Mounts containerd's rootfs mounts, in order, on `target`.
pub fn mount_all(mounts: &[RootfsMount], target: &Path) -> Result<()> {
    for m in mounts {
        let (flags, data) = parse_options(&m.options);
        let kind = if flags.contains(MsFlags::MS_BIND) {
            None
        } else {
            Some(m.kind.as_str())
        };
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(m.source.as_str()), target, kind, flags, data).map_err(|e| {
            ContainerizationError::internal(format!(
                "cannot mount the {} rootfs from {} on {}",
                m.kind,
                m.source,
                target.display()
            ))
            .with_cause(e)
        })?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            // A bind mount ignores MS_RDONLY until it is remounted.
            let _ = nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    Ok(())
}

/// Unmounts everything on `target` (no error when nothing is mounted).
pub fn unmount_all(target: &Path) -> Result<()> {
    loop {
        match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(ContainerizationError::internal(format!(
                    "cannot unmount {}",
                    target.display()
                ))
                .with_cause(e));
            }
        }
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ContainerizationError {
    ContainerizationError::internal(format!("cannot {what} {}", path.display())).with_cause(e)
}

fn timestamp(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

fn metadata_of(m: &fs::Metadata) -> Metadata {
    let mut meta = Metadata::with_mode((m.mode() & 0o7777) as u16);
    meta.uid = m.uid();
    meta.gid = m.gid();
    meta.atime = timestamp(m.atime(), m.atime_nsec());
    meta.mtime = timestamp(m.mtime(), m.mtime_nsec());
    meta.ctime = timestamp(m.ctime(), m.ctime_nsec());
    meta.crtime = meta.mtime;
    meta
}

/// Bytes the tree at `dir` needs, rounded up per entry to whole blocks.
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| io_err("read directory", &d, e))? {
            let entry = entry.map_err(|e| io_err("read directory", &d, e))?;
            let m = entry
                .metadata()
                .map_err(|e| io_err("stat", &entry.path(), e))?;
            total += m.len().div_ceil(4096) * 4096 + 4096;
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Copies the directory tree at `dir` (owners, modes, times, symlinks,
/// hard links, device nodes, fifos) into a new ext4 image `out`.
pub fn directory_to_ext4(dir: &Path, out: &Path) -> Result<ConvertStats> {
    let size = (tree_size(dir)? + HEADROOM).div_ceil(1 << 20) << 20;
    let mut f = Formatter::create(out, size, FormatOptions::default())?;
    let root_meta = fs::metadata(dir).map_err(|e| io_err("stat", dir, e))?;
    f.create_dir("/", metadata_of(&root_meta))?;
    let mut stats = ConvertStats {
        image_size: size,
        ..Default::default()
    };
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    copy_dir(&mut f, dir, Path::new("/"), &mut links, &mut stats)?;
    f.close()?;
    Ok(stats)
}

fn copy_dir(
    f: &mut Formatter,
    host: &Path,
    image: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    stats: &mut ConvertStats,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(host)
        .map_err(|e| io_err("read directory", host, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| io_err("read directory", host, e))?;
    // Sorted, so the same tree gives the same image.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let src = entry.path();
        let dst = image.join(entry.file_name());
        let m = fs::symlink_metadata(&src).map_err(|e| io_err("stat", &src, e))?;
        let meta = metadata_of(&m);
        let ft = m.file_type();
        stats.entries += 1;
        if ft.is_dir() {
            f.create_dir(&dst, meta)?;
            copy_dir(f, &src, &dst, links, stats)?;
            continue;
        }
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                f.create_hardlink(&dst, first)?;
                continue;
            }
            links.insert((m.dev(), m.ino()), dst.clone());
        }
        if ft.is_file() {
            let mut file = fs::File::open(&src).map_err(|e| io_err("open", &src, e))?;
            stats.bytes += f.create_file(&dst, meta, &mut file)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| io_err("read link", &src, e))?;
            f.create_symlink(&dst, target.as_os_str(), meta)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                DeviceKind::Char
            } else {
                DeviceKind::Block
            };
            let rdev = m.rdev();
            f.create_device(&dst, kind, libc::major(rdev), libc::minor(rdev), meta)?;
        } else if ft.is_fifo() {
            f.create_fifo(&dst, meta)?;
        } else if ft.is_socket() {
            f.create_socket(&dst, meta)?;
        }
        copy_xattrs(f, &src, &dst);
    }
    Ok(())
}

/// Copies `security.capability` (file capabilities, e.g. of `ping`); other
/// attributes of image files are rare and not needed to run them.
fn copy_xattrs(f: &mut Formatter, src: &Path, dst: &Path) {
    let name = c"security.capability";
    let Ok(path) = std::ffi::CString::new(src.as_os_str().as_bytes()) else {
        return;
    };
    let mut buf = [0u8; 256];
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // buffer pointer and length describe `buf`, which the kernel fills.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n > 0 {
        let _ = f.set_xattr(dst, "security.capability", &buf[..n as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerization_ext4::Ext4;

    #[test]
    fn options_split_into_flags_and_data() {
        let (flags, data) =
            parse_options(&["index=off".into(), "ro".into(), "lowerdir=/a:/b".into()]);
        assert!(flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(data, "index=off,lowerdir=/a:/b");
        let (flags, data) = parse_options(&["rbind".into()]);
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert!(data.is_empty());
    }

    #[test]
    fn tree_round_trips_through_ext4() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/busybox"), b"#!binary").unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
        fs::hard_link(root.join("bin/busybox"), root.join("bin/ls")).unwrap();
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let out = dir.path().join("rootfs.ext4");
        let stats = directory_to_ext4(&root, &out).unwrap();
        assert_eq!(stats.entries, 5);
        assert_eq!(stats.bytes, 8);
        let fs = Ext4::open(&out).unwrap();
        assert_eq!(fs.read_file("/bin/busybox").unwrap(), b"#!binary");
        assert_eq!(fs.read_file("/bin/ls").unwrap(), b"#!binary");
        assert_eq!(fs.read_link("/bin/sh").unwrap(), PathBuf::from("busybox"));
        assert_eq!(
            fs.stat("/bin/ls").unwrap().ino,
            fs.stat("/bin/busybox").unwrap().ino
        );
        containerization_ext4::e2fsck_check(&out).unwrap_or_else(|e| panic!("{e}"));
    }
}
