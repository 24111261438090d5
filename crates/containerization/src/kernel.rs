//! The guest kernel and its command line (seed section 3.3).

use std::path::{Path, PathBuf};

use containerization_error::{ContainerizationError, Result};
use tracing::warn;

use crate::kernel_modules::{MODULES_ROOT, modules_dir};

/// Operating system and CPU architecture a kernel runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPlatform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in OCI spelling, e.g. `amd64`.
    pub architecture: String,
}

impl SystemPlatform {
    /// Linux on x86-64, the only platform the QEMU backend boots.
    pub fn linux_amd64() -> Self {
        SystemPlatform {
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }
}

impl Default for SystemPlatform {
    fn default() -> Self {
        Self::linux_amd64()
    }
}

/// Kernel and init command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Arguments for the kernel itself.
    pub kernel_args: Vec<String>,
    /// Arguments passed through to the init process (after `--`).
    pub init_args: Vec<String>,
}

impl CommandLine {
    /// Default kernel arguments: serial console, no reboot loop, quiet boot.
    ///
    /// `panic=-1` reboots at once on a panic, and QEMU runs with
    /// `-no-reboot`, so a panicked guest ends the VM instead of hanging.
    pub fn kernel_defaults() -> Vec<String> {
        [
            "console=ttyS0",
            "reboot=t",
            "panic=-1",
            "quiet",
            "loglevel=3",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    /// Command line from explicit kernel and init arguments.
    pub fn new(kernel_args: Vec<String>, init_args: Vec<String>) -> Self {
        CommandLine {
            kernel_args,
            init_args,
        }
    }

    /// Command line from the defaults, with debug output and a panic level.
    pub fn with_debug_panic(debug: bool, panic: i32) -> Self {
        let mut cl = CommandLine::new(
            ["console=ttyS0", "reboot=t"]
                .into_iter()
                .map(String::from)
                .collect(),
            Vec::new(),
        );
        if debug {
            cl.add_debug();
        } else {
            cl.kernel_args.push("quiet".into());
            cl.kernel_args.push("loglevel=3".into());
        }
        cl.add_panic(panic);
        cl
    }

    /// Adds `debug` and removes `quiet`, so the boot log is complete.
    pub fn add_debug(&mut self) {
        self.kernel_args
            .retain(|a| a != "quiet" && !a.starts_with("loglevel="));
        if !self.kernel_args.iter().any(|a| a == "debug") {
            self.kernel_args.push("debug".into());
        }
    }

    /// Sets `panic=<level>` (seconds before reboot; negative reboots at once).
    pub fn add_panic(&mut self, level: i32) {
        self.kernel_args.retain(|a| !a.starts_with("panic="));
        self.kernel_args.push(format!("panic={level}"));
    }

    /// The rendered command line: kernel arguments, then `--` and init arguments.
    pub fn render(&self) -> String {
        let mut out = self.kernel_args.join(" ");
        if !self.init_args.is_empty() {
            out.push_str(" -- ");
            out.push_str(&self.init_args.join(" "));
        }
        out
    }
}

impl Default for CommandLine {
    fn default() -> Self {
        CommandLine::new(CommandLine::kernel_defaults(), Vec::new())
    }
}

/// A guest kernel: an uncompressed PVH `vmlinux` (or a bzImage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// Path to the kernel binary.
    pub path: PathBuf,
    /// Platform the kernel runs on.
    pub platform: SystemPlatform,
    /// Kernel and init command line.
    pub command_line: CommandLine,
}

impl Kernel {
    /// A kernel at `path` with the default command line.
    pub fn new(path: impl Into<PathBuf>, platform: SystemPlatform) -> Self {
        Kernel {
            path: path.into(),
            platform,
            command_line: CommandLine::default(),
        }
    }

    /// The installed or built kernel, looked up in the order of
    /// docs/ARCHITECTURE.md: `$CONTAINER_KERNEL`,
    /// `/usr/local/share/container/vmlinux`,
    /// `/var/cache/container-kernel/vmlinux-current`; when none exists and
    /// `CONTAINER_KERNEL` is unset, Debian's cloud kernel
    /// (`/boot/vmlinuz-*-cloud-amd64`, newest, with its modules installed),
    /// whose modules the VM gets through the initfs (see
    /// [`crate::kernel_modules`]).
    pub fn default_path() -> Result<PathBuf> {
        const BUILT: [&str; 2] = [
            "/usr/local/share/container/vmlinux",
            "/var/cache/container-kernel/vmlinux-current",
        ];
        let found = lookup(
            "CONTAINER_KERNEL",
            &BUILT.map(PathBuf::from),
            "guest kernel not found: run scripts/build-kernel.sh (or scripts/install.sh), \
             set CONTAINER_KERNEL, or apt-get install linux-image-cloud-amd64",
        );
        let explicit = std::env::var_os("CONTAINER_KERNEL").is_some_and(|v| !v.is_empty());
        match found {
            Err(e) if !explicit => {
                let Some(cloud) = Self::cloud_kernel_path() else {
                    return Err(e);
                };
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    warn!(
                        "no built guest kernel (CONTAINER_KERNEL unset, {} missing): falling back \
                         to Debian's cloud kernel {}, its modules loaded by vminitd from the \
                         initfs; boots are slower, scripts/build-kernel.sh builds ours",
                        BUILT.join(" and "),
                        cloud.display()
                    );
                });
                Ok(cloud)
            }
            other => other,
        }
    }

    /// Debian's cloud kernel, the fallback of [`Kernel::default_path`]: the
    /// newest `/boot/vmlinuz-*-cloud-amd64` whose modules are installed.
    pub fn cloud_kernel_path() -> Option<PathBuf> {
        cloud_kernel(Path::new("/boot"), Path::new(MODULES_ROOT))
    }

    /// The default kernel (see [`Kernel::default_path`]) for linux/amd64.
    pub fn default_kernel() -> Result<Kernel> {
        Ok(Kernel::new(
            Self::default_path()?,
            SystemPlatform::linux_amd64(),
        ))
    }
}

/// The installed or built initfs (LZ4 cpio with `/sbin/vminitd`):
/// `$CONTAINER_INITFS`, `/usr/local/share/container/initfs.cpio.lz4`, then
/// `build/initfs.cpio.lz4` of this workspace.
pub fn default_initfs() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/initfs.cpio.lz4");
    lookup(
        "CONTAINER_INITFS",
        &[
            PathBuf::from("/usr/local/share/container/initfs.cpio.lz4"),
            workspace,
        ],
        "guest initfs not found: run scripts/build-initfs.sh (or scripts/install.sh), or set CONTAINER_INITFS",
    )
}

/// The newest `vmlinuz-<release>-cloud-amd64` in `boot` whose modules are
/// installed under `modules` (the cloud kernel cannot boot a VM without them).
fn cloud_kernel(boot: &Path, modules: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<VersionPart>, PathBuf)> = None;
    for e in std::fs::read_dir(boot).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(release) = name
            .strip_prefix("vmlinuz-")
            .filter(|r| r.ends_with("-cloud-amd64"))
        else {
            continue;
        };
        if modules_dir(modules, release).is_none() {
            continue;
        }
        let key = version_key(release);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, e.path()));
        }
    }
    best.map(|(_, p)| p)
}

/// A piece of a version string: numbers compare as numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum VersionPart {
    Text(String),
    Number(u64),
}

/// `6.1.0-57-cloud-amd64` -> [6, ".", 1, ".", 0, "-", 57, "-cloud-amd64"],
/// so that release 57 sorts after release 9.
fn version_key(v: &str) -> Vec<VersionPart> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(c) = rest.chars().next() {
        let digit = c.is_ascii_digit();
        let end = rest
            .find(|ch: char| ch.is_ascii_digit() != digit)
            .unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        out.push(match part.parse() {
            Ok(n) if digit => VersionPart::Number(n),
            _ => VersionPart::Text(part.to_string()),
        });
        rest = tail;
    }
    out
}

fn lookup(var: &str, candidates: &[PathBuf], missing: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.exists() {
            return Ok(p);
        }
        return Err(ContainerizationError::not_found(format!(
            "{var} points to {}, which does not exist",
            p.display()
        )));
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| ContainerizationError::not_found(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render() {
        let cl = CommandLine::default();
        assert_eq!(
            cl.render(),
            "console=ttyS0 reboot=t panic=-1 quiet loglevel=3"
        );
    }

    #[test]
    fn debug_and_panic() {
        let mut cl = CommandLine::with_debug_panic(false, 0);
        assert!(cl.kernel_args.contains(&"quiet".to_string()));
        assert!(cl.kernel_args.contains(&"panic=0".to_string()));
        cl.add_debug();
        cl.add_panic(5);
        assert!(!cl.kernel_args.contains(&"quiet".to_string()));
        assert_eq!(cl.render(), "console=ttyS0 reboot=t debug panic=5");
    }

    #[test]
    fn newest_cloud_kernel_with_modules() {
        let dir = tempfile::tempdir().unwrap();
        let (boot, modules) = (dir.path().join("boot"), dir.path().join("modules"));
        std::fs::create_dir_all(&boot).unwrap();
        for r in [
            "6.1.0-9-cloud-amd64",
            "6.1.0-57-cloud-amd64",
            "6.1.0-60-cloud-amd64",
            "6.1.0-99-amd64",
        ] {
            std::fs::write(boot.join(format!("vmlinuz-{r}")), b"").unwrap();
        }
        assert_eq!(cloud_kernel(&boot, &modules), None, "no modules installed");
        for r in [
            "6.1.0-9-cloud-amd64",
            "6.1.0-57-cloud-amd64",
            "6.1.0-99-amd64",
        ] {
            std::fs::create_dir_all(modules.join(r)).unwrap();
            std::fs::write(modules.join(r).join("modules.dep"), b"").unwrap();
        }
        // -60 has no modules, -99 is not a cloud kernel.
        assert_eq!(
            cloud_kernel(&boot, &modules),
            Some(boot.join("vmlinuz-6.1.0-57-cloud-amd64"))
        );
    }

    #[test]
    fn init_args_after_separator() {
        let cl = CommandLine::new(vec!["console=ttyS0".into()], vec!["--debug".into()]);
        assert_eq!(cl.render(), "console=ttyS0 -- --debug");
    }
}
