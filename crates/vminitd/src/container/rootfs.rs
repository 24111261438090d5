//! The container's filesystem view, built inside its new mount namespace:
//! the spec's mounts under `root.path`, /dev nodes, pivot_root, masked and
//! read-only paths.

use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use oci_spec::runtime::Spec;

use crate::sys;

/// Result of a setup step inside vmexec.
pub type StepResult<T = ()> = Result<T, String>;

/// Device nodes every container gets when /dev is a fresh tmpfs.
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Joins `rel` (absolute inside the container) to `root`, refusing `..`.
pub fn in_root(root: &Path, rel: &Path) -> StepResult<PathBuf> {
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("path {} leaves the container root", rel.display()));
            }
        }
    }
    Ok(out)
}

/// One of the spec's mounts, as `setup` performs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountStep {
    /// Where, inside the container root.
    pub dest: PathBuf,
    /// File system type (`cgroup` becomes `cgroup2`).
    pub typ: String,
    /// Source (the type when the spec has none).
    pub source: String,
    /// fstab-style options.
    pub options: Vec<String>,
    /// A bind mount (by type or option).
    pub bind: bool,
    /// A failure is ignored (optional kernel features: mqueue, cgroup2).
    pub optional: bool,
    /// The mount is a tmpfs on /dev, to be populated with device nodes.
    pub dev_tmpfs: bool,
}

/// The spec's mounts under `root`, checked (no destination leaves the
/// root) but not performed.
pub fn mount_plan(spec: &Spec, root: &Path) -> StepResult<Vec<MountStep>> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let dest = in_root(root, m.destination())?;
        let typ = m.typ().clone().unwrap_or_default();
        let options = m.options().clone().unwrap_or_default();
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.clone());
        let bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        let dev_tmpfs = m.destination() == Path::new("/dev") && typ == "tmpfs";
        let (typ, source) = match typ.as_str() {
            // The VM runs cgroup v2 only.
            "cgroup" => ("cgroup2".to_string(), "cgroup2".to_string()),
            _ => (typ, source),
        };
        let optional = matches!(typ.as_str(), "mqueue" | "cgroup2");
        out.push(MountStep {
            dest,
            typ,
            source,
            options,
            bind,
            optional,
            dev_tmpfs,
        });
    }
    Ok(out)
}

/// One of the spec's device nodes, as `setup` creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStep {
    /// Where, inside the container root.
    pub path: PathBuf,
    /// Block, character or FIFO.
    pub kind: SFlag,
    /// Permission bits.
    pub mode: Mode,
    /// Device number.
    pub dev: u64,
}

/// The spec's `linux.devices` under `root`, checked but not created.
pub fn device_plan(spec: &Spec, root: &Path) -> StepResult<Vec<DeviceStep>> {
    spec.linux()
        .iter()
        .flat_map(|l| l.devices().iter().flatten())
        .map(|d| {
            Ok(DeviceStep {
                path: in_root(root, d.path())?,
                kind: match d.typ() {
                    oci_spec::runtime::LinuxDeviceType::B => SFlag::S_IFBLK,
                    oci_spec::runtime::LinuxDeviceType::P => SFlag::S_IFIFO,
                    _ => SFlag::S_IFCHR,
                },
                mode: Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666)),
                dev: makedev(d.major() as u64, d.minor() as u64),
            })
        })
        .collect()
}

/// Builds the container's root and pivots into it.
pub fn setup(spec: &Spec) -> StepResult {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or("the spec has no root.path")?;
    let root = std::fs::canonicalize(&root)
        .map_err(|e| format!("container root {}: {e}", root.display()))?;
    // Keep the container's mounts out of the agent's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make / private: {e}"))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(&root),
        &root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot bind {}: {e}", root.display()))?;
    let mounts = mount_plan(spec, &root)?;
    for m in &mounts {
        if m.bind && Path::new(&m.source).is_file() {
            if let Some(parent) = m.dest.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if !m.dest.exists() {
                let _ = std::fs::File::create(&m.dest);
            }
        } else {
            let _ = std::fs::create_dir_all(&m.dest);
        }
        if let Err(e) = sys::mount_with_options(&m.typ, &m.source, &m.dest, &m.options) {
            if m.optional {
                continue;
            }
            return Err(e.to_string());
        }
    }
    if mounts.iter().any(|m| m.dev_tmpfs) {
        populate_dev(&root.join("dev"))?;
    }
    for d in device_plan(spec, &root)? {
        let _ = std::fs::remove_file(&d.path);
        mknod(&d.path, d.kind, d.mode, d.dev)
            .map_err(|e| format!("mknod {}: {e}", d.path.display()))?;
    }
    pivot(&root)?;
    if let Some(linux) = spec.linux() {
        for p in linux.masked_paths().iter().flatten() {
            mask(Path::new(p))?;
        }
        for p in linux.readonly_paths().iter().flatten() {
            read_only(Path::new(p))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| format!("cannot make the root read-only: {e}"))?;
    }
    Ok(())
}

/// Creates the standard device nodes and links in a tmpfs /dev.
fn populate_dev(dev: &Path) -> StepResult {
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        if path.exists() {
            continue;
        }
        let made = mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        );
        if made.is_err() {
            // Without CAP_MKNOD (nested setups) bind the agent's node instead.
            let _ = std::fs::File::create(&path);
            let host = Path::new("/dev").join(name);
            mount(
                Some(&host),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("cannot create /dev/{name}: {e}"))?;
        }
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    for (name, target) in links {
        let path = dev.join(name);
        if path.symlink_metadata().is_err() {
            symlink(target, &path).map_err(|e| format!("cannot link /dev/{name}: {e}"))?;
        }
    }
    Ok(())
}

/// pivot_root into `root` and drop the old root.
fn pivot(root: &Path) -> StepResult {
    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(|e| format!("cannot detach the old root: {e}"))?;
        }
        // The agent's root is the initramfs itself (rootfs cannot be
        // pivoted away): fall back to move + chroot, as runc's no-pivot mode.
        Err(nix::errno::Errno::EINVAL) => {
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .map_err(|e| format!("cannot move the root: {e}"))?;
            nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
        }
        Err(e) => return Err(format!("pivot_root: {e}")),
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Hides a path: /dev/null over files, an empty read-only tmpfs over directories.
fn mask(path: &Path) -> StepResult {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let result = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(|e| format!("cannot mask {}: {e}", path.display()))
}

/// Makes a path read-only with a bind remount.
fn read_only(path: &Path) -> StepResult {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make {} read-only: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_root_refuses_parent_components() {
        assert_eq!(
            in_root(Path::new("/r"), Path::new("/dev/pts")).unwrap(),
            PathBuf::from("/r/dev/pts")
        );
        assert!(in_root(Path::new("/r"), Path::new("/../etc")).is_err());
    }
}
