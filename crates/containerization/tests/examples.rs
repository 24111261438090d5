//! Runs the seed-section examples (12.1, 12.2) against the busybox test image.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples one level up.
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "example {name} not built (cargo test builds examples)"
    );
    p
}

#[test]
fn seed_examples_run() {
    let root = tempfile::tempdir().unwrap();
    let reference = common::load_busybox_image(root.path());
    let out = Command::new(example("run_container"))
        .arg(&reference)
        .args(["sh", "-c", "echo from-12.1"])
        .env("CONTAINER_ROOT", root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("from-12.1") && stdout.contains("exited with code: 0"),
        "{stdout}"
    );

    let out = Command::new(example("exec_process"))
        .arg(&reference)
        .env("CONTAINER_ROOT", root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hello from exec-example") && stdout.contains("/root"),
        "{stdout}"
    );
}
