//! System RPCs: standard setup, shutdown, environment, sysctl, clock,
//! binfmt_misc and kill by pid.

use std::time::Duration;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use nix::mount::MsFlags;
use vminitd_api::proto;

use super::Agent;
use crate::boot::{self, MountEntry};
use crate::sys;

/// binfmt_misc, for standard setup and for an emulator's registration.
const BINFMT_MISC_MOUNT: MountEntry = (
    "binfmt_misc",
    "binfmt_misc",
    "/proc/sys/fs/binfmt_misc",
    MsFlags::MS_NOSUID
        .union(MsFlags::MS_NODEV)
        .union(MsFlags::MS_NOEXEC),
    "",
);

/// Mounts `StandardSetup` adds to those of boot (`boot::BOOT_MOUNTS` and
/// `boot::CGROUP_MOUNT`, which it also ensures first).
const STANDARD_MOUNTS: &[MountEntry] = &[
    (
        "devpts",
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    ),
    (
        "tmpfs",
        "shm",
        "/dev/shm",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        "mode=1777",
    ),
    (
        "tmpfs",
        "tmpfs",
        "/tmp",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        "mode=1777",
    ),
    BINFMT_MISC_MOUNT,
];

impl Agent {
    pub(super) fn standard_setup_impl(&self) -> Result<()> {
        self.env_lock()
            .insert("PATH".to_string(), vminitd_api::DEFAULT_PATH.to_string());
        if !self.inner.pid1 {
            // On a host (tests) the VM's mounts would clobber the machine's.
            tracing::info!("standard setup: not PID 1, leaving mounts and links alone");
            return Ok(());
        }
        let mounts = boot::BOOT_MOUNTS
            .iter()
            .chain([&boot::CGROUP_MOUNT])
            .chain(STANDARD_MOUNTS);
        for entry in mounts {
            boot::ensure_mount(entry).map_err(ContainerizationError::internal)?;
        }
        super::net::set_link("lo", true, 0)?;
        Ok(())
    }

    /// Ends every process, syncs and unmounts before the reply, so the
    /// reply means the guest's file systems are safe and the host may end
    /// the VM at once; powers off shortly after the reply in any case.
    pub(super) async fn shutdown_impl(&self) {
        let pid1 = self.inner.pid1;
        if pid1 {
            let _ = tokio::task::spawn_blocking(|| {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(-1),
                    nix::sys::signal::Signal::SIGKILL,
                );
                boot::sync_and_unmount();
            })
            .await;
        }
        tokio::spawn(async move {
            // Let the reply reach the host first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if pid1 {
                // Synced and unmounted above, before the reply.
                boot::halt();
            }
            std::process::exit(0);
        });
    }

    fn env_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.inner.env.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn setenv_impl(&self, r: proto::SetenvRequest) -> Result<()> {
        if r.key.is_empty() || r.key.contains('=') || r.key.contains('\0') || r.value.contains('\0')
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid environment variable name {:?}",
                r.key
            )));
        }
        self.env_lock().insert(r.key, r.value);
        Ok(())
    }

    pub(super) fn getenv_impl(&self, r: proto::GetenvRequest) -> proto::GetenvResponse {
        proto::GetenvResponse {
            value: self.env_lock().get(&r.key).cloned(),
        }
    }
}

pub(super) fn sysctl(r: proto::SysctlRequest) -> Result<()> {
    for key in r.settings.keys() {
        if key.is_empty() || key.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid sysctl {key:?}"
            )));
        }
    }
    for (key, value) in &r.settings {
        let path = std::path::Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                Code::NotFound
            } else {
                Code::InvalidArgument
            };
            ContainerizationError::new(code, format!("cannot set sysctl {key} to {value}"))
                .with_cause(e)
        })?;
    }
    Ok(())
}

pub(super) fn set_time(r: proto::SetTimeRequest) -> Result<()> {
    if !(0..1_000_000).contains(&r.usec) || r.sec < 0 {
        return Err(ContainerizationError::invalid_argument("time out of range"));
    }
    let ts = nix::sys::time::TimeSpec::new(r.sec, i64::from(r.usec) * 1000);
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts)
        .map_err(|e| sys::errno_error(e, "cannot set the clock"))
}

pub(super) fn setup_emulator(r: proto::SetupEmulatorRequest) -> Result<()> {
    let fields: Vec<&str> = r.registration.split(':').collect();
    if fields.len() < 7 || !fields[0].is_empty() || fields[1].is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "binfmt_misc registration must look like :name:type:offset:magic:mask:interpreter:flags",
        ));
    }
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("register").exists() {
        boot::ensure_mount(&BINFMT_MISC_MOUNT).map_err(ContainerizationError::unsupported)?;
    }
    if dir.join(fields[1]).exists() {
        return Ok(());
    }
    std::fs::write(dir.join("register"), &r.registration).context(
        Code::InvalidArgument,
        format!("cannot register binfmt_misc entry {}", fields[1]),
    )
}

pub(super) fn kill(r: proto::KillRequest) -> Result<()> {
    if r.pid <= 0 {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid pid {}",
            r.pid
        )));
    }
    let sig = nix::sys::signal::Signal::try_from(r.signal).map_err(|_| {
        ContainerizationError::invalid_argument(format!("invalid signal {}", r.signal))
    })?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.pid), sig)
        .map_err(|e| sys::errno_error(e, format!("cannot signal pid {}", r.pid)))
}
