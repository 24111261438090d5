//! The QEMU backend on its own: boot, QMP control, power-off, and no orphan
//! VM or file when the owner is SIGKILLed. Real QEMU (TCG here).

mod common;

use std::time::Duration;

use containerization::vmm::{QemuVirtualMachineManager, VirtualMachineManager, VmConfig, VmState};

#[tokio::test]
async fn boot_pause_resume_poweroff() {
    let dir = tempfile::tempdir().unwrap();
    // The guest counts ticks to the console until /tmp/stop... it cannot see
    // the host, so it simply runs for a while and powers off by itself.
    let initfs = common::busybox_initfs(
        dir.path(),
        "/bin/busybox echo BOOT-OK\n/bin/busybox sleep 3\n/bin/busybox echo BYE\n/bin/busybox poweroff -f",
    );
    let mut vmm = QemuVirtualMachineManager::new(common::kernel(), &initfs);
    vmm.init_path = "/init".into();
    let mut cfg = VmConfig::new("vmm-test");
    cfg.bootlog = Some(dir.path().join("boot.log"));
    let mut vm = vmm.create(cfg).await.unwrap();
    vm.start().await.unwrap();
    assert_eq!(vm.state().await.unwrap(), VmState::Running);
    vm.pause().await.unwrap();
    assert_eq!(vm.state().await.unwrap(), VmState::Paused);
    vm.resume().await.unwrap();
    assert_eq!(vm.state().await.unwrap(), VmState::Running);
    tokio::time::timeout(Duration::from_secs(60), vm.wait())
        .await
        .expect("guest did not power off")
        .unwrap();
    assert_eq!(vm.state().await.unwrap(), VmState::Stopped);
    let log = std::fs::read_to_string(dir.path().join("boot.log")).unwrap();
    assert!(
        log.contains("BOOT-OK") && log.contains("BYE"),
        "boot log: {log}"
    );
    vm.stop().await.unwrap();
}

/// Child half of `owner_killed_leaves_nothing`: starts a VM that never ends,
/// prints its pids and runtime files, then waits to be killed.
#[tokio::test]
async fn orphan_child_helper() {
    let Ok(dir) = std::env::var("VMM_ORPHAN_CHILD_DIR") else {
        return; // only meaningful when spawned by the test below
    };
    let dir = std::path::PathBuf::from(dir);
    let initfs = common::busybox_initfs(&dir, "/bin/busybox sleep 1000");
    let mut vmm = QemuVirtualMachineManager::new(common::kernel(), &initfs);
    vmm.init_path = "/init".into();
    vmm.runtime_dir = dir.join("run");
    let mut vm = vmm.create(VmConfig::new("orphan")).await.unwrap();
    vm.start().await.unwrap();
    let pids: Vec<String> = vm.pids().iter().map(|p| p.to_string()).collect();
    println!("PIDS {}", pids.join(","));
    std::fs::write(dir.join("pids"), pids.join(",")).unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[test]
fn owner_killed_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "orphan_child_helper", "--nocapture"])
        .env("VMM_ORPHAN_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids_file = dir.path().join("pids");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pids_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "child never started its VM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    let pids: Vec<u32> = std::fs::read_to_string(&pids_file)
        .unwrap()
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.len() >= 2,
        "expected qemu and vhost-device-vsock: {pids:?}"
    );
    let run = dir.path().join("run");
    assert_eq!(
        std::fs::read_dir(&run).unwrap().count(),
        1,
        "one VM dir while running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| common::alive(*p)).collect();
        let files = std::fs::read_dir(&run).unwrap().count();
        if left.is_empty() && files == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the owner died: processes {left:?} alive, {files} VM dirs left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
