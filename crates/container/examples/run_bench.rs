//! Bench (not a test): `container run --rm IMAGE true` through the daemon,
//! the same container through the library alone (`LinuxContainer`), and a
//! bare boot-and-power-off of the same kernel, interleaved N times (default
//! 5) in one invocation; prints medians and the ratios daemon/library and
//! daemon/bare.
//!
//! `cargo build -p container --bins && cargo run -p container --example run_bench -- [N]`
//! Needs the kernel (scripts/build-kernel.sh), the initfs
//! (scripts/build-initfs.sh) and busybox-static.

/// The library's VM test helpers (busybox archive, bare-boot initramfs).
#[path = "../../containerization/tests/common/mod.rs"]
mod vm_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerization::vmm::{QemuVirtualMachineManager, VirtualMachineManager, VmConfig};
use containerization::{ContainerManager, Kernel, Mount};

const REFERENCE: &str = "localhost/bench/busybox:latest";

/// The `container` binary beside this example (target/<profile>/).
fn cli_binary() -> PathBuf {
    let me = std::env::current_exe().expect("locating this example");
    let bin = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("container"))
        .expect("target directory");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p container --bins` (same profile) first",
        bin.display()
    );
    bin
}

/// The CLI on state root `root`, checked for success.
fn cli(bin: &Path, root: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .env("CONTAINER_ROOT", root)
        .env("CONTAINER_DEFAULT_SUBNET", "none")
        .stdin(Stdio::null())
        .output()
        .expect("running container");
    assert!(
        out.status.success(),
        "`container {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn bare_boot(vmm: &QemuVirtualMachineManager) -> Duration {
    let t = Instant::now();
    let mut vm = vmm.create(VmConfig::new("bare")).await.unwrap();
    vm.start().await.unwrap();
    vm.wait().await.unwrap();
    let d = t.elapsed();
    vm.stop().await.unwrap();
    d
}

/// What `run --rm IMAGE true` does, through the library: overlay, boot,
/// start, wait, stop, delete.
async fn library_run(manager: &ContainerManager, id: &str) -> Duration {
    let t = Instant::now();
    let c = manager
        .create(id, REFERENCE, None, |c| {
            c.process.args = vec!["true".into()];
            Ok(())
        })
        .await
        .unwrap();
    c.start().await.unwrap();
    let status = c.wait(None).await.unwrap();
    assert_eq!(status.exit_code, 0);
    c.stop().await.unwrap();
    manager.delete(id).await.unwrap();
    t.elapsed()
}

fn daemon_run(bin: &Path, root: &Path) -> Duration {
    let t = Instant::now();
    cli(bin, root, &["run", "--rm", REFERENCE, "true"]);
    t.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(5)
        .max(1);
    let bin = cli_binary();
    let dir = tempfile::tempdir().unwrap();
    let kernel = Kernel::default_kernel().expect("kernel: run scripts/build-kernel.sh");
    let initfs = containerization::default_initfs().expect("initfs: run scripts/build-initfs.sh");
    let archive = vm_common::busybox_archive(dir.path(), REFERENCE);

    // The daemon, with the image loaded and its snapshot unpacked (warm-up run).
    let daemon_root = dir.path().join("daemon");
    cli(&bin, &daemon_root, &["system", "start"]);
    cli(
        &bin,
        &daemon_root,
        &["image", "load", "-i", &archive.display().to_string()],
    );
    daemon_run(&bin, &daemon_root);

    // The library on its own root, warmed up the same way.
    let lib_root = dir.path().join("library");
    std::fs::create_dir_all(&lib_root).unwrap();
    containerization_oci::ImageStore::open(&lib_root)
        .unwrap()
        .load(&archive)
        .unwrap();
    let manager = ContainerManager::with_root(
        kernel.clone(),
        Mount::block("cpio", &initfs, "/", vec![]),
        Some(lib_root),
        None,
    )
    .unwrap();
    library_run(&manager, "warm").await;

    let mut bare_vmm = QemuVirtualMachineManager::new(
        kernel,
        vm_common::busybox_initfs(dir.path(), "/bin/busybox poweroff -f"),
    );
    bare_vmm.init_path = "/init".into();

    // Interleaved, so a change of load on the host hits all three alike.
    let (mut daemon, mut library, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        daemon.push(daemon_run(&bin, &daemon_root));
        library.push(library_run(&manager, &format!("bench-{i}")).await);
        bare.push(bare_boot(&bare_vmm).await);
        println!(
            "run {}/{n}: daemon {:.0} ms, library {:.0} ms, bare boot {:.0} ms",
            i + 1,
            ms(daemon[i]),
            ms(library[i]),
            ms(bare[i])
        );
    }
    cli(&bin, &daemon_root, &["system", "stop"]);
    let (d, l, b) = (median(&mut daemon), median(&mut library), median(&mut bare));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "medians of {n}: `container run --rm busybox true` {:.0} ms; library {:.0} ms; bare boot {:.0} ms",
        ms(d),
        ms(l),
        ms(b)
    );
    println!(
        "daemon/library {:.2} (daemon adds {:.0} ms; target <= 50 ms); daemon/bare {:.2}; load average {}",
        d.as_secs_f64() / l.as_secs_f64(),
        ms(d) - ms(l),
        d.as_secs_f64() / b.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
