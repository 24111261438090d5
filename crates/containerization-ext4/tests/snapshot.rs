//! SnapshotStore: build once, concurrent callers, remove, list.

mod common;

use std::sync::Arc;

use common::layer::Layer;
use containerization_ext4::SnapshotStore;

#[test]
fn concurrent_get_or_create_builds_once_and_remove_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("l.tar");
    let mut l = Layer::new();
    l.file("etc/os-release", b"ID=test\n");
    std::fs::write(&layer, l.finish()).unwrap();
    let store = Arc::new(SnapshotStore::open(dir.path().join("snapshots")).unwrap());
    let key = format!("sha256:{}", "ab".repeat(32));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, key, layer) = (store.clone(), key.clone(), layer.clone());
            std::thread::spawn(move || store.get_or_create(&key, &[layer], 64 << 20).unwrap())
        })
        .collect();
    let paths: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    let p = &paths[0];
    assert_eq!(
        p,
        &dir.path()
            .join("snapshots")
            .join("ab".repeat(32))
            .join("rootfs.ext4")
    );
    common::fsck(p);
    let fs = containerization_ext4::Ext4::open(p).unwrap();
    assert_eq!(fs.read_file("/etc/os-release").unwrap(), b"ID=test\n");
    // Only the final image is left in the snapshot directory (plus its key).
    let mut names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["key", "rootfs.ext4"]);
    assert_eq!(store.list().unwrap(), vec![key.clone()]);
    assert_eq!(store.path(&key).as_ref(), Some(p));
    assert!(store.remove(&key).unwrap());
    assert!(!store.remove(&key).unwrap());
    assert!(store.list().unwrap().is_empty());
    assert!(store.path(&key).is_none());
}

#[test]
fn failed_build_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let key = format!("sha256:{}", "cd".repeat(32));
    let err = store
        .get_or_create(&key, &[dir.path().join("missing.tar")], 64 << 20)
        .unwrap_err();
    assert!(err.message.contains("missing.tar"), "{err}");
    assert!(store.path(&key).is_none());
    assert!(store.list().unwrap().is_empty());
    assert!(
        store
            .get_or_create("sha256:../../x", &[], 64 << 20)
            .is_err()
    );
}
