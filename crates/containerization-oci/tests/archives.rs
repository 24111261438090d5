//! save/load round trips: OCI archives (plain and gzip) and `docker save`
//! archives made by skopeo.

mod common;

use std::fs;

use common::*;
use containerization_error::Code;
use containerization_oci::{ImageStore, Platform};

fn store() -> (tempfile::TempDir, ImageStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(tmp.path()).unwrap();
    (tmp, s)
}

#[tokio::test]
async fn oci_archive_round_trip_plain_and_gzip() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    let index_digest = multi_platform_layout(layout.path());
    push_layout(
        layout.path(),
        "multi",
        &format!("{}/test/multi:latest", reg.host()),
        false,
        true,
    );
    let (_t, s) = store();
    let r = format!("{}/test/multi:latest", reg.host());
    s.pull(&r, &Default::default()).await.unwrap();
    s.tag(&r, "second/name:v2").unwrap();

    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("images.tar");
    s.save(&[r.clone(), "second/name:v2".into()], None, &archive)
        .unwrap();

    let (_t2, s2) = store();
    let loaded = s2.load(&archive).unwrap();
    let names: Vec<_> = loaded.iter().map(|i| i.reference.clone()).collect();
    assert_eq!(
        names,
        vec![r.clone(), "docker.io/second/name:v2".to_string()]
    );
    assert_eq!(loaded[0].digest(), index_digest);
    let amd = Platform::parse("linux/amd64").unwrap();
    let cfg = s2.get(&r).unwrap().config(s2.content(), &amd).unwrap();
    assert_eq!(cfg.os().to_string(), "linux");
    assert_eq!(
        s2.content().total_size().unwrap(),
        s.content().total_size().unwrap()
    );

    // gzip'd archive, single platform.
    let single = out.path().join("single.tar");
    s.save(std::slice::from_ref(&r), Some(&amd), &single)
        .unwrap();
    let gz = out.path().join("single.tar.gz");
    let status = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&single)
        .status()
        .unwrap();
    assert!(status.success());
    let (_t3, s3) = store();
    let loaded = s3.load(&gz).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].media_type(),
        "application/vnd.oci.image.manifest.v1+json"
    );
    loaded[0].config(s3.content(), &amd).unwrap();

    // Bad input changes nothing.
    let junk = out.path().join("junk.tar");
    fs::write(&junk, b"not an archive at all").unwrap();
    let (_t4, s4) = store();
    let e = s4.load(&junk).unwrap_err();
    assert!(e.is_code(Code::InvalidArgument), "{e}");
    assert!(s4.list().unwrap().is_empty());
    assert!(
        s.save(&["nope:1".into()], None, &out.path().join("x.tar"))
            .unwrap_err()
            .is_code(Code::NotFound)
    );
    assert!(!out.path().join("x.tar").exists());
}

#[tokio::test]
async fn docker_save_archive_loads_as_oci_image() {
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("docker.tar");
    skopeo_copy(&[
        &format!("oci:{}:latest", layout.path().display()),
        &format!("docker-archive:{}:localhost/x:latest", archive.display()),
    ]);
    let (_t, s) = store();
    let loaded = s.load(&archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].reference, "localhost/x:latest");
    let amd = Platform::parse("linux/amd64").unwrap();
    let (_, m) = loaded[0].resolve_manifest(s.content(), &amd).unwrap();
    let layer = m.layers()[0].digest().to_string();
    assert!(s.content().contains(&layer));
    assert_eq!(
        loaded[0]
            .config(s.content(), &amd)
            .unwrap()
            .architecture()
            .to_string(),
        "amd64"
    );
    // The layer is a readable tar with busybox in it.
    let mut reader =
        containerization_archive::ArchiveReader::open(s.content().blob_path(&layer)).unwrap();
    let (_, data) = reader.extract_file("bin/busybox").unwrap();
    assert!(data.starts_with(b"\x7fELF"));

    // Saving the loaded image and loading it again keeps the digest.
    let again = out.path().join("again.tar");
    s.save(&["localhost/x:latest".into()], None, &again)
        .unwrap();
    let (_t2, s2) = store();
    assert_eq!(s2.load(&again).unwrap()[0].digest(), loaded[0].digest());
}

/// Tars a directory into `out`.
fn tar_dir(dir: &std::path::Path, out: &std::path::Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn corrupt_or_hostile_archives_are_refused() {
    let out = tempfile::tempdir().unwrap();
    // An OCI layout whose layer bytes do not match the digest.
    let layout = tempfile::tempdir().unwrap();
    let md = random_layout(layout.path(), &[4096], 3);
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(
            layout
                .path()
                .join("blobs/sha256")
                .join(md.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
        "size": fs::metadata(layout.path().join("blobs/sha256").join(md.trim_start_matches("sha256:"))).unwrap().len(),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/x:1"}}]});
    fs::write(
        layout.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let good = out.path().join("good.tar");
    tar_dir(layout.path(), &good);
    let layer_file = layout
        .path()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    fs::write(&layer_file, b"tampered").unwrap();
    let bad = out.path().join("bad.tar");
    tar_dir(layout.path(), &bad);

    let (_t, s) = store();
    let e = s.load(&bad).unwrap_err();
    assert!(e.is_code(Code::InvalidArgument), "{e}");
    assert!(
        e.message.contains(layer) && e.message.contains("corrupt"),
        "{e}"
    );
    assert!(s.list().unwrap().is_empty());
    assert!(!s.content().contains(layer));
    let loaded = s.load(&good).unwrap();
    assert_eq!(loaded[0].reference, "example.com/x:1");

    // A docker archive whose manifest.json points outside the archive.
    let docker = tempfile::tempdir().unwrap();
    fs::write(docker.path().join("config.json"), b"{}").unwrap();
    fs::write(
        docker.path().join("manifest.json"),
        br#"[{"Config":"config.json","RepoTags":["evil:1"],"Layers":["../../etc/passwd"]}]"#,
    )
    .unwrap();
    let evil = out.path().join("evil.tar");
    tar_dir(docker.path(), &evil);
    let (_t2, s2) = store();
    let e = s2.load(&evil).unwrap_err();
    assert!(e.message.contains("outside the archive"), "{e}");
    assert!(s2.list().unwrap().is_empty());
}
