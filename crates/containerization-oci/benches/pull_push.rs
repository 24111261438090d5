//! Pull and push of a ~100 MB, 4-layer image (random content, generated
//! here) from/to a local registry, against `skopeo copy` of the same image
//! in the same run. Prints the ratios (ours / skopeo; < 1 means faster).
//!
//! Run: `cargo bench -p containerization-oci --bench pull_push`
//! Needs docker-registry and skopeo (scripts/setup.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use containerization_oci::{ImageStore, PullOptions, PushOptions};

const LAYER: usize = 25 << 20;
const ROUNDS: usize = 2;

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let v = f();
    (start.elapsed(), v)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    random_layout_with(layout.path(), &[LAYER; 4], 42, true);
    let image = format!("{}/bench/image:latest", source.host());
    push_layout(layout.path(), "latest", &image, false, false);

    let mut best = [Duration::MAX; 4];
    for round in 0..ROUNDS {
        // Pull: into an empty store vs skopeo into an empty OCI layout.
        let state = tempfile::tempdir().unwrap();
        let store = ImageStore::open(state.path()).unwrap();
        let (ours_pull, _) = time(|| {
            rt.block_on(store.pull(&image, &PullOptions::default()))
                .unwrap()
        });
        let dir = tempfile::tempdir().unwrap();
        let (skopeo_pull, _) = time(|| {
            skopeo_copy(&[
                &format!("docker://{image}"),
                &format!("oci:{}:latest", dir.path().display()),
            ])
        });

        // Push: each tool to its own fresh registry, so nothing is already there.
        let ours_reg = Registry::start(None);
        let target = format!("{}/bench/image:latest", ours_reg.host());
        store.tag(&image, &target).unwrap();
        let (ours_push, _) = time(|| {
            rt.block_on(store.push(&target, &PushOptions::default()))
                .unwrap()
        });
        let skopeo_reg = Registry::start(None);
        let (skopeo_push, _) = time(|| {
            push_layout(
                dir.path(),
                "latest",
                &format!("{}/bench/image:latest", skopeo_reg.host()),
                false,
                false,
            )
        });
        for (b, t) in best
            .iter_mut()
            .zip([ours_pull, skopeo_pull, ours_push, skopeo_push])
        {
            *b = (*b).min(t);
        }
        println!(
            "round {round}: pull ours {:.2}s skopeo {:.2}s | push ours {:.2}s skopeo {:.2}s",
            ours_pull.as_secs_f64(),
            skopeo_pull.as_secs_f64(),
            ours_push.as_secs_f64(),
            skopeo_push.as_secs_f64()
        );
    }
    let mb = (4 * LAYER) as f64 / (1 << 20) as f64;
    println!(
        "pull {mb:.0} MB: ours {:.2}s, skopeo {:.2}s, ratio ours/skopeo = {:.2}",
        best[0].as_secs_f64(),
        best[1].as_secs_f64(),
        best[0].as_secs_f64() / best[1].as_secs_f64()
    );
    println!(
        "push {mb:.0} MB: ours {:.2}s, skopeo {:.2}s, ratio ours/skopeo = {:.2}",
        best[2].as_secs_f64(),
        best[3].as_secs_f64(),
        best[2].as_secs_f64() / best[3].as_secs_f64()
    );
}
