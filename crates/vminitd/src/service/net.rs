//! IPv4 interface and route configuration with the classic ioctls
//! (SIOCSIFFLAGS, SIOCSIFMTU, SIOCSIFADDR, SIOCSIFNETMASK, SIOCADDRT): no
//! netlink library needed in the static agent.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use containerization_error::{ContainerizationError, Result};
use vminitd_api::proto;

/// `struct rtentry` from <net/route.h> (not exported by libc for glibc).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

const RTF_UP: libc::c_ushort = 0x0001;
const RTF_GATEWAY: libc::c_ushort = 0x0002;

fn socket() -> Result<OwnedFd> {
    nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| crate::sys::errno_error(e, "cannot open a configuration socket"))
}

fn ifreq(name: &str) -> Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid interface name {name:?}"
        )));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn ioctl<T>(fd: &OwnedFd, request: libc::c_ulong, arg: &mut T, what: &str) -> Result<()> {
    // SAFETY: every request used here takes a pointer to the struct type passed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        let e = nix::errno::Errno::last();
        return Err(crate::sys::errno_error(e, what.to_string()));
    }
    Ok(())
}

fn sockaddr_v4(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; sockaddr is the generic view.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Parses "a.b.c.d/len" into the address and its netmask.
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, Ipv4Addr, u8)> {
    let bad = || ContainerizationError::invalid_argument(format!("invalid IPv4 CIDR {cidr:?}"));
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Ok((ip, Ipv4Addr::from(mask), len))
}

/// Sets an interface up or down and optionally its MTU.
pub fn set_link(name: &str, up: bool, mtu: u32) -> Result<()> {
    let fd = socket()?;
    let mut req = ifreq(name)?;
    if mtu > 0 {
        req.ifr_ifru.ifru_mtu = i32::try_from(mtu)
            .map_err(|_| ContainerizationError::invalid_argument(format!("invalid MTU {mtu}")))?;
        ioctl(
            &fd,
            libc::SIOCSIFMTU,
            &mut req,
            &format!("cannot set the MTU of {name}"),
        )?;
    }
    let mut req = ifreq(name)?;
    ioctl(
        &fd,
        libc::SIOCGIFFLAGS,
        &mut req,
        &format!("interface {name} not found"),
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let mut flags = unsafe { req.ifr_ifru.ifru_flags };
    if up {
        flags |= libc::IFF_UP as libc::c_short;
    } else {
        flags &= !(libc::IFF_UP as libc::c_short);
    }
    req.ifr_ifru.ifru_flags = flags;
    ioctl(
        &fd,
        libc::SIOCSIFFLAGS,
        &mut req,
        &format!("cannot set {name} up/down"),
    )
}

pub(super) fn link_set(r: proto::IpLinkSetRequest) -> Result<()> {
    set_link(&r.interface, r.up, r.mtu)
}

pub(super) fn addr_add(r: proto::IpAddrAddRequest) -> Result<()> {
    let (ip, mask, _) = parse_cidr(&r.address)?;
    let fd = socket()?;
    let mut req = ifreq(&r.interface)?;
    req.ifr_ifru.ifru_addr = sockaddr_v4(ip);
    ioctl(
        &fd,
        libc::SIOCSIFADDR,
        &mut req,
        &format!("cannot set the address of {}", r.interface),
    )?;
    let mut req = ifreq(&r.interface)?;
    req.ifr_ifru.ifru_netmask = sockaddr_v4(mask);
    ioctl(
        &fd,
        libc::SIOCSIFNETMASK,
        &mut req,
        &format!("cannot set the netmask of {}", r.interface),
    )
}

fn add_route(
    interface: &str,
    dst: Ipv4Addr,
    mask: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    let fd = socket()?;
    let mut dev = std::ffi::CString::new(interface)
        .map_err(|_| ContainerizationError::invalid_argument("invalid interface name"))?
        .into_bytes_with_nul();
    ifreq(interface)?;
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_v4(dst),
        rt_gateway: sockaddr_v4(gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        rt_genmask: sockaddr_v4(mask),
        rt_flags: RTF_UP | if gateway.is_some() { RTF_GATEWAY } else { 0 },
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr().cast(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    ioctl(
        &fd,
        libc::SIOCADDRT,
        &mut rt,
        &format!("cannot add a route via {interface}"),
    )
}

pub(super) fn route_add_link(r: proto::IpRouteAddLinkRequest) -> Result<()> {
    let (ip, mask, _) = parse_cidr(&r.destination)?;
    let network = Ipv4Addr::from(u32::from(ip) & u32::from(mask));
    add_route(&r.interface, network, mask, None)
}

pub(super) fn route_add_default(r: proto::IpRouteAddDefaultRequest) -> Result<()> {
    let gw: Ipv4Addr = r.gateway.parse().map_err(|_| {
        ContainerizationError::invalid_argument(format!("invalid gateway {:?}", r.gateway))
    })?;
    add_route(
        &r.interface,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Some(gw),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_to_netmask() {
        let (ip, mask, len) = parse_cidr("192.168.64.2/24").unwrap();
        assert_eq!(ip, Ipv4Addr::new(192, 168, 64, 2));
        assert_eq!(mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(len, 24);
        assert!(parse_cidr("192.168.64.2").is_err());
        assert!(parse_cidr("192.168.64.2/33").is_err());
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().1, Ipv4Addr::UNSPECIFIED);
    }
}
