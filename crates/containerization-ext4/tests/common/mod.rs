//! Helpers shared by the integration tests: e2fsck and debugfs wrappers.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `e2fsck -fn` and panics with its output unless it exits 0.
pub fn fsck(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("e2fsck not found: install e2fsprogs (apt-get install e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck -fn {} failed ({}):\n{}\n{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one debugfs request against `image` and returns its stdout.
pub fn debugfs(image: &Path, request: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .expect("debugfs not found: install e2fsprogs (apt-get install e2fsprogs)");
    assert!(
        out.status.success(),
        "debugfs -R {request:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
