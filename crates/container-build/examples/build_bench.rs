//! Benchmark (not a test): a cold build and a cached rebuild of a small
//! multi-stage Dockerfile with `container build`'s executor, against
//! `buildah bud --isolation chroot --layers` in the same run; prints the
//! times and the ratios.
//!
//! Needs the guest kernel and initfs (`CONTAINER_KERNEL`,
//! `CONTAINER_INITFS`), busybox-static and skopeo (scripts/setup.sh), and
//! buildah (`apt-get install buildah`; not needed by CI).
//! Run: `cargo run -p container-build --example build_bench [-- ROUNDS]`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_build::exec::progress::PlainReporter;
use container_build::exec::run::VmRunExecutor;
use container_build::exec::{BuildOptions, Builder};

const DOCKERFILE: &str = r#"ARG BASE=localhost/busybox:latest
FROM $BASE AS build
WORKDIR /src
COPY . .
RUN for i in 1 2 3; do cat *.txt > out$i; done
RUN cat out1 out2 > out3 && rm out1 out2
FROM $BASE
COPY --from=build /src/out3 /out
CMD ["cat", "/out"]
"#;

fn sh(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ours(root: &Path, ctx: &Path) -> Duration {
    let t = Instant::now();
    let reporter = Arc::new(PlainReporter::new(Box::new(std::io::sink()), true));
    let runner = Arc::new(VmRunExecutor::new());
    let builder = Builder::new(root, runner, reporter).unwrap();
    let mut opts = BuildOptions::new(ctx);
    opts.tags = vec!["localhost/bench:1".into()];
    let df = container_build::parse(DOCKERFILE, &opts.build_args).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(builder.build(&df, &opts))
        .expect("container build");
    t.elapsed()
}

fn buildah(broot: &Path, layout: &Path, ctx: &Path) -> Duration {
    let t = Instant::now();
    sh(
        Command::new("buildah")
            .arg("--root")
            .arg(broot.join("root"))
            .arg("--runroot")
            .arg(broot.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "bud",
                "--isolation",
                "chroot",
                "--layers",
                "-q",
            ])
            .arg("--build-arg")
            .arg(format!("BASE=oci:{}:latest", layout.display()))
            .args(["-t", "bench:1"])
            .arg(ctx),
        "buildah bud (apt-get install buildah)",
    );
    t.elapsed()
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    // buildah wants lowercase paths in `oci:` references, so no tempfile names.
    let work_dir = std::env::temp_dir().join(format!("build-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).unwrap();
    let work = Work(work_dir);
    let layout = work.path().join("layout");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    sh(
        Command::new("bash")
            .arg(scripts.join("build-busybox-image.sh"))
            .arg(&layout)
            .arg("latest"),
        "scripts/build-busybox-image.sh",
    );
    let archive = work.path().join("busybox.tar");
    sh(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!(
                "docker-archive:{}:localhost/busybox:latest",
                archive.display()
            )),
        "skopeo copy",
    );
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    for i in 0..20 {
        std::fs::write(
            ctx.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(100),
        )
        .unwrap();
    }
    let (mut oc, mut ow, mut bc, mut bw) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for r in 0..rounds {
        let root = work.path().join(format!("root{r}"));
        let store = containerization_oci::ImageStore::open(&root).unwrap();
        store.load(&archive).unwrap();
        oc += ours(&root, &ctx);
        ow += ours(&root, &ctx);
        let broot = work.path().join(format!("buildah{r}"));
        bc += buildah(&broot, &layout, &ctx);
        bw += buildah(&broot, &layout, &ctx);
    }
    let n = rounds as u32;
    let (oc, ow, bc, bw) = (oc / n, ow / n, bc / n, bw / n);
    println!("rounds: {rounds}");
    println!(
        "cold build:     container {:>7.2}s  buildah {:>7.2}s  ratio {:.2}",
        oc.as_secs_f64(),
        bc.as_secs_f64(),
        oc.as_secs_f64() / bc.as_secs_f64()
    );
    println!(
        "cached rebuild: container {:>7.2}s  buildah {:>7.2}s  ratio {:.2}",
        ow.as_secs_f64(),
        bw.as_secs_f64(),
        ow.as_secs_f64() / bw.as_secs_f64()
    );
    println!(
        "speed-up of the cached rebuild: container {:.1}x, buildah {:.1}x",
        oc.as_secs_f64() / ow.as_secs_f64(),
        bc.as_secs_f64() / bw.as_secs_f64()
    );
}

/// The bench's directory, removed at the end.
struct Work(std::path::PathBuf);

impl Work {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
