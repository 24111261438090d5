//! Bench (not a test): `ctr run --rm IMAGE ID true` through our shim vs
//! through `io.containerd.runc.v2`, same private containerd, same image, same
//! run; and the rootfs copy's throughput (snapshot tree -> ext4 image).
//!
//! `cargo build -p containerd-shim-container && cargo run -p containerd-shim-container --example bench`
//! (`BENCH_RUNS=N`, default 3, runs of each runtime).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Containerd, RUNTIME};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_run(d: &Containerd, runtime: &str, image: &str, id: &str) -> Duration {
    let start = Instant::now();
    d.ctr_ok(&["run", "--rm", "--runtime", runtime, image, id, "true"]);
    start.elapsed()
}

/// Copies a synthetic tree (`files` x `size` bytes plus small files) into an
/// ext4 image and returns (bytes, seconds).
fn rootfs_copy(files: usize, size: usize) -> (u64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("big")).unwrap();
    let block: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..files {
        std::fs::write(tree.join(format!("big/f{i}")), &block).unwrap();
    }
    for i in 0..2000 {
        let sub = tree.join(format!("small/{}", i % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("s{i}")), b"small file\n").unwrap();
    }
    // Drop the page cache's advantage as far as we can without root tricks:
    // the tree was just written, so this measures the copy, not the disk.
    let start = Instant::now();
    let stats =
        containerd_shim_container::rootfs::directory_to_ext4(&tree, &dir.path().join("img.ext4"))
            .expect("convert");
    (stats.bytes, start.elapsed().as_secs_f64())
}

fn main() {
    let exe = std::env::current_exe().expect("current exe");
    let shim: PathBuf = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("containerd-shim-container-v2");
    assert!(
        shim.exists(),
        "{} is missing: run `cargo build -p containerd-shim-container` first",
        shim.display()
    );
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let d = Containerd::start(&shim);
    let image = d.import_busybox();
    let (mut ours, mut runc) = (Vec::new(), Vec::new());
    for i in 0..runs {
        runc.push(time_run(
            &d,
            "io.containerd.runc.v2",
            &image,
            &format!("runc{i}"),
        ));
        ours.push(time_run(&d, RUNTIME, &image, &format!("vm{i}")));
    }
    let (o, r) = (median(ours.clone()), median(runc.clone()));
    println!("ctr run --rm IMAGE true, {runs} runs each, median:");
    println!(
        "  io.containerd.runc.v2       {:>8.3} s  {runc:?}",
        r.as_secs_f64()
    );
    println!("  {RUNTIME}  {:>8.3} s  {ours:?}", o.as_secs_f64());
    println!(
        "  ratio (vm / runc)           {:>8.1}",
        o.as_secs_f64() / r.as_secs_f64()
    );
    let copies: Vec<String> = d
        .log()
        .lines()
        .filter(|l| l.contains("rootfs:") && l.contains("copied"))
        .map(|l| l.to_string())
        .collect();
    if let Some(last) = copies.last() {
        println!("busybox rootfs copy (shim log): {last}");
    }
    // Where a VM run's time goes, from the shim's log lines.
    for l in d.log().lines().filter(|l| l.contains("VM of ")) {
        if let Some(msg) = l.split("msg=").nth(1) {
            println!("  shim: {msg}");
        }
    }
    let (bytes, secs) = rootfs_copy(64, 4 << 20);
    println!(
        "rootfs copy of a {} MiB tree (64 big + 2000 small files): {:.2} s, {:.0} MiB/s",
        bytes >> 20,
        secs,
        (bytes as f64 / (1 << 20) as f64) / secs
    );
}
