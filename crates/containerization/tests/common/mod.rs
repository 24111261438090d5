//! Shared helpers of the VM tests: locating the kernel and building a tiny
//! busybox initramfs (the bare-boot reference).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use containerization::Kernel;

/// The guest kernel, or a failure naming the script that builds it.
pub fn kernel() -> Kernel {
    match Kernel::default_kernel() {
        Ok(k) => k,
        Err(e) => panic!("{} (scripts/build-kernel.sh builds it)", e.message),
    }
}

/// Builds `dir/initfs.cpio.lz4`: busybox-static plus `/init` = `script`.
pub fn busybox_initfs(dir: &Path, script: &str) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox not found: apt-get install busybox-static (scripts/setup.sh)");
    let root = dir.join("initfs-root");
    for d in ["bin", "proc", "sys", "dev", "tmp", "mnt"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let init = root.join("init");
    std::fs::write(&init, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join("initfs.cpio.lz4");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet | lz4 -l -q > '{}'",
            root.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "cpio/lz4 failed building the test initfs");
    out
}

/// Whether a process with this pid is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

/// The workspace's top directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `dir/busybox.tar`: the busybox test image of
/// scripts/build-busybox-image.sh as an OCI archive named `reference`.
pub fn busybox_archive(dir: &Path, reference: &str) -> PathBuf {
    let layout = dir.join("busybox-layout");
    let script = workspace().join("scripts/build-busybox-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&layout)
        .arg(reference)
        .output()
        .expect("run scripts/build-busybox-image.sh");
    assert!(
        out.status.success(),
        "scripts/build-busybox-image.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = dir.join("busybox.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "archiving the busybox layout failed");
    tar
}

/// Loads the busybox test image into the image store at `root`; returns
/// its reference.
pub fn load_busybox_image(root: &Path) -> String {
    let reference = "localhost/vmm-test/busybox:latest";
    let tar = busybox_archive(root, reference);
    let store = containerization_oci::ImageStore::open(root).unwrap();
    let images = store.load(&tar).unwrap();
    assert_eq!(
        images.len(),
        1,
        "busybox layout should hold one named image"
    );
    reference.to_string()
}

/// The initfs, or a failure naming the script that builds it.
pub fn initfs() -> PathBuf {
    match containerization::default_initfs() {
        Ok(p) => p,
        Err(e) => panic!("{}", e.message),
    }
}
