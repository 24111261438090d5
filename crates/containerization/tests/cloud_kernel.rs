//! The fallback guest kernel: Debian's cloud kernel (virtio, vsock, overlay
//! ... as modules) booted through the library, which appends the modules to
//! the initfs, and vminitd, which loads them. Real QEMU (TCG here), the real
//! agent over vhost-user vsock. Also measures boot-to-agent-ready against our
//! built kernel in the same run. Skipped only when the package
//! `linux-image-cloud-amd64` is not installed.

mod common;

use std::time::{Duration, Instant};

use containerization::vmm::{QemuVirtualMachineManager, VirtualMachineManager, VmConfig};
use containerization::{ContainerManager, Kernel, Mount, Stdio, SystemPlatform};
use vminitd_api::Vminitd;

fn cloud_kernel() -> Option<Kernel> {
    match Kernel::cloud_kernel_path() {
        Some(p) => Some(Kernel::new(p, SystemPlatform::linux_amd64())),
        None => {
            eprintln!(
                "SKIP: Debian's cloud kernel is not installed \
                 (apt-get install linux-image-cloud-amd64, or scripts/setup.sh)"
            );
            None
        }
    }
}

/// Boots `kernel` with the default initfs; returns the time from QEMU's
/// start to the agent's first answered Ping, and the boot log.
async fn boot_to_agent_ready(
    kernel: &Kernel,
    dir: &std::path::Path,
    n: usize,
) -> (Duration, String) {
    let vmm = QemuVirtualMachineManager::new(kernel.clone(), common::initfs());
    let mut cfg = VmConfig::new(format!("cloudk-{n}"));
    let log = dir.join(format!("boot-{n}.log"));
    cfg.bootlog = Some(log.clone());
    let mut vm = vmm.create(cfg).await.unwrap();
    let started = Instant::now();
    vm.start().await.unwrap();
    let conn = vm
        .dial_vsock(Vminitd::PORT, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "agent unreachable over vsock: {e}\nboot log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    let agent = Vminitd::from_stream(conn).await.unwrap();
    agent.ping().await.expect("ping over vsock");
    let ready = started.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(20), vm.wait()).await;
    vm.stop().await.unwrap();
    (ready, std::fs::read_to_string(&log).unwrap_or_default())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_kernel_boots_a_container_with_modules_from_the_initfs() {
    let Some(cloud) = cloud_kernel() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // Agent readiness over vsock, cloud kernel vs ours (same run). One boot
    // of each in CI; CLOUD_KERNEL_RUNS=5 for medians worth quoting.
    let runs: usize = std::env::var("CLOUD_KERNEL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut cloud_times = Vec::new();
    let mut log = String::new();
    for n in 0..runs {
        let (t, l) = boot_to_agent_ready(&cloud, dir.path(), n).await;
        cloud_times.push(t);
        log = l;
    }
    assert!(
        log.contains("kernel modules in"),
        "vminitd did not report loading modules: {log}"
    );
    let built = [
        "/usr/local/share/container/vmlinux",
        "/var/cache/container-kernel/vmlinux-current",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists());
    let cloud_ms = median(cloud_times.clone()).as_millis();
    match built {
        Some(path) => {
            let ours = Kernel::new(path, SystemPlatform::linux_amd64());
            let mut times = Vec::new();
            for n in 0..runs {
                times.push(boot_to_agent_ready(&ours, dir.path(), 100 + n).await.0);
            }
            let ours_ms = median(times.clone()).as_millis();
            println!(
                "boot to agent ready, median of {runs}: cloud kernel {cloud_ms} ms {cloud_times:?}, \
                 built kernel {ours_ms} ms {times:?}, ratio {:.2}",
                cloud_ms as f64 / ours_ms.max(1) as f64
            );
        }
        None => println!(
            "boot to agent ready, median of {runs}: cloud kernel {cloud_ms} ms {cloud_times:?} \
             (no built kernel to compare with)"
        ),
    }
    let loaded = log
        .lines()
        .find(|l| l.contains("kernel modules in"))
        .unwrap_or_default();
    println!("cloud kernel guest: {}", loaded.trim());

    // A container on the cloud kernel: its /proc/version, a file written on
    // the rootfs (virtio-blk + ext4 + overlay), all through the agent.
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let reference = common::load_busybox_image(&root);
    let initfs = Mount::block("cpio", common::initfs(), "/", vec![]);
    let manager = ContainerManager::with_root(cloud, initfs, Some(root.clone()), None).unwrap();
    let (out, out_buf) = Stdio::buffer();
    let (err, err_buf) = Stdio::buffer();
    let c = manager
        .create("cloudk", &reference, None, |c| {
            c.process.args = vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat /proc/version; echo written-on-rootfs > /hello; cat /hello".into(),
            ];
            c.process.stdout = out;
            c.process.stderr = err;
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    c.start().await.unwrap();
    let status = c.wait(Some(Duration::from_secs(120))).await.unwrap();
    let (out, err) = (out_buf.text(), err_buf.text());
    assert_eq!(status.exit_code, 0, "stdout: {out} stderr: {err}");
    assert!(out.contains("cloud-amd64"), "not the cloud kernel: {out}");
    assert!(out.ends_with("written-on-rootfs\n"), "{out}");
    c.stop().await.unwrap();
    manager.delete("cloudk").await.unwrap();
}
