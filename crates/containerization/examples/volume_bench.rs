//! Volume and bind-mount I/O benchmark (not a test): the same busybox `dd`
//! script on a named volume (ext4 image on virtio-blk), on a virtio-fs bind
//! mount, and directly on the host disk (the reference), in one run.
//! Prints MB/s and ops/s and the ratio guest / host.
//!
//! `cargo run --release -p containerization --example volume_bench [-- SEQ_MIB RAND_OPS]`
//! (defaults 1024 MiB and 200 ops). Needs the kernel (scripts/build-kernel.sh),
//! the initfs (scripts/build-initfs.sh), busybox-static and virtiofsd
//! (scripts/setup.sh).
//!
//! Random I/O is one `dd` of 4 KiB per operation, so under TCG it measures
//! process start-up as much as I/O; the sequential figures are the I/O ones.

/// The VM tests' helpers (kernel, initfs, the busybox test image).
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use containerization::{ContainerManager, Kernel, LinuxContainer, Mount, Stdio};
use containerization_ext4::{FormatOptions, Formatter, JournalOptions};

/// The measured script; `$D` is the directory, `$N` MiB sequential, `$R`
/// random operations. Prints `name start end` with /proc/uptime seconds.
const SCRIPT: &str = r#"
t() { read x _ < /proc/uptime; echo $x; }
s=$(t); dd if=/dev/zero of=$D/seq bs=1M count=$N conv=fsync 2>/dev/null || exit 1; echo seqw $s $(t)
s=$(t); dd if=$D/seq of=/dev/null bs=1M iflag=direct 2>/dev/null || dd if=$D/seq of=/dev/null bs=1M 2>/dev/null; echo seqr $s $(t)
B=$((N * 256)); d=direct; dd if=$D/seq of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null || d=
s=$(t); i=0; while [ $i -lt $R ]; do dd if=$D/seq of=/dev/null bs=4k count=1 skip=$(( (i * 7919) % B )) ${d:+iflag=$d} 2>/dev/null; i=$((i + 1)); done; echo randr $s $(t)
s=$(t); i=0; while [ $i -lt $R ]; do dd if=/dev/zero of=$D/seq bs=4k count=1 seek=$(( (i * 104729) % B )) conv=notrunc,fsync 2>/dev/null; i=$((i + 1)); done; echo randw $s $(t)
rm -f $D/seq
"#;

/// Seconds per measured step, in script order.
fn parse(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [name, s, e] => Some((
                    name.to_string(),
                    e.parse::<f64>().ok()? - s.parse::<f64>().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

fn host_run(dir: &Path, n: u64, r: u64) -> Vec<(String, f64)> {
    let out = Command::new("/bin/busybox")
        .args(["sh", "-c", SCRIPT])
        .env("D", dir)
        .env("N", n.to_string())
        .env("R", r.to_string())
        .output()
        .expect("busybox-static");
    parse(&String::from_utf8_lossy(&out.stdout))
}

async fn guest_run(c: &LinuxContainer, id: &str, dir: &str, n: u64, r: u64) -> Vec<(String, f64)> {
    let (out, buf) = Stdio::buffer();
    let (err, err_buf) = Stdio::buffer();
    let p = c
        .exec(id, |p| {
            p.args = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()];
            p.env.push(format!("D={dir}"));
            p.env.push(format!("N={n}"));
            p.env.push(format!("R={r}"));
            p.stdout = out;
            p.stderr = err;
            Ok(())
        })
        .await
        .unwrap();
    p.start().await.unwrap();
    p.wait(Some(Duration::from_secs(3600))).await.unwrap();
    p.delete().await.unwrap();
    let steps = parse(&buf.text());
    assert_eq!(
        steps.len(),
        4,
        "bench script failed in {dir}: {}",
        err_buf.text()
    );
    steps
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1024);
    let r = args.get(1).copied().unwrap_or(200);
    // On the host disk (not /tmp, which may be a tmpfs elsewhere).
    let dir = tempfile::Builder::new()
        .prefix("volume-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let reference = &common::load_busybox_image(&root);
    let volume = dir.path().join("volume.img");
    Formatter::create(
        &volume,
        (n + 512) << 20,
        FormatOptions {
            journal: Some(JournalOptions::default()),
            ..Default::default()
        },
    )
    .unwrap()
    .close()
    .unwrap();
    let share = dir.path().join("share");
    let host = dir.path().join("host");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::create_dir_all(&host).unwrap();

    let kernel = Kernel::default_kernel().expect("kernel: run scripts/build-kernel.sh");
    let initfs = containerization::default_initfs().expect("initfs: run scripts/build-initfs.sh");
    let manager = ContainerManager::with_root(
        kernel,
        Mount::block("cpio", &initfs, "/", vec![]),
        Some(root.clone()),
        None,
    )
    .unwrap();
    let c = manager
        .create("volbench", reference, None, |c| {
            c.process.args = vec!["sleep".into(), "36000".into()];
            c.mounts = vec![
                Mount::block("ext4", &volume, "/vol", vec![]),
                Mount::share(&share, "/share", vec![]),
            ];
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    c.start().await.unwrap();

    let host_steps = host_run(&host, n, r);
    let vol_steps = guest_run(&c, "vol", "/vol", n, r).await;
    let share_steps = guest_run(&c, "share", "/share", n, r).await;
    c.stop().await.unwrap();
    manager.delete("volbench").await.unwrap();

    let rate = |name: &str, secs: f64| -> (f64, &'static str) {
        if name.starts_with("seq") {
            (n as f64 * 1.048_576 / secs.max(0.001), "MB/s")
        } else {
            (r as f64 / secs.max(0.001), "ops/s")
        }
    };
    println!("volume bench: {n} MiB sequential, {r} random 4 KiB operations");
    println!(
        "{:<6} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "step", "host", "volume", "virtiofs", "vol/host", "fs/host"
    );
    for i in 0..4 {
        let (name, hs) = &host_steps[i];
        let (h, unit) = rate(name, *hs);
        let (v, _) = rate(name, vol_steps[i].1);
        let (s, _) = rate(name, share_steps[i].1);
        println!(
            "{name:<6} {:>9.1} {unit:<5}{:>9.1} {unit:<5}{:>9.1} {unit:<5}{:>9.2} {:>10.2}",
            h,
            v,
            s,
            v / h,
            s / h
        );
    }
}
