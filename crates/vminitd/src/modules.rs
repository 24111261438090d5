//! Kernel modules at boot. Our own kernel has every driver built in and its
//! initfs has no `/lib/modules`: then this costs one failed `stat`. With a
//! stock kernel (Debian's cloud kernel, the fallback) the host appends
//! `/lib/modules/<release>/` with the modules a VM needs and a `modules.dep`
//! for exactly those; they are loaded here, dependencies first, before
//! anything looks for a device.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Loads every module under `/lib/modules/$(uname -r)`, then deletes the
/// files (the initramfs is RAM). Failures go to the console.
pub fn load_boot_modules() {
    // Our kernel's initfs has no /lib/modules: one failed stat.
    if !Path::new("/lib/modules").is_dir() {
        return;
    }
    let Some(release) = kernel_release() else {
        return;
    };
    let dir = Path::new("/lib/modules").join(release);
    if !dir.is_dir() {
        return;
    }
    let started = Instant::now();
    let order = load_order(&dir);
    let mut loaded = 0;
    for path in &order {
        match finit_module(path) {
            Ok(()) => loaded += 1,
            Err(e) => eprintln!("vminitd: cannot load module {}: {e}", path.display()),
        }
    }
    eprintln!(
        "vminitd: loaded {loaded} of {} kernel modules in {} ms",
        order.len(),
        started.elapsed().as_millis()
    );
    let _ = std::fs::remove_dir_all("/lib/modules");
}

/// `uname -r` (before /proc is mounted).
fn kernel_release() -> Option<String> {
    // SAFETY: utsname is plain bytes; uname fills it and we read it only on success.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates `release` within the array.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    release.to_str().ok().map(str::to_string)
}

/// Module files of `dir` in load order: from `modules.dep` (each module
/// after the ones it lists), else every `*.ko` found, sorted.
pub fn load_order(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(dir.join("modules.dep")) else {
        let mut all = Vec::new();
        find_ko(dir, &mut all);
        all.sort();
        return all;
    };
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut listed = Vec::new();
    for line in text.lines() {
        if let Some((path, rest)) = line.split_once(':') {
            let path = path.trim();
            listed.push(path);
            deps.insert(path, rest.split_whitespace().collect());
        }
    }
    fn visit<'a>(
        path: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        seen: &mut BTreeSet<&'a str>,
        out: &mut Vec<&'a str>,
    ) {
        if !seen.insert(path) {
            return;
        }
        for d in deps.get(path).into_iter().flatten() {
            visit(d, deps, seen, out);
        }
        out.push(path);
    }
    let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
    for path in listed {
        visit(path, &deps, &mut seen, &mut out);
    }
    out.into_iter()
        .map(|p| dir.join(p))
        .filter(|p| p.is_file())
        .collect()
}

fn find_ko(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_ko(&path, out);
        } else if path.extension().is_some_and(|x| x == "ko") {
            out.push(path);
        }
    }
}

/// `finit_module(2)`; a module already present (built in or loaded) is fine.
fn finit_module(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: finit_module reads the open fd and a NUL-terminated empty
    // parameter string that outlives the call; no memory is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            0 as libc::c_int,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Ok(());
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_modules_dep() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for p in ["k/a.ko", "k/b.ko", "k/c.ko", "k/d.ko"] {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), b"").unwrap();
        }
        // c needs b and a; b needs a; d stands alone; listed out of order.
        std::fs::write(
            d.join("modules.dep"),
            "k/c.ko: k/b.ko k/a.ko\nk/d.ko:\nk/b.ko: k/a.ko\nk/a.ko:\n",
        )
        .unwrap();
        let order: Vec<String> = load_order(d)
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(order, ["k/a.ko", "k/b.ko", "k/c.ko", "k/d.ko"]);
    }

    #[test]
    fn without_modules_dep_every_ko() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x/m.ko"), b"").unwrap();
        std::fs::write(dir.path().join("x/notes.txt"), b"").unwrap();
        assert_eq!(load_order(dir.path()), [dir.path().join("x/m.ko")]);
    }
}
