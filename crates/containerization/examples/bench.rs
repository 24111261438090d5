//! Benchmarks (not a test): container run vs bare boot, exec latency, and
//! host memory per idle container. Prints ratios against references
//! measured in the same run.
//!
//! `cargo run --release -p containerization --example bench`
//! Needs the kernel (scripts/build-kernel.sh), the initfs
//! (scripts/build-initfs.sh) and busybox-static.

/// The VM tests' helpers (kernel, initfs, the busybox test image).
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use containerization::vmm::{QemuVirtualMachineManager, VirtualMachineManager, VmConfig};
use containerization::{ContainerManager, Kernel, LinuxContainer, Mount, Stdio};

/// Runs of each kind (BENCH_RUNS overrides).
fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn mem_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// Runs `true` in a new container; returns the whole time and its phases:
/// manager.create (root file system), create (VM boot to the agent, mounts),
/// start (the process), wait (its exit), stop (VM power-off).
async fn run_true(
    manager: &ContainerManager,
    id: &str,
    reference: &str,
) -> (Duration, [Duration; 5]) {
    let t = Instant::now();
    let c = manager
        .create(id, reference, None, |c| {
            c.process.args = vec!["true".into()];
            Ok(())
        })
        .await
        .unwrap();
    let t1 = t.elapsed();
    c.create().await.unwrap();
    let t2 = t.elapsed();
    c.start().await.unwrap();
    let t3 = t.elapsed();
    c.wait(None).await.unwrap();
    let t4 = t.elapsed();
    c.stop().await.unwrap();
    let d = t.elapsed();
    manager.delete(id).await.unwrap();
    (d, [t1, t2 - t1, t3 - t2, t4 - t3, d - t4])
}

/// Execs `true` in `c` and deletes it; returns the phases: create
/// (CreateProcess), start (the guest forks the setup helper, which execs
/// the program), wait (exit seen).
async fn exec_true(c: &LinuxContainer, id: &str) -> [Duration; 3] {
    let t = Instant::now();
    let p = c
        .exec(id, |p| {
            p.args = vec!["true".into()];
            p.stdout = Stdio::Null;
            Ok(())
        })
        .await
        .unwrap();
    let created = t.elapsed();
    p.start().await.unwrap();
    let started = t.elapsed();
    p.wait(None).await.unwrap();
    let waited = t.elapsed();
    p.delete().await.unwrap();
    [created, started - created, waited - started]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Kernel::default_kernel().expect("kernel: run scripts/build-kernel.sh");
    let initfs = containerization::default_initfs().expect("initfs: run scripts/build-initfs.sh");

    // 1. and 2., interleaved so that both see the same machine: a bare
    // boot-and-power-off of the same kernel (reference), and a container
    // running `true` through the library (image already unpacked). Medians
    // of BENCH_RUNS (default 3): TCG boots vary by 10-20% from one to the next.
    let bare = common::busybox_initfs(dir.path(), "/bin/busybox poweroff -f");
    let mut vmm = QemuVirtualMachineManager::new(kernel.clone(), &bare);
    vmm.init_path = "/init".into();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let reference = &common::load_busybox_image(&root);
    let manager = ContainerManager::with_root(
        kernel.clone(),
        Mount::block("cpio", &initfs, "/", vec![]),
        Some(root.clone()),
        None,
    )
    .unwrap();
    let _warm = run_true(&manager, "warm", reference).await; // unpacks the snapshot
    let (mut bare_times, mut run_times, mut phase_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs() {
        let t = Instant::now();
        let mut vm = vmm.create(VmConfig::new(format!("bare{i}"))).await.unwrap();
        vm.start().await.unwrap();
        vm.wait().await.unwrap();
        bare_times.push(t.elapsed());
        vm.stop().await.unwrap();
        let (run_time, phases) = run_true(&manager, &format!("bench{i}"), reference).await;
        run_times.push(run_time);
        phase_times.push(phases);
    }
    let phase = |k: usize| median_ms(phase_times.iter().map(|p| p[k]).collect());
    let (run_ms, bare_ms) = (median_ms(run_times), median_ms(bare_times));
    println!(
        "run true: {run_ms:.0} ms; bare boot: {bare_ms:.0} ms; ratio {:.2} (target <= 1.2; medians of {}); phases: root {:.0} ms, VM and agent {:.0} ms, start {:.0} ms, wait {:.0} ms, stop {:.0} ms",
        run_ms / bare_ms,
        runs(),
        phase(0),
        phase(1),
        phase(2),
        phase(3),
        phase(4)
    );

    // 3. Exec latency and 4. memory of an idle container.
    let c: LinuxContainer = manager
        .create("idle", reference, None, |c| {
            c.process.args = vec!["sleep".into(), "3600".into()];
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    c.start().await.unwrap();
    // Whole exec, and its phases (see exec_true).
    let (mut lat, mut create, mut start, mut wait) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let [created, started, waited] = exec_true(&c, &format!("e{i}")).await;
        lat.push(created + started + waited);
        create.push(created);
        start.push(started);
        wait.push(waited);
    }
    let min_ms = lat.iter().min().unwrap().as_secs_f64() * 1e3;
    let first_ms = lat[0].as_secs_f64() * 1e3;
    println!(
        "exec true: median {:.1} ms of {}, min {min_ms:.1} ms, first {first_ms:.1} ms (target median <= 30 ms); phases (medians): create {:.1} ms, start {:.1} ms, wait {:.1} ms",
        median_ms(lat.clone()),
        lat.len(),
        median_ms(create),
        median_ms(start),
        median_ms(wait),
    );
    // An exec after the container sat idle (what a user typing `exec`
    // meets; the agent's idle helper threads must not have gone away).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let idle: Duration = exec_true(&c, "after-idle").await.iter().sum();
    println!(
        "exec true after 12 s idle: {:.1} ms",
        idle.as_secs_f64() * 1e3
    );
    let (mut rss, mut pss) = (0, 0);
    for pid in c.vm_pids().await {
        let (r, p) = mem_kib(pid);
        rss += r;
        pss += p;
    }
    println!(
        "idle container host memory: RSS {:.1} MiB, PSS {:.1} MiB (QEMU + vhost-device-vsock; target <= 64 MiB)",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0
    );
    c.stop().await.unwrap();
    manager.delete("idle").await.unwrap();
}
