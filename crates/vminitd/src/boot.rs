//! PID 1 duties at boot: the basic mounts, the console and rlimits, and
//! powering off when things go wrong; the cgroup hierarchy and the agent's
//! own cgroup, prepared with the first container.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use nix::mount::MsFlags;

use crate::sys;

/// A filesystem to mount: (type, source, target, flags, data).
pub type MountEntry = (
    &'static str,
    &'static str,
    &'static str,
    MsFlags,
    &'static str,
);

/// Filesystems PID 1 mounts before serving.
pub const BOOT_MOUNTS: &[MountEntry] = &[
    (
        "proc",
        "proc",
        "/proc",
        MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        "",
    ),
    (
        "sysfs",
        "sysfs",
        "/sys",
        MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        "",
    ),
    (
        "devtmpfs",
        "devtmpfs",
        "/dev",
        MsFlags::MS_NOSUID,
        "mode=0755",
    ),
    (
        "tmpfs",
        "tmpfs",
        "/run",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        "mode=0755",
    ),
];

/// The cgroup v2 hierarchy: mounted by standard setup or for the first
/// container, not at boot (10-12 ms of every boot under TCG, and nothing
/// uses it before a container exists). favordynmods: moving a process
/// between cgroups (the agent, every container process) need not wait for
/// an RCU grace period, which under TCG took ~10 ms each time.
pub const CGROUP_MOUNT: MountEntry = (
    "cgroup2",
    "cgroup2",
    "/sys/fs/cgroup",
    MsFlags::MS_NOSUID
        .union(MsFlags::MS_NODEV)
        .union(MsFlags::MS_NOEXEC),
    "nsdelegate,favordynmods",
);

/// Mounts one filesystem unless something is already mounted there.
pub fn ensure_mount(entry: &MountEntry) -> Result<(), String> {
    let path = Path::new(entry.2);
    if sys::is_mount_point(path) {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(path);
    mount_entry(entry)
}

/// Mounts one filesystem on an existing directory.
fn mount_entry(entry: &MountEntry) -> Result<(), String> {
    let &(fstype, source, target, flags, data) = entry;
    let data = (!data.is_empty()).then_some(data);
    nix::mount::mount(Some(source), target, Some(fstype), flags, data)
        .map_err(|e| format!("cannot mount {fstype} on {target}: {e}"))
}

/// The boot sequence of PID 1. Failures are logged to the console and the
/// agent keeps going: a reachable agent with a missing mount is easier to
/// diagnose than a VM that never answers.
pub fn pid1_setup() {
    crate::timeline::mark("pid1");
    // The bare-boot reference of the boot benchmark: `vminitd_poweroff=1` on
    // the kernel command line (the kernel hands unknown name=value
    // parameters to PID 1 as its environment) powers off before anything
    // else, as an init that does nothing would.
    if std::env::var_os("vminitd_poweroff").is_some() {
        eprintln!("vminitd: powering off (uptime {:.3} s)", sys::uptime());
        halt();
    }
    // Before leaving the initramfs, where the modules are.
    crate::modules::load_boot_modules();
    crate::timeline::mark("modules");
    let fresh_root = match leave_initramfs() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("vminitd: staying on the initramfs root: {e}");
            false
        }
    };
    crate::timeline::mark("initramfs-left");
    for entry in BOOT_MOUNTS {
        // The fresh root has the mount points and nothing mounted on them:
        // no checks (under TCG they cost ~1 ms of every boot).
        let mounted = if fresh_root {
            mount_entry(entry)
        } else {
            ensure_mount(entry)
        };
        if let Err(e) = mounted {
            eprintln!("vminitd: {e}");
        }
    }
    attach_console();
    crate::timeline::mark("mounts");
    raise_nofile();
    // SAFETY: setenv before any other thread exists (no runtime yet).
    unsafe { std::env::set_var("PATH", vminitd_api::DEFAULT_PATH) };
}

/// The directories of the tmpfs root: every boot mount point among them.
const NEW_ROOT_DIRS: [&str; 10] = [
    "sbin", "bin", "dev", "proc", "sys", "run", "tmp", "mnt", "etc", "var",
];

/// Moves PID 1 from the initramfs (rootfs, where pivot_root is refused) to
/// a tmpfs root, as switch_root does, so containers can pivot_root. The
/// agent goes on running: it does not re-execute itself from a copy (under
/// TCG that took 100 ms of every boot). Its initramfs file stays where it
/// is, out of sight under the new root, and `/proc/self/exe` still reaches
/// it to start `vmexec`; unlinking it would free nothing while it runs, and
/// cost 2.4 ms of every boot under TCG.
fn leave_initramfs() -> Result<(), String> {
    let new = Path::new("/newroot");
    std::fs::create_dir_all(new).map_err(|e| format!("mkdir /newroot: {e}"))?;
    nix::mount::mount(
        Some("tmpfs"),
        new,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(|e| format!("cannot mount a tmpfs root: {e}"))?;
    for d in NEW_ROOT_DIRS {
        std::fs::create_dir_all(new.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    std::env::set_current_dir(new).map_err(|e| format!("chdir /newroot: {e}"))?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("cannot move the tmpfs root: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}

/// Points stdio at /dev/console so boot messages reach `logs --boot`,
/// unless the kernel did (it opens the initfs's /dev/console for PID 1;
/// opening it again cost 4 ms of every boot under TCG).
fn attach_console() {
    // SAFETY: F_GETFD only reads the descriptor flags of fd 1.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } >= 0 {
        return;
    }
    let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; `console` stays open for the call.
        unsafe { libc::dup2(console.as_raw_fd(), fd) };
    }
}

/// Mounts the cgroup hierarchy and puts the agent in cgroup /vminitd with a
/// soft memory ceiling and a protected floor, as Apple does; once, when the
/// first container is created (its processes start there): before that no
/// container can press on the agent's memory, and at boot the cgroup's
/// creation cost 6-9 ms of the time to the first answered request under TCG.
pub fn prepare_for_containers() {
    static JOINED: std::sync::Once = std::sync::Once::new();
    JOINED.call_once(|| {
        if let Err(e) = ensure_mount(&CGROUP_MOUNT) {
            eprintln!("vminitd: {e}");
        }
        if let Err(e) = create_own_cgroup() {
            eprintln!("vminitd: cannot create cgroup /vminitd: {e}");
        }
    });
}

fn create_own_cgroup() -> std::io::Result<()> {
    let dir = Path::new("/sys/fs/cgroup/vminitd");
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())?;
    let _ = std::fs::write(dir.join("memory.high"), (80u64 << 20).to_string());
    let _ = std::fs::write(dir.join("memory.low"), (50u64 << 20).to_string());
    Ok(())
}

/// Raises RLIMIT_NOFILE (containers inherit it) to the kernel's default
/// ceiling, 2^20, or to /proc/sys/fs/nr_open where that is lower (reading
/// it first cost 2.5 ms of every boot under TCG).
fn raise_nofile() {
    use nix::sys::resource::{Resource, setrlimit};
    const DEFAULT_NR_OPEN: u64 = 1 << 20;
    if setrlimit(Resource::RLIMIT_NOFILE, DEFAULT_NR_OPEN, DEFAULT_NR_OPEN).is_ok() {
        return;
    }
    if let Some(max) = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, max, max);
    }
}

/// Exits on a fatal error; PID 1 powers the VM off instead (exiting would panic the kernel).
pub fn fail(pid1: bool) -> ExitCode {
    if pid1 {
        power_off();
    }
    ExitCode::FAILURE
}

/// Syncs, unmounts everything it can and powers off. Never returns as PID 1.
pub fn power_off() {
    sync_and_unmount();
    halt();
}

/// Powers off at once (after `sync_and_unmount`).
pub fn halt() {
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
}

/// Writes everything out and unmounts all but the root.
pub fn sync_and_unmount() {
    nix::unistd::sync();
    unmount_all();
    nix::unistd::sync();
}

/// Unmounts every mount except the root, deepest first (lazily, so busy
/// mounts do not block power-off; data is already synced).
pub fn unmount_all() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| p != "/")
        .collect();
    points.reverse();
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_root_has_every_boot_mount_point() {
        for (_, _, target, _, _) in BOOT_MOUNTS {
            let dir = target.trim_start_matches('/');
            assert!(NEW_ROOT_DIRS.contains(&dir), "{target} is not made");
        }
    }
}
