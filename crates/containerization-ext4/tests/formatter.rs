//! Formatter images checked by e2fsck and read back by debugfs.

mod common;

use std::io::Cursor;

use containerization_ext4::{
    DeviceKind, FormatOptions, Formatter, JournalOptions, Metadata, Timestamp,
};

#[test]
fn empty_image_passes_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.ext4");
    let f = Formatter::create(&img, 64 << 20, FormatOptions::default()).unwrap();
    f.close().unwrap();
    common::fsck(&img);
}

#[test]
fn small_tree_passes_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.ext4");
    let mut f = Formatter::create(&img, 256 << 20, FormatOptions::default()).unwrap();
    let t = Timestamp {
        secs: 1_700_000_000,
        nanos: 5,
    };
    f.create_dir("/etc", Metadata::with_mode(0o755).at(t))
        .unwrap();
    f.create_file(
        "/etc/hello",
        Metadata::with_mode(0o644).at(t),
        &mut Cursor::new(b"hello world\n".to_vec()),
    )
    .unwrap();
    let mut big = vec![0u8; 3 << 20];
    big[5 << 12] = 1;
    big[(3 << 20) - 1] = 7;
    f.create_file("/big", Metadata::with_mode(0o600), &mut Cursor::new(big))
        .unwrap();
    f.create_symlink("/etc/short", "hello", Metadata::with_mode(0o777))
        .unwrap();
    f.create_symlink("/etc/long", "x".repeat(200), Metadata::with_mode(0o777))
        .unwrap();
    f.create_hardlink("/etc/hello2", "/etc/hello").unwrap();
    f.create_device(
        "/dev/null",
        DeviceKind::Char,
        1,
        3,
        Metadata::with_mode(0o666),
    )
    .unwrap();
    f.create_device(
        "/dev/big",
        DeviceKind::Block,
        300,
        70000,
        Metadata::with_mode(0o600),
    )
    .unwrap();
    f.create_fifo("/run/fifo", Metadata::with_mode(0o600))
        .unwrap();
    f.create_socket("/run/sock", Metadata::with_mode(0o600))
        .unwrap();
    f.set_xattr("/etc/hello", "user.greeting", b"hi").unwrap();
    f.set_xattr("/big", "user.large", &vec![b'v'; 1000])
        .unwrap();
    for i in 0..500 {
        f.create_file(
            format!("/many/file-with-a-longish-name-{i:05}"),
            Metadata::with_mode(0o644),
            &mut Cursor::new(vec![]),
        )
        .unwrap();
    }
    f.close().unwrap();
    let tree = common::check_image(&img);
    let get = |p: &str| {
        tree.get(p.as_bytes())
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    let hello = get("etc/hello");
    assert_eq!(
        hello.kind,
        common::Kind::File(common::sha(b"hello world\n"))
    );
    assert_eq!(hello.nlink, 2);
    assert_eq!(hello.mtime, (1_700_000_000, 5));
    assert_eq!(
        hello.xattrs.get("user.greeting").map(|v| v.as_slice()),
        Some(&b"hi"[..])
    );
    assert_eq!(get("etc/hello2").ino, hello.ino);
    assert_eq!(
        get("etc/short").kind,
        common::Kind::Symlink(b"hello".to_vec())
    );
    assert_eq!(get("etc/long").kind, common::Kind::Symlink(vec![b'x'; 200]));
    assert_eq!(get("dev/null").kind, common::Kind::Char(1, 3));
    assert_eq!(get("dev/big").kind, common::Kind::Block(300, 70000));
    assert_eq!(get("run/fifo").kind, common::Kind::Fifo);
    assert_eq!(get("run/sock").kind, common::Kind::Socket);
    assert_eq!(get("big").size, 3 << 20);
    assert_eq!(get("big").xattrs["user.large"].len(), 1000);
    assert_eq!(tree.keys().filter(|k| k.starts_with(b"many/")).count(), 500);
    assert_eq!(get("etc").nlink, 2);
    let dump = common::debugfs(&img, "cat /etc/hello\nhtree_dump /many\n");
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("hello world"), "{text}");
    assert!(
        text.contains("Root node dump"),
        "/many should be hash-indexed: {text}"
    );
}

#[test]
fn journal_image_passes_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.ext4");
    let opts = FormatOptions {
        journal: Some(JournalOptions::default()),
        ..Default::default()
    };
    let mut f = Formatter::create(&img, 256 << 20, opts).unwrap();
    f.create_file(
        "/a",
        Metadata::with_mode(0o644),
        &mut Cursor::new(b"x".to_vec()),
    )
    .unwrap();
    f.close().unwrap();
    common::fsck(&img);
}
