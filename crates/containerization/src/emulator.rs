//! Containers of another architecture (the Linux analog of the seed's
//! Rosetta): the VM stays the host's architecture and the guest agent
//! registers the host's `qemu-<arch>-static` with binfmt_misc, so the
//! container's foreign binaries run through it.
//!
//! The interpreter reaches the guest on a small read-only ext4 disk made by
//! our formatter, cached under the state root by the interpreter's hash.
//! The agent mounts it outside the container's root filesystem and registers
//! it with the `F` flag: the kernel opens the interpreter at registration,
//! so it runs inside the container's mount namespace without being part of
//! the container's files.

use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_ext4::{FormatOptions, Formatter, Metadata};
use containerization_oci::Platform;

/// Where the agent mounts the emulator disk in the guest (outside every
/// container's root filesystem).
pub const GUEST_DIR: &str = "/run/emulator";

/// Environment variable naming the one directory `qemu-*-static` is looked
/// up in (default: `/usr/bin`, then `/usr/local/bin`).
pub const DIR_ENV: &str = "CONTAINER_EMULATOR_DIR";

/// Architectures in OCI (Go) spelling; any other is an invalid argument.
const KNOWN_ARCHITECTURES: [&str; 14] = [
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// One emulated architecture: its qemu name and the ELF header
/// binfmt_misc matches (magic and mask as in Debian's qemu-user-static).
#[derive(Debug, PartialEq, Eq)]
struct Target {
    architecture: &'static str,
    qemu: &'static str,
    magic: &'static str,
    mask: &'static str,
}

const TARGETS: [Target; 5] = [
    Target {
        architecture: "arm64",
        qemu: "aarch64",
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    },
    Target {
        architecture: "arm",
        qemu: "arm",
        magic: r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    },
    Target {
        architecture: "ppc64le",
        qemu: "ppc64le",
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
    },
    Target {
        architecture: "riscv64",
        qemu: "riscv64",
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    },
    Target {
        architecture: "s390x",
        qemu: "s390x",
        magic: r"\x7f\x45\x4c\x46\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
    },
];

impl Target {
    /// `qemu-aarch64-static`.
    fn binary(&self) -> String {
        format!("qemu-{}-static", self.qemu)
    }
}

/// An emulator for a container of another architecture; set it as
/// [`crate::Configuration::emulator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    target: &'static Target,
    interpreter: PathBuf,
    image: PathBuf,
}

impl Emulator {
    /// Whether containers of `platform` need an emulator here: `None` when
    /// the host runs them natively, else the host path of the installed
    /// interpreter. An unknown architecture is an invalid argument; one
    /// with no emulator is unsupported; a missing `qemu-user-static` is not
    /// found, saying how to install it.
    pub fn interpreter_for(platform: &Platform) -> Result<Option<PathBuf>> {
        let dirs = match std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
            Some(d) => vec![PathBuf::from(d)],
            None => vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
        };
        find_interpreter(platform, &dirs)
    }

    /// The emulator for containers of `platform`, `None` when the host runs
    /// them natively; its disk image is made under `cache` on first use.
    pub fn prepare(platform: &Platform, cache: &Path) -> Result<Option<Emulator>> {
        match Self::interpreter_for(platform)? {
            Some(interpreter) => Self::with_interpreter(platform, &interpreter, cache).map(Some),
            None => Ok(None),
        }
    }

    /// The emulator for `platform` running the static qemu-user binary
    /// `interpreter`, its disk image made under `cache` (named by the
    /// interpreter's hash, so an upgraded emulator gets a new image).
    pub fn with_interpreter(
        platform: &Platform,
        interpreter: &Path,
        cache: &Path,
    ) -> Result<Emulator> {
        let target = target_for(platform)?.ok_or_else(|| {
            ContainerizationError::invalid_argument(format!(
                "{platform} runs natively here: no emulator needed"
            ))
        })?;
        let image = disk_image(target, interpreter, cache)?;
        Ok(Emulator {
            target,
            interpreter: interpreter.to_path_buf(),
            image,
        })
    }

    /// The emulated architecture (OCI spelling, e.g. `arm64`).
    pub fn architecture(&self) -> &str {
        self.target.architecture
    }

    /// The interpreter on the host.
    pub fn interpreter(&self) -> &Path {
        &self.interpreter
    }

    /// The read-only ext4 image with the interpreter at its root.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The binfmt_misc registration for the image mounted at `guest_dir`:
    /// `F` opens the interpreter now (it need not exist in the container),
    /// `P` keeps the program's `argv[0]`, `C` takes credentials from the
    /// program (setuid binaries keep working).
    pub fn registration(&self, guest_dir: &str) -> String {
        let t = self.target;
        format!(
            ":qemu-{}:M::{}:{}:{}/{}:PCF",
            t.qemu,
            t.magic,
            t.mask,
            guest_dir.trim_end_matches('/'),
            t.binary()
        )
    }
}

/// [`Emulator::interpreter_for`], looking in `dirs`.
fn find_interpreter(platform: &Platform, dirs: &[PathBuf]) -> Result<Option<PathBuf>> {
    let Some(target) = target_for(platform)? else {
        return Ok(None);
    };
    let binary = target.binary();
    dirs.iter()
        .map(|d| d.join(&binary))
        .find(|p| p.is_file())
        .map(Some)
        .ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            ContainerizationError::not_found(format!(
                "running {platform} containers needs {binary} (not in {}): apt-get install qemu-user-static",
                searched.join(", ")
            ))
        })
}

/// The emulated target of `platform`, `None` when it is the host's.
fn target_for(platform: &Platform) -> Result<Option<&'static Target>> {
    if platform.os != "linux" {
        return Err(ContainerizationError::invalid_argument(format!(
            "cannot run {platform} containers: only linux images run in the VM"
        )));
    }
    let arch = platform.architecture.as_str();
    if !KNOWN_ARCHITECTURES.contains(&arch) {
        return Err(ContainerizationError::invalid_argument(format!(
            "unknown architecture '{arch}' (known: {})",
            KNOWN_ARCHITECTURES.join(", ")
        )));
    }
    if arch == Platform::host().architecture {
        return Ok(None);
    }
    match TARGETS.iter().find(|t| t.architecture == arch) {
        Some(t) => Ok(Some(t)),
        None => {
            let emulated: Vec<&str> = TARGETS.iter().map(|t| t.architecture).collect();
            Err(ContainerizationError::unsupported(format!(
                "cannot run {platform} containers here: the emulated architectures are {}",
                emulated.join(", ")
            )))
        }
    }
}

/// `<cache>/qemu-<arch>-static-<sha256>.ext4`, made once: the interpreter
/// alone at the root of a journal-less ext4 (written to a temp file, synced
/// and renamed, so a crash never leaves a partial image under that name).
fn disk_image(target: &Target, interpreter: &Path, cache: &Path) -> Result<PathBuf> {
    let data = std::fs::read(interpreter).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            Code::NotFound
        } else {
            Code::InternalError
        };
        ContainerizationError::new(code, format!("cannot read {}", interpreter.display()))
            .with_cause(e)
    })?;
    let digest = containerization_oci::sha256_digest(&data);
    let hash = digest.trim_start_matches("sha256:");
    let binary = target.binary();
    let path = cache.join(format!("{binary}-{hash}.ext4"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache)
        .context(Code::InternalError, format!("creating {}", cache.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".emulator-")
        .tempfile_in(cache)
        .context(
            Code::InternalError,
            format!("creating a file in {}", cache.display()),
        )?;
    // Room for the file plus the filesystem's own metadata.
    let size = (data.len() as u64).next_multiple_of(1 << 20) + (4 << 20);
    let options = FormatOptions {
        label: "emulator".into(),
        ..FormatOptions::default()
    };
    let mut fs = Formatter::create(tmp.path(), size, options)?;
    fs.create_file(
        format!("/{binary}"),
        Metadata::with_mode(0o755),
        &mut data.as_slice(),
    )?;
    fs.close()?;
    tmp.persist(&path)
        .map_err(|e| e.error)
        .context(Code::InternalError, format!("placing {}", path.display()))?;
    crate::sync_dir(cache)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_map_to_targets_or_clear_errors() {
        let t = |p: &str| target_for(&Platform::parse(p).unwrap());
        let host = Platform::host();
        assert_eq!(t(&host.to_string()).unwrap(), None, "native: no emulator");
        if host.architecture == "amd64" {
            assert_eq!(t("linux/arm64").unwrap().unwrap().qemu, "aarch64");
            assert_eq!(t("linux/arm/v7").unwrap().unwrap().qemu, "arm");
        }
        let e = t("linux/foo").unwrap_err();
        assert!(e.is_code(Code::InvalidArgument), "{e}");
        assert!(e.message.contains("unknown architecture 'foo'"), "{e}");
        assert!(
            t("windows/amd64")
                .unwrap_err()
                .is_code(Code::InvalidArgument)
        );
        let e = t("linux/mips64").unwrap_err();
        assert!(
            e.is_code(Code::Unsupported) && e.message.contains("arm64"),
            "{e}"
        );
    }

    #[test]
    fn registrations_are_well_formed() {
        for target in &TARGETS {
            let e = Emulator {
                target,
                interpreter: PathBuf::new(),
                image: PathBuf::new(),
            };
            let r = e.registration("/run/emulator/");
            let fields: Vec<&str> = r.split(':').collect();
            assert_eq!(fields.len(), 8, "{r}");
            assert_eq!(fields[1], format!("qemu-{}", target.qemu));
            assert_eq!(fields[2], "M");
            // Magic and mask are the same length, an ELF header prefix.
            let bytes = |s: &str| s.matches(r"\x").count();
            assert_eq!(bytes(fields[4]), bytes(fields[5]), "{r}");
            assert!(fields[4].starts_with(r"\x7f\x45\x4c\x46"), "{r}");
            assert_eq!(
                fields[6],
                format!("/run/emulator/qemu-{}-static", target.qemu)
            );
            assert_eq!(fields[7], "PCF");
        }
    }

    #[test]
    fn missing_emulator_says_what_to_install() {
        if Platform::host().architecture != "amd64" {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let e = find_interpreter(&arm64, &[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.is_code(Code::NotFound), "{e}");
        assert!(
            e.message.contains("qemu-aarch64-static")
                && e.message.contains("apt-get install qemu-user-static")
                && !e.message.contains('\n'),
            "{e}"
        );
        std::fs::write(dir.path().join("qemu-aarch64-static"), b"x").unwrap();
        assert_eq!(
            find_interpreter(&arm64, &[dir.path().to_path_buf()]).unwrap(),
            Some(dir.path().join("qemu-aarch64-static"))
        );
        assert_eq!(
            find_interpreter(&Platform::host(), &[]).unwrap(),
            None,
            "native needs nothing"
        );
    }

    #[test]
    fn disk_image_holds_the_interpreter_and_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let interp = dir.path().join("qemu-aarch64-static");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&interp, &data).unwrap();
        let cache = dir.path().join("emulators");
        let arm64 = Platform::parse("linux/arm64").unwrap();
        if Platform::host().architecture == "arm64" {
            return;
        }
        let e = Emulator::with_interpreter(&arm64, &interp, &cache).unwrap();
        assert_eq!(e.architecture(), "arm64");
        let name = e
            .image()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let hash = containerization_oci::sha256_digest(&data);
        assert_eq!(
            name,
            format!(
                "qemu-aarch64-static-{}.ext4",
                hash.trim_start_matches("sha256:")
            )
        );
        containerization_ext4::e2fsck_check(e.image()).unwrap_or_else(|e| panic!("{e}"));
        let fs = containerization_ext4::Ext4::open(e.image()).unwrap();
        assert_eq!(fs.read_file("/qemu-aarch64-static").unwrap(), data);
        assert_eq!(
            fs.stat("/qemu-aarch64-static").unwrap().mode & 0o7777,
            0o755
        );
        // Cached: a second call reuses the image; a new interpreter gets a
        // new one; no temp files are left behind.
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let before = mtime(e.image());
        let again = Emulator::with_interpreter(&arm64, &interp, &cache).unwrap();
        assert_eq!(again.image(), e.image());
        assert_eq!(mtime(again.image()), before);
        std::fs::write(&interp, b"upgraded").unwrap();
        let newer = Emulator::with_interpreter(&arm64, &interp, &cache).unwrap();
        assert_ne!(newer.image(), e.image());
        let names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".ext4")), "{names:?}");
        let host = Platform::host();
        assert!(
            Emulator::with_interpreter(&host, &interp, &cache)
                .unwrap_err()
                .is_code(Code::InvalidArgument)
        );
    }
}
