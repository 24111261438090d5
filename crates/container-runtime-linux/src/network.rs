//! The container's network as the helper sets it up: TAPs on the network
//! bridges (created before QEMU opens them, deleted when the helper ends),
//! and the interfaces, resolv.conf and hosts the guest gets.

use std::sync::Arc;

use container_api::ContainerConfiguration;
use containerization::network::{HostNetwork, KernelNetwork};
use containerization::{Configuration, DNS, Hosts, HostsEntry, NATInterface};
use containerization_error::Result;

/// Creates the TAP of every interface; on failure removes those made.
pub(crate) async fn create_taps(config: &ContainerConfiguration) -> Result<()> {
    for (i, a) in config.networks.iter().enumerate() {
        if let Err(e) = KernelNetwork.create_tap(&a.tap, &a.bridge).await {
            for b in &config.networks[..=i] {
                let _ = KernelNetwork.delete_link(&b.tap).await;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes the container's TAPs (absent ones are fine).
pub(crate) async fn delete_taps(config: &ContainerConfiguration) {
    for a in &config.networks {
        if let Err(e) = KernelNetwork.delete_link(&a.tap).await {
            tracing::warn!(tap = %a.tap, "deleting the TAP failed: {e}");
        }
    }
}

/// Fills the library configuration: one interface per attachment (the
/// first non-internal one carries the default route), DNS and hosts.
pub(crate) fn configure(c: &mut Configuration, config: &ContainerConfiguration) {
    let mut have_route = false;
    for a in &config.networks {
        let gateway = (!a.internal && !have_route).then_some(a.gateway.as_str());
        have_route |= gateway.is_some();
        let mut i = NATInterface::new(&a.address, gateway, Some(&a.mac));
        i.tap = Some(a.tap.clone());
        c.interfaces.push(Arc::new(i));
    }
    let d = &config.dns;
    if !d.disabled && !d.nameservers.is_empty() {
        c.dns = Some(DNS {
            nameservers: d.nameservers.clone(),
            domain: d.domain.clone(),
            search_domains: d.search_domains.clone(),
            options: d.options.clone(),
        });
    }
    let mut entries = vec![HostsEntry::localhost_ipv4(None)];
    if let Some(a) = config.networks.first() {
        let mut names = vec![config.hostname.as_str()];
        if config.id != config.hostname {
            names.push(config.id.as_str());
        }
        entries.push(HostsEntry::new(a.ip(), &names, None));
    }
    c.hosts = Some(Hosts::new(entries, None));
}
