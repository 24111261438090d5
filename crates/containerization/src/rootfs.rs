//! Per-container root filesystem: a qcow2 copy-on-write overlay over the
//! shared image ext4, so creating one costs milliseconds whatever the
//! image size and the image snapshot is never written.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use containerization_error::{ContainerizationError, Result};

/// Default virtual size of a container root filesystem (the seed's 8 GiB).
pub const DEFAULT_ROOTFS_SIZE: u64 = 8 << 30;

/// Creates `out` as a qcow2 overlay of the raw image `base`, `size` bytes large.
/// The ext4 inside keeps the base's size; the extra space is there for a
/// later online resize.
pub async fn create_overlay(base: &Path, out: &Path, size: u64) -> Result<PathBuf> {
    let base = std::fs::canonicalize(base).map_err(|e| {
        ContainerizationError::not_found(format!("image filesystem {} not found", base.display()))
            .with_cause(e)
    })?;
    let base_len = std::fs::metadata(&base)
        .map_err(|e| ContainerizationError::internal("cannot stat base image").with_cause(e))?
        .len();
    // qcow2 cannot be smaller than its backing file's content.
    let size = size.max(base_len);
    if out.exists() {
        return Err(ContainerizationError::exists(format!(
            "{} already exists",
            out.display()
        )));
    }
    let tmp = out.with_extension("qcow2.tmp");
    let output = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&tmp)
        .arg(size.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            ContainerizationError::not_found("cannot run qemu-img (apt-get install qemu-utils)")
                .with_cause(e)
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ContainerizationError::internal(format!(
            "qemu-img create failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        ContainerizationError::internal("cannot place rootfs overlay").with_cause(e)
    })?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overlay_is_small_and_backed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.ext4");
        let f = std::fs::File::create(&base).unwrap();
        f.set_len(64 << 20).unwrap();
        let out = dir.path().join("rootfs.qcow2");
        create_overlay(&base, &out, DEFAULT_ROOTFS_SIZE)
            .await
            .unwrap();
        assert!(std::fs::metadata(&out).unwrap().len() < 1 << 20);
        let info = std::process::Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&out)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(v["virtual-size"], DEFAULT_ROOTFS_SIZE);
        assert!(
            v["backing-filename"]
                .as_str()
                .unwrap()
                .ends_with("base.ext4")
        );
        let err = create_overlay(&base, &out, DEFAULT_ROOTFS_SIZE)
            .await
            .unwrap_err();
        assert!(err.is_code(containerization_error::Code::Exists));
    }
}
