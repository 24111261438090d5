//! Interface, address and route configuration with the classic ioctls
//! (SIOCSIFFLAGS, SIOCSIFMTU, SIOCSIFADDR, SIOCSIFNETMASK, SIOCADDRT; for
//! IPv6 the same calls on an AF_INET6 socket with `in6_ifreq`/`in6_rtmsg`):
//! no netlink library needed in the static agent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    socket_of(nix::sys::socket::AddressFamily::Inet)
}

fn socket_of(family: nix::sys::socket::AddressFamily) -> Result<OwnedFd> {
    nix::sys::socket::socket(
        family,
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

/// Parses "ADDRESS/LEN" of one family (`max` bits) into its parts.
fn parse_prefix<A: std::str::FromStr>(cidr: &str, family: &str, max: u8) -> Result<(A, u8)> {
    let bad = || ContainerizationError::invalid_argument(format!("invalid {family} CIDR {cidr:?}"));
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: A = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

/// Parses "a.b.c.d/len" into the address and its netmask.
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, Ipv4Addr, u8)> {
    let (ip, len) = parse_prefix::<Ipv4Addr>(cidr, "IPv4", 32)?;
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
    if r.address.contains(':') {
        let (ip, len) = parse_cidr6(&r.address)?;
        return addr_add6(&r.interface, ip, len);
    }
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
    if r.destination.contains(':') {
        let (ip, len) = parse_cidr6(&r.destination)?;
        return add_route6(&r.interface, network6(ip, len), len, None);
    }
    let (ip, mask, _) = parse_cidr(&r.destination)?;
    let network = Ipv4Addr::from(u32::from(ip) & u32::from(mask));
    add_route(&r.interface, network, mask, None)
}

pub(super) fn route_add_default(r: proto::IpRouteAddDefaultRequest) -> Result<()> {
    let gw: IpAddr = r.gateway.parse().map_err(|_| {
        ContainerizationError::invalid_argument(format!("invalid gateway {:?}", r.gateway))
    })?;
    let gw = match gw {
        IpAddr::V6(gw) => return add_route6(&r.interface, Ipv6Addr::UNSPECIFIED, 0, Some(gw)),
        IpAddr::V4(gw) => gw,
    };
    add_route(
        &r.interface,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Some(gw),
    )
}

/// `struct in6_ifreq` from <linux/ipv6.h>.
#[repr(C)]
struct In6Ifreq {
    ifr6_addr: libc::in6_addr,
    ifr6_prefixlen: u32,
    ifr6_ifindex: libc::c_int,
}

/// `struct in6_rtmsg` from <linux/ipv6_route.h>.
#[repr(C)]
struct In6Rtmsg {
    rtmsg_dst: libc::in6_addr,
    rtmsg_src: libc::in6_addr,
    rtmsg_gateway: libc::in6_addr,
    rtmsg_type: u32,
    rtmsg_dst_len: u16,
    rtmsg_src_len: u16,
    rtmsg_metric: u32,
    rtmsg_info: libc::c_ulong,
    rtmsg_flags: u32,
    rtmsg_ifindex: libc::c_int,
}

/// The metric `ip -6 route` gives routes without one (IP6_RT_PRIO_USER).
const IP6_RT_PRIO_USER: u32 = 1024;

/// Parses "2001:db8::2/64" into the address and its prefix length.
pub fn parse_cidr6(cidr: &str) -> Result<(Ipv6Addr, u8)> {
    parse_prefix(cidr, "IPv6", 128)
}

/// The network of `ip/len` (host bits cleared).
fn network6(ip: Ipv6Addr, len: u8) -> Ipv6Addr {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    Ipv6Addr::from(u128::from(ip) & mask)
}

fn in6(ip: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: ip.octets(),
    }
}

fn if_index(name: &str) -> Result<libc::c_int> {
    ifreq(name)?;
    let index = nix::net::if_::if_nametoindex(name)
        .map_err(|e| crate::sys::errno_error(e, format!("interface {name} not found")))?;
    libc::c_int::try_from(index)
        .map_err(|_| ContainerizationError::internal(format!("interface index {index} too large")))
}

fn addr_add6(interface: &str, ip: Ipv6Addr, len: u8) -> Result<()> {
    let ifindex = if_index(interface)?;
    // The address is the VM's own, assigned by the host's IPAM: skip
    // duplicate address detection, which would leave it unusable
    // ("tentative") for the first second or more.
    let dad = format!("/proc/sys/net/ipv6/conf/{interface}/accept_dad");
    if let Err(e) = std::fs::write(&dad, "0") {
        return Err(ContainerizationError::internal(format!(
            "cannot configure IPv6 on {interface} (is IPv6 disabled?)"
        ))
        .with_cause(e));
    }
    let fd = socket_of(nix::sys::socket::AddressFamily::Inet6)?;
    let mut req = In6Ifreq {
        ifr6_addr: in6(ip),
        ifr6_prefixlen: u32::from(len),
        ifr6_ifindex: ifindex,
    };
    ioctl(
        &fd,
        libc::SIOCSIFADDR,
        &mut req,
        &format!("cannot add the address {ip}/{len} to {interface}"),
    )
}

fn add_route6(interface: &str, dst: Ipv6Addr, len: u8, gateway: Option<Ipv6Addr>) -> Result<()> {
    let ifindex = if_index(interface)?;
    let fd = socket_of(nix::sys::socket::AddressFamily::Inet6)?;
    let mut rt = In6Rtmsg {
        rtmsg_dst: in6(dst),
        rtmsg_src: in6(Ipv6Addr::UNSPECIFIED),
        rtmsg_gateway: in6(gateway.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        rtmsg_type: 0,
        rtmsg_dst_len: u16::from(len),
        rtmsg_src_len: 0,
        rtmsg_metric: IP6_RT_PRIO_USER,
        rtmsg_info: 0,
        rtmsg_flags: u32::from(RTF_UP | if gateway.is_some() { RTF_GATEWAY } else { 0 }),
        rtmsg_ifindex: ifindex,
    };
    ioctl(
        &fd,
        libc::SIOCADDRT,
        &mut rt,
        &format!("cannot add an IPv6 route via {interface}"),
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

    #[test]
    fn cidr6_parses_and_masks() {
        let (ip, len) = parse_cidr6("fd00:64::2/64").unwrap();
        assert_eq!(ip, "fd00:64::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(len, 64);
        assert_eq!(network6(ip, len), "fd00:64::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(network6(ip, 0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(network6(ip, 128), ip);
        assert!(parse_cidr6("fd00::2").is_err());
        assert!(parse_cidr6("fd00::2/129").is_err());
        assert!(parse_cidr6("10.0.0.1/8").is_err());
    }
}
