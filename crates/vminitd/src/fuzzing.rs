//! Entry points for the `agent_request` fuzz target (`fuzz/`) and its
//! stable replay test (`tests/fuzz_corpus.rs`): the agent's handling of
//! untrusted request fields, without host side effects. Only the pure
//! decode and validation steps run (no mount, no process, no setrlimit);
//! a CopyIn tar is unpacked into a fresh temporary directory, and nothing
//! may land outside it. Errors are fine; a panic or an escape is a bug.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use vminitd_api::proto;

use crate::container::{rootfs, seccomp, security, vmexec};
use crate::service::{fs, process};

/// The root a container's paths are resolved under in these checks.
const ROOT: &str = "/container-root";

/// Dispatches on the first byte: 0 a CreateProcess spec
/// ([`create_process`]), 1 request paths ([`paths`]), 2 a CopyIn tar
/// ([`copy_in_tar`]).
pub fn request(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            create_process(rest);
        }
        1 => paths(rest),
        _ => copy_in_tar(rest),
    }
}

/// `true` when `p` is `root` or below it, with no `..` anywhere.
fn stays_in(p: &Path, root: &Path) -> bool {
    p.starts_with(root) && !p.components().any(|c| c == Component::ParentDir)
}

/// `SPEC [0xff PASSWD [0xff GROUP]]`: a CreateProcess request carrying
/// SPEC as its OCI runtime spec, then every conversion vmexec applies to
/// it, with PASSWD and GROUP as the container's /etc/passwd and /etc/group.
/// Returns whether the request was accepted.
pub fn create_process(data: &[u8]) -> bool {
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let spec = parts.next().unwrap_or_default();
    let passwd = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let group = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let r = proto::CreateProcessRequest {
        container_id: "c".into(),
        process_id: "p".into(),
        oci_spec: spec.to_vec(),
        ..Default::default()
    };
    let Ok(spec) = process::check_create_request(&r) else {
        return false;
    };
    let root = Path::new(ROOT);
    let _ = vmexec::new_namespaces(&spec);
    if let Ok(mounts) = rootfs::mount_plan(&spec, root) {
        for m in &mounts {
            assert!(stays_in(&m.dest, root), "mount outside the root: {m:?}");
            let _ = crate::sys::parse_mount_options(&m.options);
        }
    }
    if let Ok(devices) = rootfs::device_plan(&spec, root) {
        for d in &devices {
            assert!(stays_in(&d.path, root), "device outside the root: {d:?}");
        }
    }
    if let Some(linux) = spec.linux() {
        for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
            if let Ok(p) = vmexec::sysctl_path(key) {
                assert!(
                    stays_in(&p, Path::new("/proc/sys")),
                    "sysctl {key:?} leaves /proc/sys: {}",
                    p.display()
                );
            }
        }
        if let Some(profile) = linux.seccomp() {
            let _ = seccomp::compile(profile);
        }
        for p in linux
            .masked_paths()
            .iter()
            .chain(linux.readonly_paths().iter())
            .flatten()
        {
            let _ = rootfs::in_root(root, Path::new(p));
        }
    }
    if let Some(process) = spec.process() {
        if let Ok(id) = security::resolve_user_in(process, &passwd, &group) {
            let _ = vmexec::environment(process, &id);
        }
        let _ = security::rlimits(process);
        if let Some(c) = process.capabilities() {
            for set in [
                c.bounding(),
                c.effective(),
                c.permitted(),
                c.inheritable(),
                c.ambient(),
            ] {
                let _ = security::to_caps(set);
            }
        }
    }
    true
}

/// Lines of paths as WriteFile, Mkdir, Stat, CopyIn and CopyOut carry
/// them: each must be absolute, and resolved in a container root it must
/// stay there; as a sysctl name it must stay in /proc/sys.
pub fn paths(data: &[u8]) {
    let root = Path::new(ROOT);
    for line in data.split(|&b| b == b'\n') {
        let s = String::from_utf8_lossy(line);
        if let Ok(p) = fs::absolute(&s)
            && let Ok(inside) = rootfs::in_root(root, &p)
        {
            assert!(stays_in(&inside, root), "{s:?} leaves the root");
        }
        if let Ok(p) = vmexec::sysctl_path(&s) {
            assert!(stays_in(&p, Path::new("/proc/sys")), "sysctl {s:?}");
        }
    }
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system's temporary directory.
fn scratch() -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("vminitd-fuzz-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir(&p).expect("creating a scratch directory");
    p
}

/// Unpacks `data` as a CopyIn tar stream into `SCRATCH/dest`, next to a
/// sentinel file; then nothing but `dest` and the unchanged sentinel may
/// be in `SCRATCH`, and every file under `dest` must resolve inside it.
pub fn copy_in_tar(data: &[u8]) {
    let base = scratch();
    let dest = base.join("dest");
    let sentinel = base.join("outside");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(&sentinel, b"untouched").unwrap();
    let _ = fs::unpack_tar(data, &dest);
    let mut names: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["dest", "outside"], "an entry landed beside dest");
    let meta = std::fs::symlink_metadata(&sentinel).unwrap();
    assert!(meta.is_file(), "the sentinel was replaced");
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"untouched");
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&meta),
        1,
        "the sentinel was hard-linked"
    );
    let real = std::fs::canonicalize(&dest).unwrap();
    let mut links = std::collections::HashMap::new();
    check_inside(&dest, &real, &mut links);
    for (ino, (nlink, seen)) in links {
        assert_eq!(nlink, seen, "inode {ino:?} has links outside dest");
    }
    // Make every directory writable again (the tar may have set 0o000 and
    // a non-root run could not remove it), then clean up.
    restore_dirs(&dest);
    std::fs::remove_dir_all(&base).expect("removing the scratch directory");
}

/// Every non-symlink entry under `dir` resolves inside `real`; `links`
/// counts the names of each file found (against its link count).
fn check_inside(
    dir: &Path,
    real: &Path,
    links: &mut std::collections::HashMap<(u64, u64), (u64, u64)>,
) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if !meta.is_dir() {
            let e = links
                .entry((meta.dev(), meta.ino()))
                .or_insert((meta.nlink(), 0));
            e.1 += 1;
        }
        if let Ok(c) = std::fs::canonicalize(&p) {
            assert!(
                c.starts_with(real),
                "{} resolves to {}",
                p.display(),
                c.display()
            );
        }
        if meta.is_dir() {
            check_inside(&p, real, links);
        }
    }
}

fn restore_dirs(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            restore_dirs(&e.path());
        }
    }
}
