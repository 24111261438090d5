//! Soak: `cargo run -p container --example soak -- --clients 4 --minutes 10`
//! (`--iterations N` per client instead of minutes; `--network` gives each
//! container an interface on the default network, in a network namespace of
//! its own). Clients start, exec into, stop and remove containers in a loop
//! against one daemon; prints the daemon's footprint before and after and
//! exits non-zero on growth or on any failed command. Build the binaries
//! first (`cargo build --workspace --bins`) and run as root, with
//! CONTAINER_KERNEL and CONTAINER_INITFS set as for the tests.

#[path = "../tests/common/oci.rs"]
mod oci;
#[path = "../tests/common/procs.rs"]
mod procs;
#[path = "../tests/common/soak.rs"]
mod soak;

use std::path::{Path, PathBuf};
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: soak [--clients N] [--minutes M | --iterations N] [--network]");
    std::process::exit(2);
}

fn main() {
    let mut clients = 4;
    let mut duration = None;
    let mut iterations = None;
    let mut network = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--clients" => clients = num() as usize,
            "--minutes" => duration = Some(Duration::from_secs(num() * 60)),
            "--iterations" => iterations = Some(num()),
            "--network" => network = true,
            _ => usage(),
        }
    }
    if duration.is_none() && iterations.is_none() {
        duration = Some(Duration::from_secs(600));
    }
    if network {
        // SAFETY: unshare with a constant flag, before any thread exists;
        // everything started from here on lives in the new namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!("soak: --network needs root (unshare CLONE_NEWNET)");
            std::process::exit(1);
        }
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.is_ok_and(|s| s.success()), "ip link set lo up");
    }

    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/soak -> target/<profile>/container
    let cli = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("container");
    assert!(
        cli.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        cli.display()
    );
    let work = tempfile::Builder::new()
        .prefix("container-soak-")
        .tempdir()
        .expect("tempdir");
    let layout = work.path().join("busybox");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-busybox-image.sh");
    let st = std::process::Command::new("bash")
        .arg(&script)
        .arg(&layout)
        .status()
        .expect("bash");
    assert!(st.success(), "scripts/build-busybox-image.sh failed");
    let archive = work.path().join("busybox.tar");
    oci::layout_archive(&layout, "localhost/busybox:latest", &archive);
    let root: PathBuf = work.path().join("root");
    let plan = soak::Plan {
        cli,
        root,
        archive,
        image: "localhost/busybox:latest".into(),
        clients,
        duration,
        iterations,
        network,
    };
    let started = std::time::Instant::now();
    let report = plan.run(|line| eprintln!("[{:>5.0} s] {line}", started.elapsed().as_secs_f64()));
    print!("{}", report.table());
    let growth = report.growth();
    for g in &growth {
        println!("GROWTH: {g}");
    }
    for f in &report.failures {
        println!("FAILED: {f}");
    }
    if !growth.is_empty() || !report.failures.is_empty() {
        std::process::exit(1);
    }
}
