//! Kernel modules for a modular guest kernel (Debian's cloud kernel, the
//! fallback when no kernel of our own is built).
//!
//! Our own kernel has every driver built in. A stock kernel has virtio-mmio,
//! virtio-blk, vsock, overlayfs, virtiofs ... as modules, which the guest must
//! load before it can see a device. The library adds them to the initfs:
//! the kernel unpacks concatenated cpio archives one after the other, so the
//! VM boots `<cpio of /lib/modules/<release>/...> + <initfs>`, made once per
//! (initfs, kernel release) and cached. The modules come first: an LZ4
//! (legacy frame) initfs has no end mark, so its decoder must end with the
//! file, and an archive after it fails to decode. vminitd loads whatever it
//! finds under `/lib/modules/$(uname -r)` in the order of the trimmed
//! `modules.dep`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// Modules a container VM needs (names as `modprobe` spells them; `-` and
/// `_` are the same). Their dependencies come along; built-in ones are skipped.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "vmw_vsock_virtio_transport",
    "overlay",
    "fuse",
    "virtiofs",
    "ext4",
    "binfmt_misc",
    "nf_tables",
    "nft_ct",
    "nft_nat",
    "nft_masq",
    "nft_chain_nat",
];

/// Where the modules of kernel `release` live on this host.
pub const MODULES_ROOT: &str = "/lib/modules";

/// The release a kernel image reports (`uname -r` in the guest): from the
/// bzImage header, else from a file name like `vmlinuz-<release>`.
pub fn kernel_release(kernel: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(64 << 10);
    if let Ok(f) = std::fs::File::open(kernel) {
        let _ = f.take(64 << 10).read_to_end(&mut head);
    }
    bzimage_release(&head).or_else(|| {
        let name = kernel.file_name()?.to_str()?;
        let release = name
            .strip_prefix("vmlinuz-")
            .or_else(|| name.strip_prefix("vmlinux-"))?;
        // The build's `vmlinux-current` symlink names no release.
        (release.contains('.') && !release.is_empty()).then(|| release.to_string())
    })
}

/// The release string of a bzImage: the setup header ("HdrS" at 0x202)
/// points at it with `kernel_version` (0x20e, relative to 0x200).
fn bzimage_release(head: &[u8]) -> Option<String> {
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let off = u16::from_le_bytes([*head.get(0x20e)?, *head.get(0x20f)?]) as usize;
    if off == 0 {
        return None;
    }
    let s = head.get(off + 0x200..)?;
    let end = s.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&s[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

/// `/lib/modules/<release>` when it holds modules (a modular kernel).
pub fn modules_dir(root: &Path, release: &str) -> Option<PathBuf> {
    let dir = root.join(release);
    (dir.join("modules.dep").is_file() || dir.join("kernel").is_dir()).then_some(dir)
}

/// The initfs to boot `kernel` with: `initfs` itself, or, for a modular
/// kernel whose modules are installed, `initfs` plus the guest modules
/// (made on first use under [`cache_dir`]).
pub fn initfs_for_kernel(kernel: &Path, initfs: &Path) -> Result<PathBuf> {
    let Some(release) = kernel_release(kernel) else {
        return Ok(initfs.to_path_buf());
    };
    let Some(dir) = modules_dir(Path::new(MODULES_ROOT), &release) else {
        return Ok(initfs.to_path_buf());
    };
    initfs_with_modules(initfs, &release, &dir, GUEST_MODULES, &cache_dir())
}

/// Where combined initfs images are cached: `/var/cache/container` as root,
/// `$XDG_CACHE_HOME/container` (or `~/.cache/container`) otherwise.
pub fn cache_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/container");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("container")
}

/// `<cache>/initfs-<release>-<key>.cpio`: an uncompressed newc cpio with
/// `names` and their dependencies under `/lib/modules/<release>/` and a
/// `modules.dep` for exactly those, zero-padded to 4 bytes, then `initfs`
/// (last, see the module doc). The key covers the layout, the initfs and the
/// module tree, so a rebuilt agent or an updated kernel package gives a new
/// file.
pub fn initfs_with_modules(
    initfs: &Path,
    release: &str,
    dir: &Path,
    names: &[&str],
    cache: &Path,
) -> Result<PathBuf> {
    let mut key = Sha256::new();
    // The layout (modules first) is part of the key.
    key.update(b"modules, initfs\0");
    key.update(initfs.as_os_str().as_encoded_bytes());
    for p in [initfs, &dir.join("modules.dep")] {
        if let Ok(m) = std::fs::metadata(p) {
            key.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified()
                && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
            {
                key.update(d.as_nanos().to_le_bytes());
            }
        }
    }
    key.update(names.join(",").as_bytes());
    let key = hex::encode(&key.finalize()[..8]);
    let prefix = format!("initfs-{release}-");
    let out = cache.join(format!("{prefix}{key}.cpio"));
    if out.is_file() {
        return Ok(out);
    }
    let started = std::time::Instant::now();
    let modules = resolve(dir, names)?;
    let base = std::fs::read(initfs).context(
        Code::NotFound,
        format!("reading initfs {}", initfs.display()),
    )?;
    let mut data = Vec::new();
    modules_cpio(&mut data, release, &modules)?;
    data.resize(data.len().next_multiple_of(4), 0);
    data.extend_from_slice(&base);
    std::fs::create_dir_all(cache)
        .context(Code::InternalError, format!("creating {}", cache.display()))?;
    crate::write_atomic(&out, &data)?;
    info!(
        "initfs for kernel {release}: {} modules added, {} ({} bytes, {} ms)",
        modules.len(),
        out.display(),
        data.len(),
        started.elapsed().as_millis()
    );
    remove_stale(cache, &prefix, &out);
    Ok(out)
}

/// Removes older combined images of the same release (a rebuilt initfs
/// leaves one behind each time); recent ones may still be about to boot.
fn remove_stale(cache: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if path != keep && old && name.to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One module to ship: its path under the release directory (compression
/// suffix removed), its decompressed contents, and its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path relative to `/lib/modules/<release>`, e.g. `kernel/fs/fuse/fuse.ko`.
    pub path: String,
    /// Paths (same form) of the modules it needs loaded first.
    pub depends: Vec<String>,
    /// The ELF object.
    pub contents: Vec<u8>,
}

/// Module name of a path: `kernel/drivers/char/hw_random/virtio-rng.ko.xz`
/// -> `virtio_rng`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// The path without a compression suffix.
fn plain_path(path: &str) -> String {
    for ext in [".xz", ".zst", ".gz"] {
        if let Some(p) = path.strip_suffix(ext) {
            return p.to_string();
        }
    }
    path.to_string()
}

/// `names` and everything they depend on, dependencies first. Built-in
/// modules (`modules.builtin`) are skipped; a name the kernel has neither as
/// module nor built in is logged and skipped. Dependencies come from
/// `modules.dep` when present, else from each module's `.modinfo`.
pub fn resolve(dir: &Path, names: &[&str]) -> Result<Vec<Module>> {
    let builtin: BTreeSet<String> = std::fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect();
    // name -> path, and path -> deps when modules.dep says so.
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dep_file = dir.join("modules.dep");
    let have_dep = dep_file.is_file();
    if have_dep {
        let text = std::fs::read_to_string(&dep_file).context(
            Code::InternalError,
            format!("reading {}", dep_file.display()),
        )?;
        for line in text.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            by_name.insert(module_name(path), path.to_string());
            deps.insert(
                path.to_string(),
                rest.split_whitespace().map(str::to_string).collect(),
            );
        }
    } else {
        for path in find_modules(dir, dir) {
            by_name.insert(module_name(&path), path);
        }
    }
    let mut out: Vec<Module> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Depth-first, so each module follows its dependencies.
    fn visit(
        path: &str,
        dir: &Path,
        by_name: &BTreeMap<String, String>,
        deps: &BTreeMap<String, Vec<String>>,
        have_dep: bool,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<Module>,
    ) -> Result<()> {
        if !seen.insert(path.to_string()) {
            return Ok(());
        }
        let contents = read_module(&dir.join(path))?;
        let needs: Vec<String> = if have_dep {
            deps.get(path).cloned().unwrap_or_default()
        } else {
            modinfo_depends(&contents)
                .into_iter()
                .filter_map(|n| by_name.get(&n.replace('-', "_")).cloned())
                .collect()
        };
        for d in &needs {
            visit(d, dir, by_name, deps, have_dep, seen, out)?;
        }
        out.push(Module {
            path: plain_path(path),
            depends: needs.iter().map(|d| plain_path(d)).collect(),
            contents,
        });
        Ok(())
    }
    for name in names {
        let name = name.replace('-', "_");
        match by_name.get(&name) {
            Some(path) => visit(path, dir, &by_name, &deps, have_dep, &mut seen, &mut out)?,
            None if builtin.contains(&name) => {}
            None => warn!(
                "kernel modules in {}: {name} is neither a module nor built in; skipped",
                dir.display()
            ),
        }
    }
    Ok(out)
}

/// Every `*.ko*` under `dir`, relative to `base`.
fn find_modules(base: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(find_modules(base, &path));
        } else if e.file_name().to_string_lossy().contains(".ko")
            && let Ok(rel) = path.strip_prefix(base)
        {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out
}

/// A module file, decompressed (`.ko`, `.ko.gz`, `.ko.zst`, `.ko.xz`).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let what = format!("reading kernel module {}", path.display());
    let raw = std::fs::read(path).context(Code::NotFound, what.clone())?;
    let name = path.to_string_lossy();
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .context(Code::InternalError, what)?;
        Ok(out)
    } else if name.ends_with(".zst") {
        zstd::decode_all(&raw[..]).context(Code::InternalError, what)
    } else if name.ends_with(".xz") {
        // No xz decoder among our dependencies: Debian's xz-utils does it.
        let out = std::process::Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .context(
                Code::NotFound,
                format!("{what}: xz (apt-get install xz-utils)"),
            )?;
        if !out.status.success() {
            return Err(ContainerizationError::internal(format!(
                "{what}: xz failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    } else {
        Ok(raw)
    }
}

/// The `depends=` field of a module's `.modinfo` section (64-bit ELF).
pub fn modinfo_depends(elf: &[u8]) -> Vec<String> {
    let Some(info) = elf_section(elf, ".modinfo") else {
        return Vec::new();
    };
    info.split(|&b| b == 0)
        .filter_map(|f| f.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Contents of the section called `name` of a little-endian ELF64 file.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    if elf.get(0..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize);
    let u64_at =
        |o: usize| usize::try_from(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?)).ok();
    let shoff = u64_at(0x28)?;
    let shentsize = u16_at(0x3a)?;
    let shnum = u16_at(0x3c)?;
    let shstrndx = u16_at(0x3e)?;
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = header(shstrndx)?;
    let (str_off, str_size) = (u64_at(strtab + 0x18)?, u64_at(strtab + 0x20)?);
    let strings = elf.get(str_off..str_off.checked_add(str_size)?)?;
    (0..shnum).find_map(|i| {
        let h = header(i)?;
        let name_off = u32::from_le_bytes(elf.get(h..h + 4)?.try_into().ok()?) as usize;
        let n = strings.get(name_off..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        if n != name.as_bytes() {
            return None;
        }
        let (off, size) = (u64_at(h + 0x18)?, u64_at(h + 0x20)?);
        elf.get(off..off.checked_add(size)?)
    })
}

/// Appends a newc cpio holding `modules` and their `modules.dep` under
/// `lib/modules/<release>/` to `out`, with the directories they need.
pub fn modules_cpio(out: &mut Vec<u8>, release: &str, modules: &[Module]) -> Result<()> {
    let base = format!("lib/modules/{release}");
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let add_parents = |path: &str, dirs: &mut BTreeSet<String>| {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    };
    let mut dep = String::new();
    for m in modules {
        add_parents(&format!("{base}/{}", m.path), &mut dirs);
        dep.push_str(&format!("{}:", m.path));
        for d in &m.depends {
            dep.push(' ');
            dep.push_str(d);
        }
        dep.push('\n');
    }
    add_parents(&format!("{base}/modules.dep"), &mut dirs);
    let mut ino = 0x4000_0000u32;
    let mut next = || {
        ino += 1;
        ino
    };
    for d in &dirs {
        newc_entry(out, next(), d, 0o040755, &[])?;
    }
    for m in modules {
        newc_entry(
            out,
            next(),
            &format!("{base}/{}", m.path),
            0o100644,
            &m.contents,
        )?;
    }
    newc_entry(
        out,
        next(),
        &format!("{base}/modules.dep"),
        0o100644,
        dep.as_bytes(),
    )?;
    newc_entry(out, 0, "TRAILER!!!", 0, &[])
}

/// One newc ("070701") cpio entry, name and data padded to 4 bytes.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) -> Result<()> {
    let size = u32::try_from(data.len()).map_err(|_| {
        ContainerizationError::invalid_argument(format!("{name} is too large for cpio"))
    })?;
    let namesize = u32::try_from(name.len() + 1)
        .map_err(|_| ContainerizationError::invalid_argument("cpio name too long"))?;
    let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(
            module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz"),
            "virtio_rng"
        );
        assert_eq!(module_name("kernel/fs/fuse/fuse.ko"), "fuse");
        assert_eq!(plain_path("a/b.ko.zst"), "a/b.ko");
        assert_eq!(plain_path("a/b.ko"), "a/b.ko");
    }

    #[test]
    fn release_from_bzimage_header_and_name() {
        let mut head = vec![0u8; 0x1000];
        head[0x202..0x206].copy_from_slice(b"HdrS");
        head[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = b"6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP";
        head[0x500..0x500 + v.len()].copy_from_slice(v);
        assert_eq!(
            bzimage_release(&head).as_deref(),
            Some("6.1.0-57-cloud-amd64")
        );
        assert_eq!(bzimage_release(&[0u8; 16]), None);
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("vmlinuz-6.1.0-9-cloud-amd64");
        std::fs::write(&k, b"not a bzImage").unwrap();
        assert_eq!(kernel_release(&k).as_deref(), Some("6.1.0-9-cloud-amd64"));
        let cur = dir.path().join("vmlinux-current");
        std::fs::write(&cur, b"\x7fELF").unwrap();
        assert_eq!(kernel_release(&cur), None);
    }

    /// A tiny ELF64 with one `.modinfo` section, enough for `modinfo_depends`.
    fn fake_module(depends: &str) -> Vec<u8> {
        let modinfo = format!("license=GPL\0depends={depends}\0name=x\0");
        let shstr = b"\0.modinfo\0.shstrtab\0";
        let mut elf = vec![0u8; 0x40];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let info_off = elf.len();
        elf.extend_from_slice(modinfo.as_bytes());
        let str_off = elf.len();
        elf.extend_from_slice(shstr);
        elf.resize(elf.len().next_multiple_of(8), 0);
        let shoff = elf.len();
        let mut sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        };
        sh(0, 0, 0);
        sh(1, info_off, modinfo.len());
        sh(10, str_off, shstr.len());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        elf
    }

    #[test]
    fn modinfo_depends_of_an_elf() {
        assert_eq!(
            modinfo_depends(&fake_module("virtio,virtio_ring")),
            vec!["virtio", "virtio_ring"]
        );
        assert!(modinfo_depends(&fake_module("")).is_empty());
        assert!(modinfo_depends(b"garbage").is_empty());
    }

    fn tree(with_dep: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (p, deps) in [
            ("kernel/drivers/virtio/virtio_ring.ko", ""),
            ("kernel/drivers/virtio/virtio.ko", "virtio_ring"),
            ("kernel/drivers/virtio/virtio_mmio.ko", "virtio,virtio_ring"),
            (
                "kernel/drivers/char/hw_random/virtio-rng.ko",
                "virtio,virtio_ring",
            ),
            ("kernel/fs/unused.ko", ""),
        ] {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), fake_module(deps)).unwrap();
        }
        // A compressed module: shipped decompressed, suffix dropped.
        let gz = d.join("kernel/fs/overlay.ko.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &fake_module("")).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        std::fs::write(d.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        if with_dep {
            std::fs::write(
                d.join("modules.dep"),
                "kernel/drivers/virtio/virtio_ring.ko:\n\
                 kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n\
                 kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                 kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                 kernel/fs/overlay.ko.gz:\n\
                 kernel/fs/unused.ko:\n",
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn resolve_orders_dependencies_first_with_and_without_modules_dep() {
        for with_dep in [true, false] {
            let dir = tree(with_dep);
            let names = ["virtio_mmio", "virtio-rng", "overlay", "ext4", "nosuch"];
            let mods = resolve(dir.path(), &names).unwrap();
            let paths: Vec<&str> = mods.iter().map(|m| m.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "kernel/drivers/virtio/virtio_ring.ko",
                    "kernel/drivers/virtio/virtio.ko",
                    "kernel/drivers/virtio/virtio_mmio.ko",
                    "kernel/drivers/char/hw_random/virtio-rng.ko",
                    "kernel/fs/overlay.ko",
                ],
                "with modules.dep: {with_dep}"
            );
            assert_eq!(mods[4].contents, fake_module(""), "decompressed");
            assert_eq!(mods[2].depends.len(), 2);
        }
    }

    #[test]
    fn combined_initfs_is_cached_and_holds_a_cpio() {
        let dir = tree(true);
        let work = tempfile::tempdir().unwrap();
        let base = work.path().join("initfs.cpio.lz4");
        std::fs::write(&base, b"base!").unwrap();
        let cache = work.path().join("cache");
        let out =
            initfs_with_modules(&base, "6.1.0-test", dir.path(), &["virtio_mmio"], &cache).unwrap();
        let data = std::fs::read(&out).unwrap();
        assert!(data.starts_with(b"070701"), "the modules' cpio first");
        assert!(
            data.ends_with(b"TRAILER!!!\0\0\0\0base!"),
            "then the initfs"
        );
        assert_eq!((data.len() - 5) % 4, 0, "the initfs starts 4-byte aligned");
        let text = String::from_utf8_lossy(&data);
        for name in [
            "lib/modules/6.1.0-test/kernel/drivers/virtio/virtio_mmio.ko\0",
            "lib/modules/6.1.0-test/modules.dep\0",
            "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(name), "{name:?} missing");
        }
        let again =
            initfs_with_modules(&base, "6.1.0-test", dir.path(), &["virtio_mmio"], &cache).unwrap();
        assert_eq!(out, again);
        // cpio(1) reads the appended archive back.
        let cpio = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -t --quiet < '{}'", out.display()))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&cpio.stdout);
        assert!(
            listing.contains("lib/modules/6.1.0-test/kernel/drivers/virtio/virtio.ko"),
            "{listing}"
        );
    }
}
