//! Extra mounts end to end in one VM: a virtio-fs directory share and a
//! single shared file (virtiofsd from crates.io), an ext4 volume on
//! virtio-blk made by our formatter, a tmpfs, a read-only rootfs and the
//! /dev/shm size. Needs `cargo install virtiofsd --locked` (scripts/setup.sh).

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use containerization::{ContainerManager, LinuxContainer, Mount, Stdio};
use containerization_ext4::{Ext4, FormatOptions, Formatter, JournalOptions};

async fn sh(c: &LinuxContainer, id: &str, script: &str, uid: u32) -> (i32, String, String) {
    let (out, out_buf) = Stdio::buffer();
    let (err, err_buf) = Stdio::buffer();
    let p = c
        .exec(id, |p| {
            p.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
            p.user.uid = uid;
            p.user.gid = uid;
            p.stdout = out;
            p.stderr = err;
            Ok(())
        })
        .await
        .unwrap();
    p.start().await.unwrap();
    let status = p.wait(Some(Duration::from_secs(120))).await.unwrap();
    p.delete().await.unwrap();
    (status.exit_code, out_buf.text(), err_buf.text())
}

fn virtiofsd_installed() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("virtiofsd").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "virtiofsd is not on PATH: run scripts/setup.sh --deps-only (cargo install virtiofsd --locked)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_volumes_tmpfs_and_read_only_rootfs() {
    virtiofsd_installed();
    let root = tempfile::tempdir().unwrap();
    let reference = common::load_busybox_image(root.path());
    let kernel = common::kernel();
    let initfs = Mount::block("cpio", common::initfs(), "/", vec![]);
    let manager =
        ContainerManager::with_root(kernel, initfs, Some(root.path().to_path_buf()), None).unwrap();

    let host = root.path().join("host dir,with comma");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host says hi\n").unwrap();
    let single = root.path().join("single.conf");
    std::fs::write(&single, "key=value\n").unwrap();
    let volume = root.path().join("volume.img");
    Formatter::create(
        &volume,
        64 << 20,
        FormatOptions {
            journal: Some(JournalOptions::default()),
            ..Default::default()
        },
    )
    .unwrap()
    .close()
    .unwrap();

    let c = manager
        .create("mounts", &reference, None, |c| {
            c.process.args = vec!["/bin/sh".into(), "-c".into(), "sleep 600".into()];
            c.mounts = vec![
                Mount::share(&host, "/host", vec![]),
                Mount::share(&single, "/etc/app/single.conf", vec!["ro".into()]),
                Mount::block("ext4", &volume, "/data", vec![]),
                Mount::any("tmpfs", "tmpfs", "/scratch", vec!["size=8m".into()]),
            ];
            c.read_only_rootfs = true;
            c.shm_size_in_bytes = Some(32 << 20);
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    c.start().await.unwrap();

    // The directory share: host files are visible, container writes reach
    // the host, and a file the host creates later is visible at once.
    let (code, out, err) = sh(&c, "read", "cat /host/from-host", 0).await;
    assert_eq!((code, out.as_str()), (0, "host says hi\n"), "{err}");
    let (code, _, err) = sh(&c, "write", "echo ctr > /host/from-ctr", 0).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap(),
        "ctr\n"
    );
    std::fs::write(host.join("later"), "later\n").unwrap();
    let (code, out, err) = sh(&c, "later", "cat /host/later", 0).await;
    assert_eq!((code, out.as_str()), (0, "later\n"), "{err}");
    // Ownership: a file made by uid 1000 in the container is owned by uid
    // 1000 on the host (virtiofsd as root creates files as the caller).
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (code, _, err) = sh(&c, "uid", "echo u > /host/by-1000", 1000).await;
    assert_eq!(code, 0, "{err}");
    let meta = std::fs::metadata(host.join("by-1000")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));

    // The single shared file, read-only.
    let (code, out, err) = sh(&c, "file", "cat /etc/app/single.conf", 0).await;
    assert_eq!((code, out.as_str()), (0, "key=value\n"), "{err}");
    let (code, _, _) = sh(&c, "file-ro", "echo x > /etc/app/single.conf", 0).await;
    assert_ne!(code, 0, "a read-only file bind accepted a write");
    assert_eq!(std::fs::read_to_string(&single).unwrap(), "key=value\n");

    // The read-only rootfs refuses writes; the mounts on it stay writable.
    let (code, _, _) = sh(&c, "rootfs", "touch /rootfile", 0).await;
    assert_ne!(code, 0, "the read-only rootfs accepted a write");
    let (code, out, err) = sh(
        &c,
        "data",
        "echo persisted > /data/file && sync && cat /data/file && \
         echo t > /scratch/t && grep -E ' /scratch | /dev/shm ' /proc/mounts",
        0,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("persisted\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tmpfs /scratch tmpfs") && l.contains("size=8192k")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" /dev/shm ") && l.contains("size=32768k")),
        "{out}"
    );

    c.stop().await.unwrap();
    manager.delete("mounts").await.unwrap();

    // The volume is clean after stop and holds what the container wrote.
    containerization_ext4::e2fsck_check(&volume).unwrap_or_else(|e| panic!("{e}"));
    let fs = Ext4::open(&volume).unwrap();
    assert_eq!(fs.read_file("/file").unwrap(), b"persisted\n");
}
