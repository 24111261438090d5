//! `cctl rootfs create` and `cctl ext4 ls|cat|stat` end to end.

use assert_cmd::Command;

fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn create_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = dir.path().join("l1.tar");
    let l2 = dir.path().join("l2.tar");
    std::fs::write(
        &l1,
        layer(&[("etc/hostname", b"box\n"), ("etc/gone", b"x")]),
    )
    .unwrap();
    std::fs::write(
        &l2,
        layer(&[("etc/.wh.gone", b""), ("bin/tool", b"#!/bin/sh\n")]),
    )
    .unwrap();
    let out = dir.path().join("rootfs.ext4");
    Command::cargo_bin("cctl")
        .unwrap()
        .args(["rootfs", "create", "--layer"])
        .arg(&l1)
        .arg("--layer")
        .arg(&l2)
        .args(["--size", "64M"])
        .arg(&out)
        .assert()
        .success();
    containerization_ext4::e2fsck_check(&out).unwrap_or_else(|e| panic!("{e}"));
    let cat = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "cat"])
        .arg(&out)
        .arg("/etc/hostname")
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"box\n");
    let ls = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "ls"])
        .arg(&out)
        .arg("/etc")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
    assert!(
        text.contains("hostname") && !text.contains("gone"),
        "{text}"
    );
    assert!(text.starts_with("-rw-r--r--"), "{text}");
    let st = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "stat"])
        .arg(&out)
        .arg("/bin/tool")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&st.get_output().stdout).into_owned();
    assert!(text.contains("Size: 10"), "{text}");
    // Errors are one line and carry the error code's exit status.
    let missing = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "cat"])
        .arg(&out)
        .arg("/nope")
        .assert()
        .failure();
    assert_eq!(missing.get_output().status.code(), Some(3));
    // Refuses to overwrite.
    Command::cargo_bin("cctl")
        .unwrap()
        .args(["rootfs", "create", "--layer"])
        .arg(&l1)
        .arg(&out)
        .assert()
        .failure()
        .code(4);
}

/// `cctl rootfs create --image REF` unpacks an image from the local store
/// (the busybox fixture of scripts/build-busybox-image.sh, loaded into a
/// private state root).
#[test]
fn create_from_local_image_store() {
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("busybox-oci");
    let st = std::process::Command::new("bash")
        .arg(ws.join("scripts/build-busybox-image.sh"))
        .arg(&layout)
        .arg("local/busybox:latest")
        .status()
        .expect("bash");
    assert!(
        st.success(),
        "scripts/build-busybox-image.sh failed (needs busybox-static)"
    );
    let archive = dir.path().join("busybox.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let root = dir.path().join("state");
    let store = containerization_oci::ImageStore::open(&root).unwrap();
    let images = store.load(&archive).unwrap();
    let reference = images[0].reference.clone();
    let out = dir.path().join("busybox.ext4");
    Command::cargo_bin("cctl")
        .unwrap()
        .args(["rootfs", "create", "--size", "256M", "--root"])
        .arg(&root)
        .args(["--image", &reference])
        .arg(&out)
        .assert()
        .success();
    containerization_ext4::e2fsck_check(&out).unwrap_or_else(|e| panic!("{e}"));
    let cat = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "cat"])
        .arg(&out)
        .arg("/etc/passwd")
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&cat.get_output().stdout).starts_with("root:x:0:0"));
    let ls = Command::cargo_bin("cctl")
        .unwrap()
        .args(["ext4", "ls"])
        .arg(&out)
        .arg("/bin")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
    assert!(
        text.contains(" busybox\n") && text.contains("sh -> "),
        "{text}"
    );
    // An unknown image is a clear not-found error.
    Command::cargo_bin("cctl")
        .unwrap()
        .args(["rootfs", "create", "--root"])
        .arg(&root)
        .args(["--image", "nope:1"])
        .arg(dir.path().join("x.ext4"))
        .assert()
        .failure()
        .code(3);
}
