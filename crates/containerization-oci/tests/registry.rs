//! Pull, push, credentials and failure handling against a real local
//! registry (scripts/start-registry.sh) with the busybox fixture image.

mod common;

use std::collections::HashSet;
use std::fs;
use std::sync::{Arc, Mutex};

use common::*;
use containerization_error::Code;
use containerization_oci::{
    CredentialStore, ImageStore, Platform, ProgressEvent, PullOptions, PushOptions, Scheme,
    verify_login,
};

fn store() -> (tempfile::TempDir, ImageStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(tmp.path()).unwrap();
    (tmp, s)
}

fn no_ingest_leftovers(s: &ImageStore) {
    let left: Vec<_> = fs::read_dir(s.content().root().join("ingest"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "partial data left in ingest: {left:?}");
}

#[tokio::test]
async fn pull_oci_and_docker_v2s2_images_then_repull_is_cached() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    let manifest_digest = busybox_layout(layout.path());
    push_layout(
        layout.path(),
        "latest",
        &format!("{}/test/busybox:latest", reg.host()),
        false,
        false,
    );
    push_layout(
        layout.path(),
        "latest",
        &format!("{}/test/busybox-v2:latest", reg.host()),
        true,
        false,
    );

    let (_t, s) = store();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |e| ev.lock().unwrap().push(e))),
        ..Default::default()
    };
    let oci = s
        .pull(&format!("{}/test/busybox:latest", reg.host()), &opts)
        .await
        .unwrap();
    assert_eq!(oci.reference, format!("{}/test/busybox:latest", reg.host()));
    assert_eq!(oci.digest(), manifest_digest);
    assert_eq!(
        oci.media_type(),
        "application/vnd.oci.image.manifest.v1+json"
    );
    let host = Platform::parse("linux/amd64").unwrap();
    let (_, manifest) = oci.resolve_manifest(s.content(), &host).unwrap();
    for l in manifest.layers() {
        assert!(s.content().blob_path(l.digest().as_ref()).is_file());
    }
    assert_eq!(
        oci.config(s.content(), &host)
            .unwrap()
            .architecture()
            .to_string(),
        "amd64"
    );
    assert_eq!(oci.platforms(s.content()).unwrap(), vec![host.clone()]);
    assert!(oci.size(s.content()).unwrap() > 100_000);
    {
        let ev = events.lock().unwrap();
        assert!(matches!(ev.first(), Some(ProgressEvent::Resolving { .. })));
        assert!(
            ev.iter()
                .any(|e| matches!(e, ProgressEvent::BlobDone { cached: false, .. }))
        );
        assert!(matches!(ev.last(), Some(ProgressEvent::Done { .. })));
    }

    let v2 = s
        .pull(
            &format!("{}/test/busybox-v2", reg.host()),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        v2.media_type(),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        v2.reference,
        format!("{}/test/busybox-v2:latest", reg.host())
    );
    let (_, m2) = v2.resolve_manifest(s.content(), &host).unwrap();
    assert!(s.content().contains(m2.layers()[0].digest().as_ref()));
    assert_eq!(s.list().unwrap().len(), 2);

    // Two pulls of one image at once in one store both succeed.
    let (_t3, s3) = store();
    let r = format!("{}/test/busybox:latest", reg.host());
    let defaults = PullOptions::default();
    let (a, b) = tokio::join!(s3.pull(&r, &defaults), s3.pull(&r, &defaults));
    assert_eq!(a.unwrap().digest(), b.unwrap().digest());
    no_ingest_leftovers(&s3);

    // A second pull downloads nothing.
    events.lock().unwrap().clear();
    s.pull(&format!("{}/test/busybox:latest", reg.host()), &opts)
        .await
        .unwrap();
    let ev = events.lock().unwrap();
    assert!(
        ev.iter()
            .all(|e| !matches!(e, ProgressEvent::BlobStart { .. })),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, ProgressEvent::BlobDone { cached: true, .. }))
    );
    let inspect = s.inspect(&format!("{}/test/busybox", reg.host())).unwrap();
    assert_eq!(inspect["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(inspect["platforms"][0]["config"]["architecture"], "amd64");
    no_ingest_leftovers(&s);
}

#[tokio::test]
async fn index_pull_selects_platform_and_push_round_trips_by_digest() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    let manifest_digest = busybox_layout(layout.path());
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
    let opts = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let img = s.pull(&r, &opts).await.unwrap();
    assert_eq!(img.digest(), index_digest);
    assert!(img.media_type().contains("index"));
    let arm = Platform::parse("linux/arm64/v8").unwrap();
    let (d, _) = img.resolve_manifest(s.content(), &arm).unwrap();
    assert_eq!(d.digest().to_string(), manifest_digest);
    let missing = s
        .pull(
            &r,
            &PullOptions {
                platform: Some(Platform::parse("linux/s390x").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(missing.is_code(Code::NotFound), "{missing}");
    assert!(missing.message.contains("linux/arm64"), "{missing}");

    // Push every local platform under a new name, then pull it back by digest.
    let target = format!("{}/other/multi:v1", reg.host());
    s.tag(&r, &target).unwrap();
    s.push(&target, &PushOptions::default()).await.unwrap();
    let (_t2, s2) = store();
    let by_digest = format!("{}/other/multi@{index_digest}", reg.host());
    let back = s2.pull(&by_digest, &Default::default()).await.unwrap();
    assert_eq!(back.digest(), index_digest);
    assert_eq!(back.reference, by_digest);
    // A single platform pushed as a plain manifest.
    let single = format!("{}/other/single:v1", reg.host());
    s.tag(&r, &single).unwrap();
    let one = PushOptions {
        platform: Some(Platform::parse("linux/amd64").unwrap()),
        ..Default::default()
    };
    s.push(&single, &one).await.unwrap();
    let got = s2.pull(&single, &Default::default()).await.unwrap();
    assert_eq!(got.digest(), manifest_digest);
    // Pushing what is already there is a no-op upload.
    s.push(&target, &PushOptions::default()).await.unwrap();
}

#[tokio::test]
async fn unknown_image_and_unreachable_registry() {
    let reg = Registry::start(None);
    let (_t, s) = store();
    let e = s
        .pull(&format!("{}/no/such:tag", reg.host()), &Default::default())
        .await
        .unwrap_err();
    assert!(e.is_code(Code::NotFound), "{e}");
    assert!(e.message.contains("no/such:tag"), "{e}");
    let e = s.get("no/such:tag").unwrap_err();
    assert!(e.is_code(Code::NotFound));
    assert_eq!(e.message, "image 'no/such:tag' not found");

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = s
        .pull(&format!("127.0.0.1:{port}/a/b"), &Default::default())
        .await
        .unwrap_err();
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
    let e = s.pull("Bad/Name", &Default::default()).await.unwrap_err();
    assert!(e.is_code(Code::InvalidArgument), "{e}");
    assert!(s.list().unwrap().is_empty());
}

#[tokio::test]
async fn corrupted_blob_is_refused_and_nothing_is_stored() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    push_layout(
        layout.path(),
        "latest",
        &format!("{}/test/busybox:latest", reg.host()),
        false,
        false,
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
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
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = reg.blob_data(&layer);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff; // same size, wrong content
    fs::write(&data, &bytes).unwrap();

    let (_t, s) = store();
    let e = s
        .pull(&format!("{}/test/busybox", reg.host()), &Default::default())
        .await
        .unwrap_err();
    assert!(e.message.contains("digest mismatch"), "{e}");
    assert!(!s.content().contains(&layer));
    assert!(s.list().unwrap().is_empty());
    no_ingest_leftovers(&s);
}

#[tokio::test]
async fn interrupted_pull_leaves_no_partial_blob_and_rerun_completes() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    random_layout(layout.path(), &[3 << 20], 7);
    push_layout(
        layout.path(),
        "latest",
        &format!("{}/test/big:latest", reg.host()),
        false,
        false,
    );
    let proxy = CuttingProxy::start(reg.port, 1 << 20);

    let (_t, s) = store();
    let r = format!("127.0.0.1:{}/test/big:latest", proxy.port);
    let e = s.pull(&r, &Default::default()).await.unwrap_err();
    assert!(
        !proxy.armed.load(std::sync::atomic::Ordering::SeqCst),
        "proxy never cut: {e}"
    );
    let big: Vec<_> = s
        .content()
        .list()
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 1 << 20)
        .collect();
    assert!(big.is_empty(), "partial blob visible: {big:?}");
    assert!(s.list().unwrap().is_empty());
    no_ingest_leftovers(&s);

    let img = s.pull(&r, &Default::default()).await.unwrap();
    let (_, m) = img
        .resolve_manifest(s.content(), &Platform::parse("linux/amd64").unwrap())
        .unwrap();
    assert!(s.content().contains(m.layers()[0].digest().as_ref()));
}

#[tokio::test]
async fn htpasswd_registry_needs_login() {
    let auth_dir = tempfile::tempdir().unwrap();
    let htpasswd = auth_dir.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "user", "secret"])
        .output()
        .expect("htpasswd missing (apt-get install apache2-utils)");
    fs::write(&htpasswd, out.stdout).unwrap();
    let reg = Registry::start(Some(&htpasswd));
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path());
    skopeo_copy(&[
        "--dest-creds",
        "user:secret",
        &format!("oci:{}:latest", layout.path().display()),
        &format!("docker://{}/test/busybox:latest", reg.host()),
    ]);

    let (t, s) = store();
    let r = format!("{}/test/busybox:latest", reg.host());
    let e = s.pull(&r, &Default::default()).await.unwrap_err();
    assert!(e.message.contains("login"), "{e}");

    let e = verify_login(&reg.host(), "user", "wrong", Scheme::Auto)
        .await
        .unwrap_err();
    assert!(e.message.contains("wrong username or password"), "{e}");
    verify_login(&reg.host(), "user", "secret", Scheme::Auto)
        .await
        .unwrap();

    CredentialStore::open(t.path())
        .unwrap()
        .login(&reg.host(), "user", "secret")
        .unwrap();
    s.pull(&r, &Default::default()).await.unwrap();
    let target = format!("{}/test/pushed:v1", reg.host());
    s.tag(&r, &target).unwrap();
    s.push(&target, &PushOptions::default()).await.unwrap();
    CredentialStore::open(t.path())
        .unwrap()
        .logout(&reg.host())
        .unwrap();
    let (_t2, s2) = store();
    assert!(s2.pull(&target, &Default::default()).await.is_err());
}

#[tokio::test]
async fn tag_delete_gc_and_prune() {
    let reg = Registry::start(None);
    let layout = tempfile::tempdir().unwrap();
    let md = busybox_layout(layout.path());
    push_layout(
        layout.path(),
        "latest",
        &format!("{}/test/busybox:latest", reg.host()),
        false,
        false,
    );
    let (_t, s) = store();
    let r = format!("{}/test/busybox:latest", reg.host());
    s.pull(&r, &Default::default()).await.unwrap();
    let total = s.content().total_size().unwrap();

    let tagged = s.tag(&r, "mine/bb:v1").unwrap();
    assert_eq!(tagged.reference, "docker.io/mine/bb:v1");
    assert_eq!(s.get("mine/bb:v1").unwrap().digest(), md);
    // By digest or a unique digest prefix (both names share the digest).
    assert_eq!(s.get(&md).unwrap().digest(), md);
    assert_eq!(
        s.get(&md["sha256:".len().."sha256:".len() + 12])
            .unwrap()
            .digest(),
        md
    );
    s.delete(&r).unwrap();
    assert!(s.delete(&r).unwrap_err().is_code(Code::NotFound));
    assert!(
        s.gc().unwrap().removed.is_empty(),
        "still referenced by the tag"
    );
    s.delete("mine/bb:v1").unwrap();
    let gc = s.gc().unwrap();
    assert_eq!(gc.reclaimed_bytes, total);
    assert_eq!(s.content().total_size().unwrap(), 0);

    // Prune: a digest-only reference is dangling; `all` removes what is unused.
    let by_digest = format!("{}/test/busybox@{md}", reg.host());
    s.pull(&by_digest, &Default::default()).await.unwrap();
    s.pull(&r, &Default::default()).await.unwrap();
    s.tag(&r, "keep/me:1").unwrap();
    let report = s.prune(false, &HashSet::new()).unwrap();
    assert_eq!(report.deleted, vec![by_digest]);
    assert_eq!(
        report.reclaimed_bytes, 0,
        "the tagged image still uses the blobs"
    );
    let in_use: HashSet<String> = ["docker.io/keep/me:1".to_string()].into();
    let report = s.prune(true, &in_use).unwrap();
    assert_eq!(report.deleted, vec![r.clone()]);
    assert_eq!(s.list().unwrap().len(), 1);
    let report = s.prune(true, &HashSet::new()).unwrap();
    assert_eq!(report.deleted, vec!["docker.io/keep/me:1".to_string()]);
    assert_eq!(report.reclaimed_bytes, total);
}
