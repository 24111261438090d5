//! Another architecture through the library alone: a `ContainerManager`
//! whose `platform` is linux/arm64 picks that variant of a multi-platform
//! image and sets the container's `emulator`. One VM. Needs
//! qemu-user-static and busybox-static:arm64 (scripts/setup.sh).

mod common;

use std::process::Command;
use std::time::Duration;

use containerization::{ContainerManager, Emulator, Mount, Stdio};
use containerization_oci::Platform;

/// Loads the busybox-multi index (linux/amd64 + linux/arm64/v8) into the
/// store at `root`; returns its reference.
fn load_multi_image(root: &std::path::Path) -> String {
    let reference = "localhost/emulator-test/busybox-multi:latest";
    let scripts = common::workspace().join("scripts");
    for (script, args) in [
        ("fetch-busybox-arm64.sh", vec![]),
        (
            "build-busybox-image.sh",
            vec![
                root.join("layout").to_string_lossy().into_owned(),
                reference.to_string(),
                "multi".to_string(),
            ],
        ),
    ] {
        let out = Command::new("bash")
            .arg(scripts.join(script))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/{script} failed (scripts/setup.sh installs its prerequisites): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tar = root.join("multi.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(root.join("layout"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let store = containerization_oci::ImageStore::open(root).unwrap();
    assert_eq!(store.load(&tar).unwrap().len(), 1);
    reference.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_platform_runs_the_arm64_variant_emulated() {
    let root = tempfile::tempdir().unwrap();
    let reference = load_multi_image(root.path());
    let initfs = Mount::block("cpio", common::initfs(), "/", vec![]);
    let mut manager =
        ContainerManager::with_root(common::kernel(), initfs, Some(root.path().into()), None)
            .unwrap();
    let arm64 = Platform::parse("linux/arm64").unwrap();
    manager.platform = Some(arm64.clone());
    let (out, buf) = Stdio::buffer();
    let c = manager
        .create("arm", &reference, None, |c| {
            assert_eq!(
                c.emulator.as_ref().map(Emulator::architecture),
                Some("arm64"),
                "the manager set the emulator"
            );
            c.process.args = vec!["/bin/sh".into(), "-c".into(), "uname -m".into()];
            c.process.stdout = out;
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    c.start().await.unwrap();
    let status = c.wait(Some(Duration::from_secs(120))).await.unwrap();
    c.stop().await.unwrap();
    assert_eq!(
        (status.exit_code, buf.text().trim().to_string()),
        (0, "aarch64".to_string())
    );
    manager.delete("arm").await.unwrap();
    // (An amd64 snapshot would have printed x86_64.) The emulator's disk
    // image stays in the cache for the next container.
    let cached = std::fs::read_dir(root.path().join("emulators"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);
}
