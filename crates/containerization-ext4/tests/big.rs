//! Large cases: a 100k-entry directory (hash-indexed) and a 5 GiB sparse
//! file (over 4 GiB, stored as holes).

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom};

use containerization_ext4::{Ext4, FormatOptions, Formatter, Metadata};

#[test]
fn hundred_thousand_entry_directory() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("big-dir.ext4");
    // A fixed UUID (so a fixed hash seed and layout): with 100k names two
    // usually share a hash, and with a random seed such a pair sometimes
    // straddles two leaves. The image is right then (the second leaf's key
    // has the continuation bit, which the kernel follows), but ext4-view
    // 1.0 looks in one leaf only and would report the second name missing.
    let opts = FormatOptions {
        min_inodes: 110_000,
        uuid: Some(*b"big-dir-fixed-ok"),
        ..Default::default()
    };
    let mut f = Formatter::create(&img, 1 << 30, opts).unwrap();
    for i in 0..100_000u32 {
        f.create_file(
            format!("/d/entry-with-a-longer-name-{i:06}"),
            Metadata::with_mode(0o644),
            &mut Cursor::new(i.to_le_bytes()),
        )
        .unwrap();
    }
    f.close().unwrap();
    let tree = common::check_image(&img);
    assert_eq!(
        tree.keys().filter(|k| k.starts_with(b"d/")).count(),
        100_000
    );
    let fs = Ext4::open(&img).unwrap();
    assert_eq!(
        fs.read_file("/d/entry-with-a-longer-name-054321").unwrap(),
        54321u32.to_le_bytes()
    );
    let st = fs.stat("/d").unwrap();
    assert_ne!(st.flags & 0x1000, 0, "directory is hash-indexed");
    let dump = common::debugfs(&img, "htree_dump /d\n");
    let text = String::from_utf8_lossy(&dump);
    assert!(
        text.contains("Indirect levels: 1"),
        "100k entries need a two-level index"
    );
}

#[test]
fn five_gib_sparse_file() {
    const SIZE: u64 = 5 << 30;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("sparse.ext4");
    let mut f = Formatter::create(&img, 6 << 30, FormatOptions::default()).unwrap();
    let head = vec![b'A'; 4096];
    let tail = vec![b'Z'; 4096];
    let mut data = Cursor::new(head.clone())
        .chain(std::io::repeat(0).take(SIZE - 8192))
        .chain(Cursor::new(tail.clone()));
    assert_eq!(
        f.create_file("/sparse", Metadata::with_mode(0o644), &mut data)
            .unwrap(),
        SIZE
    );
    f.close().unwrap();
    // The image itself stays small on disk.
    let on_disk = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&img).unwrap()) * 512;
    assert!(on_disk < 64 << 20, "image uses {on_disk} bytes on disk");
    let tree = common::check_image(&img);
    assert_eq!(tree[&b"sparse"[..]].size, SIZE);
    let fs = Ext4::open(&img).unwrap();
    let st = fs.stat("/sparse").unwrap();
    assert_eq!(st.sectors, 2 * 8, "only the two data blocks are allocated");
    let mut r = fs.open_file("/sparse").unwrap();
    let mut buf = vec![0u8; 4096];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, head);
    r.seek(SeekFrom::Start(SIZE / 2)).unwrap();
    r.read_exact(&mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    r.seek(SeekFrom::End(-4096)).unwrap();
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, tail);
    let stat = String::from_utf8_lossy(&common::debugfs(&img, "stat /sparse\n")).into_owned();
    assert!(stat.contains(&format!("Size: {SIZE}")), "{stat}");
}
