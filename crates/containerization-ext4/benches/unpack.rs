//! Bench (not a timed test): unpack a generated 3-layer image (~300 MB,
//! 12k files) with our unpacker, against `tar -x` of the same layers into a
//! directory followed by `mke2fs -t ext4 -b 4096 -d DIR`, measured in the
//! same run. Prints both times, their ratio and our peak RSS.
//!
//! Run: `cargo bench -p containerization-ext4 --bench unpack`
//! (env `UNPACK_BENCH_MB` changes the data size, default 300).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CHILD_ARG: &str = "__unpack_child";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn append(b: &mut tar::Builder<std::io::BufWriter<std::fs::File>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, path, data).unwrap();
}

/// Writes three layers: a base tree, an update layer overwriting and
/// whiting out part of it, and a small top layer.
fn generate(dir: &Path, total_mb: u64) -> Vec<PathBuf> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let budget = total_mb << 20;
    let mut layers = Vec::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 8 << 20];
    for (li, share, files) in [(0usize, 70u64, 9000usize), (1, 25, 3000), (2, 5, 500)] {
        let p = dir.join(format!("layer{li}.tar"));
        let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&p).unwrap());
        let mut b = tar::Builder::new(f);
        let layer_budget = budget * share / 100;
        let mut lw = 0u64;
        for i in 0..files {
            // Mostly small files, every 100th a large one.
            let size = if i % 100 == 0 {
                (layer_budget / (files as u64 / 100).max(1) / 2).min(8 << 20)
            } else {
                512 + rng.next() % 16384
            } as usize;
            rng.fill(&mut buf[..size]);
            let path = format!("usr/share/pkg{}/dir{}/file{i}-l{li}", i % 97, i % 13);
            append(&mut b, &path, &buf[..size]);
            lw += size as u64;
        }
        if li == 1 {
            for i in (0..9000).step_by(50) {
                append(
                    &mut b,
                    &format!("usr/share/pkg{}/dir{}/.wh.file{i}-l0", i % 97, i % 13),
                    b"",
                );
            }
        }
        written += lw;
        b.into_inner().unwrap();
        layers.push(p);
    }
    eprintln!("generated {} MB in {} layers", written >> 20, layers.len());
    layers
}

fn peak_rss_children_kb() -> i64 {
    // SAFETY: getrusage fills the zeroed struct we pass; no other effects.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_ARG) {
        let out = PathBuf::from(&args[2]);
        let layers: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
        containerization_ext4::unpack_layers(&layers, &out, 2 << 30).unwrap();
        return;
    }
    let mb: u64 = std::env::var("UNPACK_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir_in(
        std::env::var("UNPACK_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()),
    )
    .unwrap();
    let layers = generate(dir.path(), mb);
    let me = std::env::current_exe().unwrap();

    // Ours, as a child so its peak RSS is measured alone (first child).
    let ours_img = dir.path().join("ours.ext4");
    let t = Instant::now();
    run(Command::new(&me)
        .arg(CHILD_ARG)
        .arg(&ours_img)
        .args(&layers));
    let ours = t.elapsed().as_secs_f64();
    let rss_kb = peak_rss_children_kb();
    run(Command::new("e2fsck").arg("-fn").arg(&ours_img));

    // Reference: tar -x each layer, then mke2fs -d.
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let ref_img = dir.path().join("ref.ext4");
    let t = Instant::now();
    for l in &layers {
        run(Command::new("tar").arg("-xf").arg(l).arg("-C").arg(&tree));
    }
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
        .arg(&tree)
        .arg(&ref_img)
        .arg("2G"));
    let reference = t.elapsed().as_secs_f64();

    println!("unpack bench: {mb} MB, 3 layers");
    println!(
        "  ours (unpack_layers)      {ours:8.2} s   peak RSS {:.1} MB",
        rss_kb as f64 / 1024.0
    );
    println!("  reference (tar -x+mke2fs) {reference:8.2} s");
    println!("  speedup                   {:8.2}x", reference / ours);
}
