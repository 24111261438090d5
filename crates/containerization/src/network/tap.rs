//! Persistent TAP devices (the kernel refuses to create TAPs over
//! rtnetlink, so this is the `/dev/net/tun` ioctl path).

use std::os::fd::AsRawFd;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
nix::ioctl_write_int!(tunsetiff, b'T', 202);
nix::ioctl_write_int!(tunsetpersist, b'T', 203);

/// Creates persistent TAP `name` (no packet info, with vnet headers, which
/// is how QEMU opens it again). An existing TAP of that name is reused.
pub fn create_persistent_tap(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid interface name '{name}'"
        )));
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                Code::Unsupported
            } else {
                Code::InternalError
            };
            ContainerizationError::new(
                code,
                "cannot open /dev/net/tun: networking needs root (CAP_NET_ADMIN) and the tun module",
            )
            .with_cause(e)
        })?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
    unsafe { tunsetiff(tun.as_raw_fd(), &mut req as *mut libc::ifreq as u64) }
        .map_err(std::io::Error::from)
        .context(
            Code::Unsupported,
            format!("creating TAP {name} (needs CAP_NET_ADMIN)"),
        )?;
    // SAFETY: TUNSETPERSIST takes an integer argument on a TUN fd we own.
    unsafe { tunsetpersist(tun.as_raw_fd(), 1) }
        .map_err(std::io::Error::from)
        .context(Code::InternalError, format!("making TAP {name} persistent"))?;
    Ok(())
}
