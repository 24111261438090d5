//! The kernel side of a network: bridges and TAPs over rtnetlink, NAT and
//! isolation rules with nftables. Behind the `HostNetwork` trait so the
//! bookkeeping in `networks.rs` is testable without root.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use containerization_error::{Code, ContainerizationError, Result};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

/// nftables table holding every rule this project adds.
pub const NFT_TABLE: &str = "container";

/// What a network needs from the host kernel.
#[async_trait]
pub trait HostNetwork: Send + Sync + std::fmt::Debug {
    /// Creates (or finds) bridge `name`, gives it `gateway/prefix`, brings it up,
    /// turns IPv4 forwarding on.
    async fn ensure_bridge(&self, name: &str, gateway: Ipv4Addr, subnet: &Ipv4Net) -> Result<()>;
    /// Installs the NAT (unless `internal`) and isolation rules of a bridge.
    async fn ensure_rules(&self, bridge: &str, subnet: &Ipv4Net, internal: bool) -> Result<()>;
    /// Removes the rules of a bridge (absent rules are fine).
    async fn remove_rules(&self, bridge: &str) -> Result<()>;
    /// Deletes link `name` (absent is fine).
    async fn delete_link(&self, name: &str) -> Result<()>;
    /// Creates persistent TAP `tap` on `bridge` and brings it up.
    async fn create_tap(&self, tap: &str, bridge: &str) -> Result<()>;
}

/// The real kernel: rtnetlink and the `nft` command (through the
/// `nftables` crate).
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelNetwork;

fn nl_err(what: String) -> impl FnOnce(rtnetlink::Error) -> ContainerizationError {
    move |e| {
        let code = match errno(&e) {
            Some(libc::EPERM) | Some(libc::EACCES) => Code::Unsupported,
            _ => Code::InternalError,
        };
        let hint = if code == Code::Unsupported {
            " (networking needs root or CAP_NET_ADMIN)"
        } else {
            ""
        };
        ContainerizationError::new(code, format!("{what}{hint}")).with_cause(e)
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

async fn connect() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| {
        ContainerizationError::internal("opening a netlink socket failed").with_cause(e)
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("looking up interface {name}"))(e)),
    }
}

fn apply(json: serde_json::Value, what: &str) -> Result<()> {
    let doc: nftables::schema::Nftables = serde_json::from_value(json).map_err(|e| {
        ContainerizationError::internal(format!("building nftables rules for {what}")).with_cause(e)
    })?;
    nftables::helper::apply_ruleset(&doc).map_err(|e| {
        ContainerizationError::new(
            Code::InternalError,
            format!(
                "applying nftables rules for {what} failed (is the nftables package installed?)"
            ),
        )
        .with_cause(e)
    })
}

fn chain(name: &str, hook: &str, kind: &str, prio: i32) -> serde_json::Value {
    serde_json::json!({"chain": {"family": "inet", "table": NFT_TABLE, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"}})
}

fn ifname(op: &str, key: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": value}})
}

#[async_trait]
impl HostNetwork for KernelNetwork {
    async fn ensure_bridge(&self, name: &str, gateway: Ipv4Addr, subnet: &Ipv4Net) -> Result<()> {
        let h = connect().await?;
        let index = match link_index(&h, name).await? {
            Some(i) => i,
            None => {
                h.link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await
                    .map_err(nl_err(format!("creating bridge {name}")))?;
                link_index(&h, name).await?.ok_or_else(|| {
                    ContainerizationError::internal(format!(
                        "bridge {name} vanished after creation"
                    ))
                })?
            }
        };
        match h
            .address()
            .add(index, gateway.into(), subnet.prefix_len())
            .execute()
            .await
        {
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            r => r.map_err(nl_err(format!("adding {gateway} to {name}")))?,
        }
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("bringing {name} up")))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| {
            ContainerizationError::new(Code::Unsupported, "turning on IPv4 forwarding failed")
                .with_cause(e)
        })?;
        Ok(())
    }

    async fn ensure_rules(&self, bridge: &str, subnet: &Ipv4Net, internal: bool) -> Result<()> {
        // Recreated from scratch so a restart never stacks duplicates.
        self.remove_rules(bridge).await?;
        let (nat, fwd) = (format!("nat-{bridge}"), format!("fwd-{bridge}"));
        let mut cmds = vec![
            serde_json::json!({"add": {"table": {"family": "inet", "name": NFT_TABLE}}}),
            serde_json::json!({"add": chain(&fwd, "forward", "filter", 0)}),
        ];
        // Traffic leaving the bridge for anything but itself: dropped for an
        // internal network, else allowed only towards non-container links
        // (other networks stay unreachable).
        let leave = if internal {
            vec![
                ifname("==", "iifname", bridge),
                ifname("!=", "oifname", bridge),
            ]
        } else {
            vec![
                ifname("==", "iifname", bridge),
                ifname("!=", "oifname", bridge),
                ifname("==", "oifname", "ctbr*"),
            ]
        };
        let mut drop = leave;
        drop.push(serde_json::json!({"drop": null}));
        cmds.push(
            serde_json::json!({"add": {"rule": {"family": "inet", "table": NFT_TABLE,
            "chain": fwd, "expr": drop}}}),
        );
        if !internal {
            cmds.push(serde_json::json!({"add": chain(&nat, "postrouting", "nat", 100)}));
            let masq = vec![
                serde_json::json!({"match": {"op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": {"prefix": {"addr": subnet.network().to_string(), "len": subnet.prefix_len()}}}}),
                ifname("!=", "oifname", bridge),
                serde_json::json!({"masquerade": null}),
            ];
            cmds.push(
                serde_json::json!({"add": {"rule": {"family": "inet", "table": NFT_TABLE,
                "chain": nat, "expr": masq}}}),
            );
        }
        let doc = serde_json::json!({"nftables": cmds});
        tokio::task::spawn_blocking(move || apply(doc, "the network"))
            .await
            .map_err(|e| ContainerizationError::internal("nft task failed").with_cause(e))?
    }

    async fn remove_rules(&self, bridge: &str) -> Result<()> {
        let bridge = bridge.to_string();
        tokio::task::spawn_blocking(move || {
            for name in [format!("nat-{bridge}"), format!("fwd-{bridge}")] {
                // "destroy" would not fail on absence but needs nft >= 1.0.8;
                // add-then-delete works everywhere.
                let doc = serde_json::json!({"nftables": [
                    {"add": {"table": {"family": "inet", "name": NFT_TABLE}}},
                    {"add": {"chain": {"family": "inet", "table": NFT_TABLE, "name": name}}},
                    {"flush": {"chain": {"family": "inet", "table": NFT_TABLE, "name": name}}},
                    {"delete": {"chain": {"family": "inet", "table": NFT_TABLE, "name": name}}},
                ]});
                apply(doc, "removing a network")?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ContainerizationError::internal("nft task failed").with_cause(e))?
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let h = connect().await?;
        if let Some(index) = link_index(&h, name).await? {
            match h.link().del(index).execute().await {
                Err(e) if errno(&e) == Some(libc::ENODEV) => {}
                r => r.map_err(nl_err(format!("deleting interface {name}")))?,
            }
        }
        Ok(())
    }

    async fn create_tap(&self, tap: &str, bridge: &str) -> Result<()> {
        super::tap::create_persistent_tap(tap)?;
        let h = connect().await?;
        let br = link_index(&h, bridge).await?.ok_or_else(|| {
            ContainerizationError::not_found(format!(
                "bridge {bridge} does not exist: restart the apiserver to recreate its networks"
            ))
        })?;
        let idx = link_index(&h, tap)
            .await?
            .ok_or_else(|| ContainerizationError::internal(format!("TAP {tap} vanished")))?;
        h.link()
            .set(LinkUnspec::new_with_index(idx).controller(br).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("attaching {tap} to {bridge}")))?;
        Ok(())
    }
}
