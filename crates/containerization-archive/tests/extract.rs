//! Extraction of ordinary and hostile archives.

use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use containerization_archive::{ArchiveReader, EntryKind};
use containerization_error::Code;

/// Builds tar members by hand so hostile names (`..`, absolute) survive.
struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }
    fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(name, tar::EntryType::Regular, data.len() as u64, 0o644);
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(mut self, name: &str) -> Self {
        let h = Self::header(name, tar::EntryType::Directory, 0, 0o755);
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn link(mut self, name: &str, target: &str, kind: tar::EntryType) -> Self {
        let mut h = Self::header(name, kind, 0, 0o777);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.link(name, target, tar::EntryType::Symlink)
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(name, target, tar::EntryType::Link)
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A destination inside a parent, so escapes land in the parent where the
/// test can look for them.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    (tmp, dest)
}

fn extract(bytes: Vec<u8>, dest: &Path) -> containerization_error::Result<()> {
    ArchiveReader::from_reader(Cursor::new(bytes)).extract_contents(dest)
}

fn assert_refused(bytes: Vec<u8>, entry: &str) -> tempfile::TempDir {
    let (tmp, dest) = sandbox();
    let err = extract(bytes, &dest).expect_err("hostile archive must be refused");
    assert!(err.is_code(Code::InvalidArgument), "{err}");
    assert!(
        err.message.contains(entry),
        "message names the entry: {err}"
    );
    tmp
}

#[test]
fn extracts_files_dirs_links_and_modes() {
    let bytes = TarBuilder::new()
        .dir("./etc/")
        .file("./etc/hostname", b"box\n")
        .file("bin/busybox", b"ELF")
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .symlink("lib", "usr/lib")
        .dir("usr/lib/")
        .file("lib/libc.so", b"libc")
        .bytes();
    let (_tmp, dest) = sandbox();
    extract(bytes, &dest).unwrap();
    assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(fs::read(dest.join("bin/ls")).unwrap(), b"ELF");
    // The write through the in-tree symlink `lib -> usr/lib` stays inside.
    assert_eq!(fs::read(dest.join("usr/lib/libc.so")).unwrap(), b"libc");
    let mode = fs::metadata(dest.join("etc/hostname"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn later_members_replace_earlier_ones() {
    let bytes = TarBuilder::new()
        .file("a", b"one")
        .file("a", b"two")
        .symlink("b", "a")
        .file("b", b"plain")
        .bytes();
    let (_tmp, dest) = sandbox();
    extract(bytes, &dest).unwrap();
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"two");
    assert!(
        !fs::symlink_metadata(dest.join("b"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn refuses_parent_dir_paths() {
    let tmp = assert_refused(TarBuilder::new().file("../evil", b"x").bytes(), "../evil");
    assert!(!tmp.path().join("evil").exists());
    assert_refused(
        TarBuilder::new().file("a/../../evil", b"x").bytes(),
        "a/../../evil",
    );
}

#[test]
fn refuses_absolute_paths() {
    assert_refused(
        TarBuilder::new().file("/etc/evil", b"x").bytes(),
        "/etc/evil",
    );
}

#[test]
fn refuses_writes_through_an_escaping_symlink() {
    // A relative symlink climbing out, then a file written through it.
    let tmp = assert_refused(
        TarBuilder::new()
            .symlink("up", "..")
            .file("up/evil", b"x")
            .bytes(),
        "up/evil",
    );
    assert!(!tmp.path().join("evil").exists());
    // An absolute symlink would be followed on the host.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    assert_refused(
        TarBuilder::new()
            .symlink("abs", &target)
            .file("abs/evil", b"x")
            .bytes(),
        "abs/evil",
    );
    assert!(!outside.path().join("evil").exists());
    // A chain: a -> b, b -> ../..
    assert_refused(
        TarBuilder::new()
            .symlink("b", "../..")
            .symlink("a", "b")
            .file("a/x/evil", b"x")
            .bytes(),
        "a/x/evil",
    );
}

#[test]
fn refuses_directory_member_through_symlink() {
    let outside = tempfile::tempdir().unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    // `d` is a symlink out; a later directory member `d/` must not chmod the
    // target: it replaces the link instead.
    let (_tmp, dest) = sandbox();
    extract(
        TarBuilder::new().symlink("d", &target).dir("d/").bytes(),
        &dest,
    )
    .unwrap();
    assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
    let mode = fs::metadata(outside.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn refuses_hardlink_escapes() {
    let tmp = assert_refused(
        TarBuilder::new()
            .hardlink("passwd", "../../etc/passwd")
            .bytes(),
        "passwd",
    );
    assert!(!tmp.path().join("dest/passwd").exists());
    assert_refused(
        TarBuilder::new().hardlink("passwd", "/etc/passwd").bytes(),
        "passwd",
    );
    // Through a symlink planted earlier.
    assert_refused(
        TarBuilder::new()
            .symlink("etc", "/etc")
            .hardlink("passwd", "etc/passwd")
            .bytes(),
        "passwd",
    );
}

#[test]
fn reads_entries_and_single_files_from_compressed_archives() {
    let plain = TarBuilder::new()
        .dir("etc/")
        .file("etc/os-release", b"ID=test\n")
        .symlink("sh", "busybox")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 1).unwrap();

    for bytes in [plain, gz, zst] {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        fs::write(tmp.path(), &bytes).unwrap();
        let mut reader = ArchiveReader::open(tmp.path()).unwrap();
        let mut kinds = Vec::new();
        for e in reader.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            kinds.push((e.info().path.clone(), e.info().kind, data));
        }
        assert_eq!(kinds.len(), 3);
        assert_eq!(kinds[1].1, EntryKind::File);
        assert_eq!(kinds[2].1, EntryKind::Symlink);
        // A file-backed reader can be read again.
        let (info, data) = reader.extract_file("./etc/os-release").unwrap();
        assert_eq!(data, b"ID=test\n");
        assert_eq!(info.size, 8);
        let err = reader.extract_file("missing").unwrap_err();
        assert!(err.is_code(Code::NotFound), "{err}");
    }
}

#[test]
fn stream_reader_is_single_use_and_garbage_is_an_error() {
    let mut r = ArchiveReader::from_reader(Cursor::new(TarBuilder::new().file("a", b"1").bytes()));
    r.extract_file("a").unwrap();
    assert!(r.extract_file("a").unwrap_err().is_code(Code::InvalidState));

    let (_tmp, dest) = sandbox();
    let err = extract(vec![0x55; 1024], &dest).unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err}");
    assert!(
        ArchiveReader::open("/nonexistent/x.tar")
            .unwrap_err()
            .is_code(Code::NotFound)
    );
}
