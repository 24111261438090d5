//! OCI layer semantics: whiteouts, opaque directories, hard links,
//! replacement, names, metadata and hostile entries. Every image is checked
//! by e2fsck and read back by three readers (ours, ext4-view, debugfs).

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::layer::Layer;
use common::{Kind, Tree, sha};
use containerization_error::Code;
use containerization_ext4::{UnpackStats, unpack_layers};
use tar::EntryType;

struct Built {
    _dir: tempfile::TempDir,
    image: PathBuf,
    result: containerization_error::Result<UnpackStats>,
}

fn build(layers: Vec<Vec<u8>>) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, l) in layers.into_iter().enumerate() {
        let p = dir.path().join(format!("layer{i}.tar"));
        std::fs::write(&p, l).unwrap();
        paths.push(p);
    }
    let image = dir.path().join("rootfs.ext4");
    let result = unpack_layers(&paths, &image, 128 << 20);
    Built {
        _dir: dir,
        image,
        result,
    }
}

fn tree_of(layers: Vec<Vec<u8>>) -> Tree {
    let b = build(layers);
    b.result.as_ref().unwrap();
    common::check_image(&b.image)
}

fn names(t: &Tree) -> Vec<String> {
    t.keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn whiteout_of_a_file_and_of_a_directory() {
    let mut l1 = Layer::new();
    l1.dir("a", 0o755)
        .file("a/file", b"1")
        .file("a/keep", b"k")
        .dir("d", 0o755)
        .file("d/x", b"x")
        .dir("d/sub", 0o700)
        .file("d/sub/y", b"y");
    let mut l2 = Layer::new();
    l2.whiteout("a/file").whiteout("d");
    let t = tree_of(vec![l1.finish(), l2.finish()]);
    assert_eq!(names(&t), ["a", "a/keep"]);
}

#[test]
fn opaque_directory_before_and_after_its_siblings() {
    let mut l1 = Layer::new();
    l1.dir("o1", 0o755)
        .file("o1/old", b"o")
        .dir("o1/olddir", 0o755)
        .file("o1/olddir/f", b"f");
    l1.dir("o2", 0o755).file("o2/old", b"o");
    let mut l2 = Layer::new();
    // Marker first, then the layer's own entries.
    l2.dir("o1", 0o750).opaque("o1").file("o1/new", b"n1");
    // Layer's own entries first, then the marker.
    l2.dir("o2", 0o750)
        .file("o2/new", b"n2")
        .dir("o2/newdir", 0o755)
        .file("o2/newdir/z", b"z")
        .opaque("o2");
    let t = tree_of(vec![l1.finish(), l2.finish()]);
    assert_eq!(
        names(&t),
        ["o1", "o1/new", "o2", "o2/new", "o2/newdir", "o2/newdir/z"]
    );
    assert_eq!(t[&b"o1"[..]].mode, 0o750);
}

#[test]
fn hardlink_chains_across_layers() {
    let mut l1 = Layer::new();
    l1.file("f", b"shared data");
    let mut l2 = Layer::new();
    l2.hardlink("g", "f");
    let mut l3 = Layer::new();
    l3.hardlink("h", "g")
        .dir("sub", 0o755)
        .hardlink("sub/i", "/f");
    let t = tree_of(vec![l1.finish(), l2.finish(), l3.finish()]);
    let ino = t[&b"f"[..]].ino;
    for p in ["f", "g", "h", "sub/i"] {
        let e = &t[p.as_bytes()];
        assert_eq!(e.ino, ino, "{p}");
        assert_eq!(e.nlink, 4, "{p}");
        assert_eq!(e.kind, Kind::File(sha(b"shared data")));
    }
    // A whiteout of one name leaves the others with one link fewer.
    let mut l1 = Layer::new();
    l1.file("f", b"x");
    let mut l2 = Layer::new();
    l2.hardlink("g", "f");
    let mut l3 = Layer::new();
    l3.whiteout("f");
    let t = tree_of(vec![l1.finish(), l2.finish(), l3.finish()]);
    assert_eq!(names(&t), ["g"]);
    assert_eq!(t[&b"g"[..]].nlink, 1);
}

#[test]
fn directory_replaced_by_file_and_back() {
    let mut l1 = Layer::new();
    l1.dir("x", 0o755).file("x/child", b"c");
    let mut l2 = Layer::new();
    l2.file("x", b"now a file");
    let mut l3 = Layer::new();
    l3.dir("x", 0o711).file("x/new", b"n");
    let t = tree_of(vec![l1.finish(), l2.finish(), l3.finish()]);
    assert_eq!(names(&t), ["x", "x/new"]);
    assert_eq!(t[&b"x"[..]].mode, 0o711);
    // And a file replaced by a directory within one layer stack step.
    let mut l1 = Layer::new();
    l1.file("y", b"file");
    let mut l2 = Layer::new();
    l2.dir("y", 0o755).symlink("y/link", "../y");
    let t = tree_of(vec![l1.finish(), l2.finish()]);
    assert_eq!(t[&b"y/link"[..]].kind, Kind::Symlink(b"../y".to_vec()));
}

#[test]
fn entries_escaping_the_root_are_refused() {
    let cases: Vec<(Layer, &str)> = vec![
        {
            let mut l = Layer::new();
            l.raw(EntryType::Regular, b"../evil", b"", b"x");
            (l, "../evil")
        },
        {
            let mut l = Layer::new();
            l.raw(EntryType::Regular, b"a/../../evil", b"", b"x");
            (l, "a/../../evil")
        },
        {
            let mut l = Layer::new();
            l.raw(EntryType::Link, b"hl", b"../../etc/passwd", b"");
            (l, "../../etc/passwd")
        },
    ];
    for (l, needle) in cases {
        let b = build(vec![l.finish()]);
        let err = b.result.expect_err("escaping entry must fail");
        assert!(err.is_code(Code::InvalidArgument), "{err}");
        assert!(
            err.message.contains(needle),
            "message names the entry: {}",
            err.message
        );
        assert!(!b.image.exists(), "no half-built image is left behind");
    }
    // Writing through a symlink that points outside is refused too.
    let mut l1 = Layer::new();
    l1.symlink("etc", "/host/etc");
    let mut l2 = Layer::new();
    l2.file("etc/passwd", b"root::0:0");
    let b = build(vec![l1.finish(), l2.finish()]);
    let err = b.result.expect_err("write through symlink must fail");
    assert!(err.is_code(Code::InvalidArgument), "{err}");
    assert!(err.message.contains("etc/passwd"), "{}", err.message);
}

#[test]
fn long_odd_and_looping_names() {
    let long = "n".repeat(255);
    let deep = format!("{}/{}/{}", "d".repeat(90), "e".repeat(90), "f".repeat(90));
    let mut l = Layer::new();
    l.file(&long, b"255");
    l.file(&deep, b"gnu long name");
    l.pax_path_file(
        format!("pax/{}", "p".repeat(150)).as_bytes(),
        b"pax long name",
    );
    l.raw(EntryType::Regular, b"bytes-\xff\xfe", b"", b"non utf8");
    l.symlink("loop-a", "loop-b")
        .symlink("loop-b", "loop-a")
        .symlink("self", "self");
    let t = tree_of(vec![l.finish()]);
    assert_eq!(t[long.as_bytes()].kind, Kind::File(sha(b"255")));
    assert_eq!(t[deep.as_bytes()].kind, Kind::File(sha(b"gnu long name")));
    assert_eq!(
        t[format!("pax/{}", "p".repeat(150)).as_bytes()].kind,
        Kind::File(sha(b"pax long name"))
    );
    assert_eq!(t[&b"bytes-\xff\xfe"[..]].kind, Kind::File(sha(b"non utf8")));
    assert_eq!(t[&b"loop-a"[..]].kind, Kind::Symlink(b"loop-b".to_vec()));
    assert_eq!(t[&b"self"[..]].kind, Kind::Symlink(b"self".to_vec()));
    // 256 bytes is one too many.
    let mut l = Layer::new();
    l.file(&"n".repeat(256), b"x");
    let b = build(vec![l.finish()]);
    assert!(
        b.result
            .expect_err("256-byte name")
            .is_code(Code::InvalidArgument)
    );
}

#[test]
fn devices_fifos_xattrs_owners_and_times() {
    let cap = [
        1u8, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut l = Layer::new();
    l.dir("dev", 0o755)
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/sda", EntryType::Block, 8, 0);
    l.device("dev/wide", EntryType::Char, 300, 70000)
        .fifo("run-fifo");
    l.dir("tmp", 0o1777);
    l.file_full(
        "bin/ping",
        0o4755,
        100_000,
        200_000,
        &[
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.user.note", b"hello"),
            ("mtime", b"1700000000.123456789"),
            ("uid", b"3000000000"),
        ],
        b"binary",
    );
    l.file_full("old", 0o644, 0, 0, &[("mtime", b"-86400.5")], b"1969");
    l.file_full(
        "future",
        0o644,
        0,
        0,
        &[("mtime", b"4102444800.25")],
        b"2100",
    );
    let t = tree_of(vec![l.finish()]);
    assert_eq!(t[&b"dev/null"[..]].kind, Kind::Char(1, 3));
    assert_eq!(t[&b"dev/sda"[..]].kind, Kind::Block(8, 0));
    assert_eq!(t[&b"dev/wide"[..]].kind, Kind::Char(300, 70000));
    assert_eq!(t[&b"run-fifo"[..]].kind, Kind::Fifo);
    assert_eq!(t[&b"tmp"[..]].mode, 0o1777);
    let ping = &t[&b"bin/ping"[..]];
    assert_eq!(ping.mode, 0o4755);
    assert_eq!((ping.uid, ping.gid), (3_000_000_000, 200_000));
    assert_eq!(ping.mtime, (1_700_000_000, 123_456_789));
    assert_eq!(ping.xattrs["security.capability"], cap);
    assert_eq!(ping.xattrs["user.note"], b"hello");
    assert_eq!(t[&b"old"[..]].mtime, (-86401, 500_000_000));
    assert_eq!(t[&b"future"[..]].mtime, (4_102_444_800, 250_000_000));
}

#[test]
fn gzip_and_zstd_layers() {
    let mut l1 = Layer::new();
    l1.file("gz", b"gzip layer");
    let mut l2 = Layer::new();
    l2.file("zst", b"zstd layer");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&l1.finish()).unwrap();
    let zst = zstd::encode_all(&l2.finish()[..], 3).unwrap();
    let t = tree_of(vec![gz.finish().unwrap(), zst]);
    assert_eq!(t[&b"gz"[..]].kind, Kind::File(sha(b"gzip layer")));
    assert_eq!(t[&b"zst"[..]].kind, Kind::File(sha(b"zstd layer")));
}

#[test]
fn file_data_with_holes_and_extents() {
    // Zero runs become holes; data runs become extents; both read back.
    let mut data = vec![0u8; 10 << 20];
    for i in (0..data.len()).step_by(3 * 4096) {
        data[i] = (i / 4096) as u8 | 1;
    }
    let mut l = Layer::new();
    l.file("fragmented", &data).file("empty", b"");
    let b = build(vec![l.finish()]);
    b.result.as_ref().unwrap();
    let t = common::check_image(&b.image);
    let e = &t[&b"fragmented"[..]];
    assert_eq!(e.kind, Kind::File(sha(&data)));
    let fs = containerization_ext4::Ext4::open(&b.image).unwrap();
    let st = fs.stat("/fragmented").unwrap();
    // 854 data blocks plus extent tree blocks, far below the 2560 of a dense file.
    assert!(
        st.sectors / 8 < 900,
        "holes were not kept: {} blocks",
        st.sectors / 8
    );
}
