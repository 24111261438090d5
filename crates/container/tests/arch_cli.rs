//! Containers of another architecture: an arm64 busybox on this x86_64 host,
//! run through qemu-user-static registered in the (x86_64) guest. Needs what
//! scripts/setup.sh installs: `qemu-user-static`, and Debian's
//! `busybox-static:arm64` fetched by scripts/fetch-busybox-arm64.sh. Three
//! VMs in all.

mod common;
#[path = "common/oci.rs"]
mod oci;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, script};

/// An OCI archive in `dir` of the busybox image built by
/// scripts/build-busybox-image.sh for `arch` (amd64, arm64 or multi), its
/// one image named `reference`.
fn busybox_archive(dir: &Path, reference: &str, arch: &str) -> PathBuf {
    if arch != "amd64" {
        script("fetch-busybox-arm64.sh", &[]);
    }
    let layout = dir.join("layout");
    script(
        "build-busybox-image.sh",
        &[layout.to_str().unwrap(), reference, arch],
    );
    let tar = dir.join("image.tar");
    oci::layout_archive(&layout, reference, &tar);
    tar
}

/// Loads the busybox fixture built for `arch` as `reference`.
fn load(d: &Daemon, reference: &str, arch: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tar = busybox_archive(dir.path(), reference, arch);
    let out = d.run(&["image", "load", "-i", tar.to_str().unwrap()]).ok();
    assert!(out.contains(reference), "{out}");
}

/// The linux/amd64 + linux/arm64/v8 busybox as `busybox-multi`.
fn load_multi(d: &Daemon) {
    load(d, "busybox-multi:latest", "multi");
}

/// The single-platform (amd64) busybox fixture as `amd64-only`.
fn load_amd64_only(d: &Daemon) {
    load(d, "amd64-only:latest", "amd64");
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_arm64_variant_really_is_arm64() {
    // `file` on the busybox taken out of the image's arm64 layer.
    let dir = tempfile::tempdir().unwrap();
    busybox_archive(dir.path(), "busybox-multi:latest", "multi");
    let layout = dir.path().join("layout");
    let top = json(&layout.join("index.json"));
    let index = json(&blob(
        &layout,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    for (m, expected) in manifests.iter().zip(["x86-64", "ARM aarch64"]) {
        let manifest = json(&blob(&layout, m["digest"].as_str().unwrap()));
        let layer = blob(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
        let out = dir
            .path()
            .join(m["platform"]["architecture"].as_str().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        let ok = Command::new("tar")
            .arg("-xzf")
            .arg(&layer)
            .arg("-C")
            .arg(&out)
            .arg("./bin/busybox")
            .status()
            .unwrap()
            .success();
        assert!(ok, "bin/busybox missing from the layer of {m}");
        let file = Command::new("file")
            .arg(out.join("bin/busybox"))
            .output()
            .expect("file (apt-get install file)");
        let what = String::from_utf8_lossy(&file.stdout);
        assert!(
            what.contains(expected) && what.contains("statically linked"),
            "{what}"
        );
        let config = json(&blob(
            &layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ));
        assert_eq!(config["architecture"], m["platform"]["architecture"]);
    }
}

#[test]
fn run_picks_the_variant_and_arm64_runs_emulated() {
    let d = Daemon::started();
    load_multi(&d);
    load_amd64_only(&d);
    // No variant for the platform: a single-platform image, and an index.
    let r = d.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "amd64-only",
        "true",
    ]);
    assert_eq!(r.code, 3, "not found: {}", r.stderr);
    assert!(
        r.stderr.contains("linux/arm64") && r.stderr.contains("linux/amd64"),
        "{}",
        r.stderr
    );
    let r = d.run(&["run", "--rm", "--arch", "s390x", "busybox-multi", "true"]);
    assert_eq!(r.code, 3, "not found: {}", r.stderr);
    assert!(
        r.stderr.contains("linux/s390x") && r.stderr.contains("linux/arm64/v8"),
        "names the platform and what there is: {}",
        r.stderr
    );
    assert_eq!(
        d.run(&["ls", "-a", "-q"]).ok().trim(),
        "",
        "nothing created"
    );

    // `uname -m` of `run --rm [ARCH FLAGS] busybox-multi`.
    for (flags, machine) in [(&["--arch", "arm64"][..], "aarch64"), (&[][..], "x86_64")] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox-multi", "uname", "-m"]);
        let r = d.run(&args);
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, machine),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    let cached: Vec<String> = std::fs::read_dir(d.root.path().join("emulators"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 1, "one emulator image: {cached:?}");
    assert!(
        cached[0].starts_with("qemu-aarch64-static-") && cached[0].ends_with(".ext4"),
        "{cached:?}"
    );
}

#[test]
fn create_with_platform_keeps_the_emulator_out_of_the_container() {
    let d = Daemon::started();
    load_multi(&d);
    // The container's processes are arm64; argv[0] is kept (binfmt_misc
    // `P` flag); the emulator's disk is mounted in the VM only.
    let script = "uname -m; echo \"$0\"; \
                  ls /run/emulator 2>&1 || echo no-emulator-dir; \
                  grep -c emulator /proc/mounts || true";
    d.run(&[
        "create",
        "--name",
        "a64",
        "--platform",
        "linux/arm64",
        "busybox-multi",
        "sh",
        "-c",
        script,
    ])
    .ok();
    let inspect = d.run(&["inspect", "a64"]).ok();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        v[0]["configuration"]["platform"], "linux/arm64/v8",
        "{inspect}"
    );
    let r = d.run(&["start", "-a", "a64"]);
    assert_eq!(r.code, 0, "stdout: {} stderr: {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"aarch64"), "{}", r.stdout);
    assert_eq!(lines.get(1), Some(&"sh"), "argv[0] kept: {}", r.stdout);
    assert!(
        r.stdout.contains("no-emulator-dir"),
        "the emulator is not in the container: {}",
        r.stdout
    );
    assert_eq!(lines.last(), Some(&"0"), "no emulator mount: {}", r.stdout);
    d.run(&["rm", "a64"]).ok();
}

#[test]
fn clear_errors_and_nothing_created() {
    let d = Daemon::new();
    // A daemon that finds no qemu-user-static.
    let empty = tempfile::tempdir().unwrap();
    let out = d
        .cmd(&["system", "start"])
        .env("CONTAINER_EMULATOR_DIR", empty.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running container");
    assert!(
        out.status.success(),
        "system start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    load_multi(&d);
    let r = d.run(&["run", "--rm", "--arch", "arm64", "busybox-multi", "true"]);
    assert_eq!(r.code, 3, "not found: {}", r.stderr);
    assert!(
        r.stderr.contains("qemu-aarch64-static")
            && r.stderr.contains("apt-get install qemu-user-static")
            && r.stderr.trim().lines().count() == 1,
        "{}",
        r.stderr
    );
    let r = d.run(&["create", "--arch", "foo", "busybox-multi", "true"]);
    assert_eq!(r.code, 2, "invalid argument: {}", r.stderr);
    assert!(
        r.stderr.contains("unknown architecture 'foo'"),
        "{}",
        r.stderr
    );
    assert_eq!(
        d.run(&["ls", "-a", "-q"]).ok().trim(),
        "",
        "nothing created"
    );
    assert!(!d.root.path().join("emulators").exists());
}
