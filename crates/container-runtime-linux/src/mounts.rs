//! The container's `-v`/`--mount`/`--tmpfs` mounts as library mounts, and
//! its `--ulimit`/`--cap-add`/`--cap-drop` as process settings.

use std::path::Path;
use std::process::{Command, Stdio};

use container_api::StateRoot;
use container_api::config::{MountKind, MountSpec};
use containerization::Mount;
use containerization_error::{ContainerizationError, Result};

/// Options Docker gives a `--tmpfs` mount unless told otherwise.
const TMPFS_DEFAULTS: [&str; 3] = ["nosuid", "nodev", "noexec"];

/// Maps each mount to how the VM gets it: a volume's ext4 image on
/// virtio-blk, a host path over virtio-fs, a tmpfs made in the guest.
pub(crate) fn library_mounts(root: &StateRoot, specs: &[MountSpec]) -> Result<Vec<Mount>> {
    specs.iter().map(|m| library_mount(root, m)).collect()
}

fn library_mount(root: &StateRoot, m: &MountSpec) -> Result<Mount> {
    let mut options = Vec::new();
    if m.read_only {
        options.push("ro".to_string());
    }
    Ok(match m.kind {
        MountKind::Volume => {
            let image = root.volume_dir(&m.source).join("volume.img");
            if !image.is_file() {
                return Err(ContainerizationError::not_found(format!(
                    "volume '{}' no longer exists",
                    m.source
                )));
            }
            if m.read_only {
                // The image is attached read-only: never replay a journal
                // left by an unclean stop (that would write).
                options.push("noload".into());
            } else {
                // Only a writable mount is exclusive (the apiserver checks
                // that before a start), so only then may the image be fixed.
                repair_volume(&m.source, &image)?;
            }
            Mount::block("ext4", image, &m.destination, options)
        }
        MountKind::Bind => {
            if std::fs::metadata(&m.source).is_err() {
                return Err(ContainerizationError::not_found(format!(
                    "bind mount source {} does not exist",
                    m.source
                )));
            }
            Mount::share(&m.source, &m.destination, options)
        }
        MountKind::Tmpfs => {
            options.extend(TMPFS_DEFAULTS.iter().map(|s| s.to_string()));
            options.extend(m.options.iter().cloned());
            Mount::any("tmpfs", "tmpfs", &m.destination, options)
        }
    })
}

/// Runs `e2fsck -p` on a volume image whose superblock records an error
/// (an I/O error such as a full host disk under a write, which aborts the
/// guest's journal): the guest kernel would mount it, but with the error
/// flag set and whatever the failed writes left. A clean image, the common
/// case, costs two small reads. A repair `e2fsck -p` cannot make safely
/// is refused with the command that can.
fn repair_volume(name: &str, image: &Path) -> Result<()> {
    let health = containerization_ext4::Health::of(image)?;
    if !health.needs_check() {
        return Ok(());
    }
    tracing::warn!(
        volume = name,
        ?health,
        "volume has recorded errors, running e2fsck -p"
    );
    let out = Command::new("e2fsck")
        .arg("-p")
        .arg(image)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Err(ContainerizationError::unsupported(format!(
                "volume '{name}' has recorded file system errors and e2fsck could not run ({e}): install e2fsprogs, or check {} by hand",
                image.display()
            )));
        }
    };
    // 0: clean, 1: errors corrected, 2: corrected (reboot, for a root fs).
    match out.status.code() {
        Some(0..=2) => {
            tracing::info!(volume = name, "e2fsck -p repaired the volume");
            Ok(())
        }
        _ => {
            let said = String::from_utf8_lossy(&out.stdout);
            let said = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(ContainerizationError::invalid_state(format!(
                "volume '{name}' has file system errors that e2fsck -p cannot repair safely ({}): run e2fsck -fy {} with no container using it, or remove the volume",
                said.trim(),
                image.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerization::RuntimeOptions;

    #[test]
    fn kinds_map_to_devices() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        std::fs::create_dir_all(root.volume_dir("v")).unwrap();
        std::fs::write(root.volume_dir("v").join("volume.img"), b"").unwrap();
        let specs = vec![
            MountSpec {
                kind: MountKind::Volume,
                source: "v".into(),
                destination: "/data".into(),
                read_only: true,
                options: vec![],
            },
            MountSpec {
                kind: MountKind::Bind,
                source: dir.path().to_string_lossy().into_owned(),
                destination: "/host".into(),
                read_only: false,
                options: vec![],
            },
            MountSpec {
                kind: MountKind::Tmpfs,
                source: String::new(),
                destination: "/tmp".into(),
                read_only: false,
                options: vec!["size=1m".into(), "exec".into()],
            },
        ];
        let m = library_mounts(&root, &specs).unwrap();
        assert!(matches!(m[0].runtime_options, RuntimeOptions::Virtioblk(_)));
        assert_eq!(m[0].options, ["ro", "noload"]);
        assert!(matches!(m[1].runtime_options, RuntimeOptions::Virtiofs(_)));
        assert_eq!(
            m[2].options,
            ["nosuid", "nodev", "noexec", "size=1m", "exec"]
        );
        let missing = MountSpec {
            source: "gone".into(),
            ..specs[0].clone()
        };
        assert!(library_mounts(&root, &[missing]).is_err());
    }
}
