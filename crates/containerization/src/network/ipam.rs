//! IPv4 address management for one network: which container holds which
//! address of the subnet. Pure logic; persistence is the caller's (see
//! `store.rs`), so the rules are unit-testable without a kernel object.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use containerization_error::{ContainerizationError, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Parses a CIDR subnet (`192.168.64.0/24`) and normalises it to its network
/// address; refuses prefixes too small to hold a gateway and one container.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s.trim().parse().map_err(|_| {
        ContainerizationError::invalid_argument(format!(
            "invalid subnet '{s}': use an IPv4 CIDR such as 192.168.70.0/24"
        ))
    })?;
    if net.prefix_len() > 29 {
        return Err(ContainerizationError::invalid_argument(format!(
            "subnet '{s}' is too small: use a prefix of /29 or shorter"
        )));
    }
    Ok(net.trunc())
}

/// The gateway of a subnet: its first host address (like vmnet).
pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Addresses held in one subnet, keyed by holder (a container id plus the
/// interface index, so one container may join twice).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ipam {
    /// Holder -> address.
    pub allocations: BTreeMap<String, Ipv4Addr>,
}

impl Ipam {
    /// Gives `holder` an address of `subnet`: the one it already holds, else
    /// the lowest free host address (never the network, gateway or
    /// broadcast address, never one held by someone else).
    pub fn allocate(&mut self, subnet: &Ipv4Net, holder: &str) -> Result<Ipv4Addr> {
        if let Some(a) = self.allocations.get(holder) {
            return Ok(*a);
        }
        let taken: std::collections::BTreeSet<Ipv4Addr> =
            self.allocations.values().copied().collect();
        let first = u32::from(gateway(subnet)) + 1;
        let last = u32::from(subnet.broadcast()) - 1;
        let free = (first..=last)
            .map(Ipv4Addr::from)
            .find(|a| !taken.contains(a))
            .ok_or_else(|| {
                ContainerizationError::new(
                    containerization_error::Code::InvalidState,
                    format!("subnet {subnet} has no free address left: delete a container or use a larger subnet"),
                )
            })?;
        self.allocations.insert(holder.to_string(), free);
        Ok(free)
    }

    /// Gives `holder` exactly `addr`, if it is a free host address of `subnet`.
    pub fn reserve(&mut self, subnet: &Ipv4Net, holder: &str, addr: Ipv4Addr) -> Result<()> {
        let host = u32::from(addr);
        if !subnet.contains(&addr)
            || host <= u32::from(gateway(subnet))
            || host >= u32::from(subnet.broadcast())
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "{addr} is not a usable host address of {subnet}"
            )));
        }
        match self.allocations.iter().find(|(_, a)| **a == addr) {
            Some((h, _)) if h != holder => Err(ContainerizationError::exists(format!(
                "{addr} is already in use by {h}"
            ))),
            _ => {
                self.allocations.insert(holder.to_string(), addr);
                Ok(())
            }
        }
    }

    /// Releases what `holder` holds; returns the address, if any.
    pub fn release(&mut self, holder: &str) -> Option<Ipv4Addr> {
        self.allocations.remove(holder)
    }

    /// Releases every address whose holder starts with `prefix`.
    pub fn release_prefix(&mut self, prefix: &str) -> Vec<Ipv4Addr> {
        let holders: Vec<String> = self
            .allocations
            .keys()
            .filter(|h| h.starts_with(prefix))
            .cloned()
            .collect();
        holders
            .iter()
            .filter_map(|h| self.allocations.remove(h))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        parse_subnet(s).unwrap()
    }

    #[test]
    fn subnets_parse_and_normalise() {
        assert_eq!(net("192.168.64.7/24").to_string(), "192.168.64.0/24");
        assert_eq!(gateway(&net("10.1.0.0/16")), Ipv4Addr::new(10, 1, 0, 1));
        assert!(parse_subnet("300.1.1.0/24").is_err());
        assert!(parse_subnet("10.0.0.0/30").is_err());
        assert!(parse_subnet("nonsense").is_err());
    }

    #[test]
    fn many_holders_get_distinct_addresses() {
        let s = net("192.168.64.0/24");
        let mut ipam = Ipam::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            let a = ipam.allocate(&s, &format!("c{i}/0")).unwrap();
            assert!(seen.insert(a), "{a} handed out twice");
            assert!(a != gateway(&s) && a != s.network() && a != s.broadcast());
        }
        assert_eq!(
            ipam.allocate(&s, "c3/0").unwrap(),
            Ipv4Addr::new(192, 168, 64, 5)
        );
    }

    #[test]
    fn released_addresses_are_reused_never_duplicated() {
        let s = net("10.9.0.0/24");
        let mut ipam = Ipam::default();
        let a = ipam.allocate(&s, "a/0").unwrap();
        let b = ipam.allocate(&s, "b/0").unwrap();
        assert_eq!(ipam.release_prefix("a/"), vec![a]);
        let c = ipam.allocate(&s, "c/0").unwrap();
        assert_eq!(c, a, "the freed address is reused");
        assert_ne!(ipam.allocate(&s, "d/0").unwrap(), b);
        // Survives a round trip through its persisted form.
        let back: Ipam = serde_json::from_str(&serde_json::to_string(&ipam).unwrap()).unwrap();
        let mut back = back;
        let e = back.allocate(&s, "e/0").unwrap();
        assert!(![a, b, c].contains(&e));
    }

    #[test]
    fn a_full_subnet_and_bad_reservations_are_refused() {
        let s = net("10.9.0.0/29"); // hosts .2 - .6 after the gateway
        let mut ipam = Ipam::default();
        for i in 0..5 {
            ipam.allocate(&s, &format!("c{i}")).unwrap();
        }
        assert!(ipam.allocate(&s, "late").is_err());
        let mut ipam = Ipam::default();
        ipam.reserve(&s, "x", Ipv4Addr::new(10, 9, 0, 4)).unwrap();
        assert!(ipam.reserve(&s, "y", Ipv4Addr::new(10, 9, 0, 4)).is_err());
        assert!(ipam.reserve(&s, "y", Ipv4Addr::new(10, 9, 0, 1)).is_err());
        assert!(ipam.reserve(&s, "y", Ipv4Addr::new(10, 9, 1, 4)).is_err());
        assert_ne!(ipam.allocate(&s, "z").unwrap(), Ipv4Addr::new(10, 9, 0, 4));
    }
}
