//! Chooses the accelerator: KVM only when a real guest boots under it.
//!
//! `/dev/kvm` can exist and still be useless (a nested PVM hypervisor where a
//! stock guest hangs after decompression), so the probe boots the kernel
//! under KVM with no init and no root: a working KVM reaches the
//! "no root / no init" panic and, with `panic=-1 -no-reboot`, QEMU exits
//! within a second. The verdict is cached per host boot.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tracing::info;

/// The QEMU accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's binary translator (slow but works everywhere).
    Tcg,
}

impl Accelerator {
    /// The QEMU spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }
}

const CACHE: &str = "/run/container/accel";
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Returns the accelerator to use, probing (and caching) when needed.
/// `CONTAINER_ACCEL=kvm|tcg` overrides the probe.
pub async fn probe_accelerator(kernel: &Path) -> Accelerator {
    match std::env::var("CONTAINER_ACCEL").as_deref() {
        Ok("tcg") => return Accelerator::Tcg,
        Ok("kvm") => return Accelerator::Kvm,
        _ => {}
    }
    if !Path::new("/dev/kvm").exists() {
        info!("accelerator: tcg (no /dev/kvm)");
        return Accelerator::Tcg;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string();
    if let Ok(cached) = std::fs::read_to_string(CACHE) {
        let mut it = cached.split_whitespace();
        if it.next() == Some(boot_id.as_str()) {
            match it.next() {
                Some("kvm") => return Accelerator::Kvm,
                Some("tcg") => return Accelerator::Tcg,
                _ => {}
            }
        }
    }
    let (accel, why) = boot_test_kvm(kernel).await;
    info!("accelerator: {} ({why})", accel.as_str());
    let _ = std::fs::create_dir_all("/run/container");
    let tmp = format!("{CACHE}.{}", std::process::id());
    if std::fs::write(&tmp, format!("{boot_id} {}\n", accel.as_str())).is_ok() {
        let _ = std::fs::rename(&tmp, CACHE);
    }
    accel
}

async fn boot_test_kvm(kernel: &Path) -> (Accelerator, String) {
    let mut cmd = tokio::process::Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "microvm,x-option-roms=off",
        "-accel",
        "kvm",
        "-cpu",
        "host",
    ])
    .args([
        "-m",
        "128",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
    ])
    .args(["-serial", "stdio", "-kernel"])
    .arg(kernel)
    .args([
        "-append",
        "console=ttyS0 panic=-1 reboot=t rdinit=/none root=/dev/none",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let child = match super::spawn::spawn_tied(cmd) {
        Ok(c) => c,
        Err(e) => {
            return (
                Accelerator::Tcg,
                format!("cannot start QEMU for the KVM probe: {e}"),
            );
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let log = String::from_utf8_lossy(&out.stdout);
            if log.contains("Kernel panic") {
                (Accelerator::Kvm, "a probe guest booted under KVM".into())
            } else {
                (
                    Accelerator::Tcg,
                    format!(
                        "probe guest under KVM exited without booting ({})",
                        out.status
                    ),
                )
            }
        }
        Ok(Err(e)) => (Accelerator::Tcg, format!("KVM probe failed: {e}")),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => (
            Accelerator::Tcg,
            format!("probe guest under KVM did not finish within {PROBE_TIMEOUT:?}"),
        ),
    }
}

/// Host TSC frequency in kHz, for `tsc_early_khz=`: under TCG the guest TSC
/// is the host TSC, and without the hint 40 % of boots hang in calibration.
pub(crate) fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0).round() as u64)
}
