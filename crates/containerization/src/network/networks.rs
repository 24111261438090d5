//! The set of networks of one state root (seed `VmnetNetwork`, mapped to a
//! Linux bridge): their configuration and IPAM, persisted one JSON file per
//! network under `<root>/networks/`, and the kernel objects behind them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::host::HostNetwork;
use super::ipam::{Ipam, gateway, parse_subnet};
use super::mac::{generate_mac, parse_mac};

/// Name of the network every container joins unless told otherwise.
pub const DEFAULT_NETWORK: &str = "default";
/// Subnet of the default network (like vmnet's).
pub const DEFAULT_SUBNET: &str = "192.168.64.0/24";
/// Where automatic subnets for `network create` come from: 192.168.65-254.
const AUTO_SUBNETS: std::ops::RangeInclusive<u8> = 65..=254;
/// MTU of container interfaces (the bridge and TAP default).
pub const DEFAULT_MTU: u32 = 1500;

/// A network as created (seed `NetworkConfiguration`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkConfiguration {
    /// Name (also the id).
    pub id: String,
    /// IPv4 subnet in CIDR form.
    pub subnet: String,
    /// Gateway address (the bridge's address, DNS server of the network).
    pub gateway: String,
    /// No NAT and no route out of the network.
    #[serde(default)]
    pub internal: bool,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host bridge device.
    pub bridge: String,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created_at: String,
}

/// One persisted network: its configuration and who holds which address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkState {
    /// Configuration.
    pub config: NetworkConfiguration,
    /// Address allocations; holders are `<container>/<interface index>`.
    #[serde(default)]
    pub ipam: Ipam,
}

/// An interface handed to a container on a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// Network name.
    pub network: String,
    /// Address with prefix, e.g. `192.168.64.2/24`.
    pub address: String,
    /// Gateway address.
    pub gateway: String,
    /// Guest MAC address.
    pub mac: String,
    /// Host TAP device.
    pub tap: String,
    /// Host bridge the TAP joins.
    pub bridge: String,
    /// MTU.
    pub mtu: u32,
    /// Network is internal (no default route is given).
    pub internal: bool,
}

/// The networks of a state root.
#[derive(Debug)]
pub struct Networks {
    dir: PathBuf,
    host: Arc<dyn HostNetwork>,
    state: Mutex<BTreeMap<String, NetworkState>>,
}

/// Bridge device of network `name`: `ctbr` + a hash, so any name fits the
/// kernel's 15-byte limit and the isolation rule can match `ctbr*`.
pub fn bridge_name(name: &str) -> String {
    format!("ctbr{:08x}", fnv1a(name.as_bytes()))
}

/// TAP device of the interface with `addr`: unique because addresses are.
pub fn tap_name(addr: Ipv4Addr) -> String {
    format!("ctap{:08x}", u32::from(addr))
}

fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, x| {
        (h ^ u32::from(*x)).wrapping_mul(0x0100_0193)
    })
}

/// Docker's name rule, as for containers.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Networks {
    /// Loads the networks stored under `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>, host: Arc<dyn HostNetwork>) -> Result<Networks> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .context(Code::InternalError, format!("creating {}", dir.display()))?;
        let mut state = BTreeMap::new();
        let entries = std::fs::read_dir(&dir)
            .context(Code::InternalError, format!("reading {}", dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read(&p)
                .context(Code::InternalError, format!("reading {}", p.display()))?;
            let s: NetworkState = serde_json::from_slice(&text)
                .context(Code::InternalError, format!("parsing {}", p.display()))?;
            state.insert(s.config.id.clone(), s);
        }
        Ok(Networks {
            dir,
            host,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<String, NetworkState>>> {
        self.state
            .lock()
            .map_err(|_| ContainerizationError::internal("network state poisoned"))
    }

    fn persist(&self, s: &NetworkState) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(s).context(Code::InternalError, "serialising a network")?;
        crate::write_atomic(&self.dir.join(format!("{}.json", s.config.id)), &json)
    }

    /// Creates network `id`. `subnet` `None` picks a free 192.168.x.0/24.
    pub async fn create(
        &self,
        id: &str,
        subnet: Option<&str>,
        internal: bool,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkConfiguration> {
        if !valid_name(id) || id == "none" {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid network name '{id}': use letters, digits, '-', '_' and '.'"
            )));
        }
        let config = {
            let mut map = self.lock()?;
            if map.contains_key(id) {
                return Err(ContainerizationError::exists(format!(
                    "network {id} already exists"
                )));
            }
            let used: Vec<Ipv4Net> = map
                .values()
                .filter_map(|s| s.config.subnet.parse().ok())
                .collect();
            let net = match subnet {
                Some(s) => {
                    let net = parse_subnet(s)?;
                    if let Some(o) = used.iter().find(|u| overlaps(u, &net)) {
                        return Err(ContainerizationError::exists(format!(
                            "subnet {net} overlaps {o} of another network"
                        )));
                    }
                    net
                }
                None => AUTO_SUBNETS
                    .map(|x| Ipv4Net::new(Ipv4Addr::new(192, 168, x, 0), 24).expect("valid /24"))
                    .find(|n| !used.iter().any(|u| overlaps(u, n)))
                    .ok_or_else(|| {
                        ContainerizationError::new(
                            Code::InvalidState,
                            "no free 192.168.x.0/24 subnet left: pass --subnet",
                        )
                    })?,
            };
            let config = NetworkConfiguration {
                id: id.to_string(),
                subnet: net.to_string(),
                gateway: gateway(&net).to_string(),
                internal,
                labels,
                bridge: bridge_name(id),
                created_at: chrono::Utc::now().to_rfc3339(),
            };
            let state = NetworkState {
                config: config.clone(),
                ipam: Ipam::default(),
            };
            // Recorded before the kernel objects exist, so a crash in between
            // leaves a record `delete` can clean up rather than an orphan.
            self.persist(&state)?;
            map.insert(id.to_string(), state);
            config
        };
        if let Err(e) = self.realise(&config).await {
            let _ = self.teardown(&config).await;
            if let Ok(mut map) = self.lock() {
                map.remove(id);
            }
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
            return Err(e);
        }
        Ok(config)
    }

    async fn realise(&self, c: &NetworkConfiguration) -> Result<()> {
        let net: Ipv4Net = c.subnet.parse().map_err(|_| {
            ContainerizationError::internal(format!("stored subnet of {} is corrupt", c.id))
        })?;
        self.host
            .ensure_bridge(&c.bridge, gateway(&net), &net)
            .await?;
        self.host.ensure_rules(&c.bridge, &net, c.internal).await
    }

    async fn teardown(&self, c: &NetworkConfiguration) -> Result<()> {
        self.host.remove_rules(&c.bridge).await?;
        self.host.delete_link(&c.bridge).await
    }

    /// Makes sure every stored network's bridge and rules exist (daemon
    /// start; idempotent). Returns the names that failed with the error.
    pub async fn restore(&self) -> Vec<(String, ContainerizationError)> {
        let configs: Vec<NetworkConfiguration> = match self.lock() {
            Ok(m) => m.values().map(|s| s.config.clone()).collect(),
            Err(e) => return vec![(String::new(), e)],
        };
        let mut failed = Vec::new();
        for c in configs {
            if let Err(e) = self.realise(&c).await {
                failed.push((c.id.clone(), e));
            }
        }
        failed
    }

    /// Creates the default network if it does not exist yet.
    pub async fn ensure_default(&self, subnet: &str) -> Result<()> {
        if self.lock()?.contains_key(DEFAULT_NETWORK) {
            return Ok(());
        }
        match self
            .create(DEFAULT_NETWORK, Some(subnet), false, BTreeMap::new())
            .await
        {
            Err(e) if e.code == Code::Exists && e.message.contains("already exists") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Every network.
    pub fn list(&self) -> Result<Vec<NetworkState>> {
        Ok(self.lock()?.values().cloned().collect())
    }

    /// Network `id`.
    pub fn get(&self, id: &str) -> Result<NetworkState> {
        self.lock()?
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerizationError::not_found(format!("network {id} not found")))
    }

    /// Deletes network `id`; refused for `default` and while containers hold
    /// addresses on it.
    pub async fn delete(&self, id: &str) -> Result<()> {
        if id == DEFAULT_NETWORK {
            return Err(ContainerizationError::invalid_argument(
                "the default network cannot be deleted",
            ));
        }
        let config = {
            let map = self.lock()?;
            let s = map.get(id).ok_or_else(|| {
                ContainerizationError::not_found(format!("network {id} not found"))
            })?;
            if !s.ipam.allocations.is_empty() {
                let users: Vec<String> = attached(s);
                return Err(ContainerizationError::invalid_state(format!(
                    "network {id} is in use by {}: delete those containers first",
                    users.join(", ")
                )));
            }
            s.config.clone()
        };
        self.teardown(&config).await?;
        let mut map = self.lock()?;
        let path = self.dir.join(format!("{id}.json"));
        std::fs::remove_file(&path)
            .context(Code::InternalError, format!("removing {}", path.display()))?;
        map.remove(id);
        Ok(())
    }

    /// Gives interface `index` of `container` an address on `network`, with
    /// `mac` or a generated one. Persisted before it returns.
    pub fn allocate(
        &self,
        network: &str,
        container: &str,
        index: usize,
        mac: Option<&str>,
    ) -> Result<Attachment> {
        let mut map = self.lock()?;
        let s = map.get_mut(network).ok_or_else(|| {
            ContainerizationError::not_found(format!(
                "network {network} not found: create it with `container network create {network}`"
            ))
        })?;
        let net: Ipv4Net = s.config.subnet.parse().map_err(|_| {
            ContainerizationError::internal(format!("stored subnet of {network} is corrupt"))
        })?;
        let mac = match mac {
            Some(m) => parse_mac(m)?,
            None => generate_mac(),
        };
        let mut next = s.clone();
        let addr = next.ipam.allocate(&net, &format!("{container}/{index}"))?;
        self.persist(&next)?;
        *s = next;
        Ok(Attachment {
            network: network.to_string(),
            address: format!("{addr}/{}", net.prefix_len()),
            gateway: s.config.gateway.clone(),
            mac,
            tap: tap_name(addr),
            bridge: s.config.bridge.clone(),
            mtu: DEFAULT_MTU,
            internal: s.config.internal,
        })
    }

    /// Releases every address `container` holds, on every network.
    pub fn release(&self, container: &str) -> Result<()> {
        let mut map = self.lock()?;
        let prefix = format!("{container}/");
        for s in map.values_mut() {
            if s.ipam.allocations.keys().any(|h| h.starts_with(&prefix)) {
                let mut next = s.clone();
                next.ipam.release_prefix(&prefix);
                self.persist(&next)?;
                *s = next;
            }
        }
        Ok(())
    }

    /// Address of container `name` as seen by `client` asking the DNS server
    /// of `network`: its address on `network`, else on another network the
    /// client's container is also attached to.
    pub fn lookup_for(&self, network: &str, client: IpAddr, name: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.lookup(network, name) {
            return Some(a);
        }
        let IpAddr::V4(client) = client else {
            return None;
        };
        let map = self.state.lock().ok()?;
        let asker = map
            .get(network)?
            .ipam
            .allocations
            .iter()
            .find(|(_, a)| **a == client)
            .and_then(|(h, _)| h.rsplit_once('/'))
            .map(|(c, _)| format!("{c}/"))?;
        let (want, mine) = (format!("{name}/"), asker);
        map.values()
            .filter(|s| s.ipam.allocations.keys().any(|h| h.starts_with(&mine)))
            .flat_map(|s| s.ipam.allocations.iter())
            .find(|(h, _)| h.starts_with(&want))
            .map(|(_, a)| *a)
    }

    /// Address of container `name` on `network`.
    pub fn lookup(&self, network: &str, name: &str) -> Option<Ipv4Addr> {
        let map = self.state.lock().ok()?;
        let s = map.get(network)?;
        let prefix = format!("{name}/");
        s.ipam
            .allocations
            .iter()
            .filter(|(h, _)| h.starts_with(&prefix))
            .map(|(_, a)| *a)
            .next()
    }
}

/// Containers holding an address on a network.
pub fn attached(s: &NetworkState) -> Vec<String> {
    let mut v: Vec<String> = s
        .ipam
        .allocations
        .keys()
        .map(|h| h.rsplit_once('/').map(|(c, _)| c).unwrap_or(h).to_string())
        .collect();
    v.dedup();
    v
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// Records what would have been done to the kernel.
    #[derive(Debug, Default)]
    struct FakeHost {
        ops: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl HostNetwork for FakeHost {
        async fn ensure_bridge(&self, name: &str, gw: Ipv4Addr, _: &Ipv4Net) -> Result<()> {
            self.ops.lock().unwrap().push(format!("bridge {name} {gw}"));
            Ok(())
        }
        async fn ensure_rules(&self, bridge: &str, _: &Ipv4Net, internal: bool) -> Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("rules {bridge} {internal}"));
            Ok(())
        }
        async fn remove_rules(&self, bridge: &str) -> Result<()> {
            self.ops.lock().unwrap().push(format!("unrules {bridge}"));
            Ok(())
        }
        async fn delete_link(&self, name: &str) -> Result<()> {
            self.ops.lock().unwrap().push(format!("del {name}"));
            Ok(())
        }
        async fn create_tap(&self, tap: &str, bridge: &str) -> Result<()> {
            self.ops.lock().unwrap().push(format!("tap {tap} {bridge}"));
            Ok(())
        }
    }

    #[tokio::test]
    async fn networks_persist_allocate_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(FakeHost::default());
        let n = Networks::open(dir.path(), host.clone()).unwrap();
        n.ensure_default(DEFAULT_SUBNET).await.unwrap();
        n.ensure_default(DEFAULT_SUBNET).await.unwrap();
        let b = n
            .create("backend", None, true, BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(b.subnet, "192.168.65.0/24");
        assert_eq!(b.gateway, "192.168.65.1");
        assert!(
            n.create("backend", None, false, BTreeMap::new())
                .await
                .is_err()
        );
        assert!(
            n.create("x", Some("192.168.64.128/25"), false, BTreeMap::new())
                .await
                .is_err()
        );
        assert!(
            n.create("bad/name", None, false, BTreeMap::new())
                .await
                .is_err()
        );

        let a = n.allocate("default", "web", 0, None).unwrap();
        assert_eq!(a.address, "192.168.64.2/24");
        assert_eq!(a.tap, "ctapc0a84002");
        let c = n
            .allocate("default", "db", 0, Some("02:00:00:00:00:09"))
            .unwrap();
        assert_eq!(
            (c.address.as_str(), c.mac.as_str()),
            ("192.168.64.3/24", "02:00:00:00:00:09")
        );
        assert!(n.allocate("nope", "x", 0, None).is_err());
        assert_eq!(
            n.lookup("default", "db"),
            Some(Ipv4Addr::new(192, 168, 64, 3))
        );

        // A restart (re-open) sees the same allocations and hands out no duplicate.
        drop(n);
        let n = Networks::open(dir.path(), host.clone()).unwrap();
        assert_eq!(
            n.lookup("default", "web"),
            Some(Ipv4Addr::new(192, 168, 64, 2))
        );
        let d = n.allocate("default", "other", 0, None).unwrap();
        assert_eq!(d.address, "192.168.64.4/24");
        assert!(n.restore().await.is_empty());

        // In-use and default networks cannot be deleted; released ones can.
        n.allocate("backend", "web", 1, None).unwrap();
        assert_eq!(
            n.delete("backend").await.unwrap_err().code,
            Code::InvalidState
        );
        assert!(n.delete(DEFAULT_NETWORK).await.is_err());
        n.release("web").unwrap();
        assert_eq!(n.lookup("default", "web"), None);
        n.delete("backend").await.unwrap();
        assert!(n.get("backend").is_err());
        assert!(!dir.path().join("backend.json").exists());
        let ops = host.ops.lock().unwrap().join("\n");
        assert!(
            ops.contains(&format!("del {}", bridge_name("backend"))),
            "{ops}"
        );
        assert!(
            ops.contains(&format!("rules {} true", bridge_name("backend"))),
            "{ops}"
        );
    }
}
