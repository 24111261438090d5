//! The `Networks` service and the daemon's side of container networking:
//! the bridge networks (library `Networks`), one DNS server task per
//! network on its gateway, and address allocation for new containers.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use container_api::apiserver::{
    Empty, NetworkCreateRequest, NetworkList, NetworkName, NetworkPruneReply, NetworkReply,
    networks_server::Networks as NetworksRpc,
};
use container_api::config::CreateOptions;
use container_api::network::{
    AttachedContainer, DnsSettings, NetworkAttachment, NetworkInfo, PortProtocol, PublishPort,
};
use container_api::{ContainerDb, StateRoot};
use containerization::network::dns::{DEFAULT_DOMAIN, DnsServer, host_resolvers};
use containerization::network::{
    DEFAULT_NETWORK, DEFAULT_SUBNET, KernelNetwork, NetworkState, Networks,
};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// Env var: subnet of the default network, or `none` for no default network
/// (containers without `--network` then get no interface).
pub const DEFAULT_SUBNET_ENV: &str = "CONTAINER_DEFAULT_SUBNET";
/// Env var: domain container names are answered under (default `container`).
pub const DNS_DOMAIN_ENV: &str = "CONTAINER_DNS_DOMAIN";

/// The daemon's networking state.
pub(crate) struct Nets {
    networks: Arc<Networks>,
    root: StateRoot,
    dns: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Serialises container creation with the release of stale addresses.
    pub create_lock: tokio::sync::Mutex<()>,
    /// Why networking cannot work here (no CAP_NET_ADMIN ...), if it cannot.
    unavailable: Mutex<Option<String>>,
    default_enabled: bool,
    domain: String,
}

impl Nets {
    /// Loads the networks, recreates their kernel objects and DNS servers,
    /// and makes the default network.
    pub(crate) async fn start(root: &StateRoot) -> Result<Arc<Nets>> {
        let networks = Arc::new(Networks::open(
            root.path().join("networks"),
            Arc::new(KernelNetwork),
        )?);
        let subnet = std::env::var(DEFAULT_SUBNET_ENV).unwrap_or_else(|_| DEFAULT_SUBNET.into());
        let default_enabled = subnet != "none";
        let nets = Arc::new(Nets {
            networks,
            root: root.clone(),
            dns: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            unavailable: Mutex::new(None),
            default_enabled,
            domain: std::env::var(DNS_DOMAIN_ENV).unwrap_or_else(|_| DEFAULT_DOMAIN.into()),
        });
        nets.gc();
        for (name, e) in nets.networks.restore().await {
            tracing::warn!(network = %name, "recreating the network failed: {e}");
            nets.set_unavailable(&e);
        }
        if default_enabled && let Err(e) = nets.networks.ensure_default(&subnet).await {
            tracing::warn!("creating the default network failed: {e}");
            nets.set_unavailable(&e);
        }
        for s in nets.networks.list()? {
            nets.start_dns(&s).await;
        }
        Ok(nets)
    }

    fn set_unavailable(&self, e: &ContainerizationError) {
        if e.code == Code::Unsupported
            && let Ok(mut u) = self.unavailable.lock()
        {
            *u = Some(e.message.clone());
        }
    }

    async fn start_dns(&self, s: &NetworkState) {
        let Ok(gw) = s.config.gateway.parse::<IpAddr>() else {
            return;
        };
        let networks = self.networks.clone();
        let name = s.config.id.clone();
        let lookup: containerization::network::dns::Lookup =
            Arc::new(move |host, client| networks.lookup_for(&name, client, host));
        let gateways: Vec<IpAddr> = self
            .networks
            .list()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.config.gateway.parse().ok())
            .collect();
        match DnsServer::bind(
            SocketAddr::new(gw, 53),
            lookup,
            &self.domain,
            host_resolvers(&gateways),
        )
        .await
        {
            Ok(server) => {
                let task = tokio::spawn(server.serve());
                if let Ok(mut d) = self.dns.lock()
                    && let Some(old) = d.insert(s.config.id.clone(), task)
                {
                    old.abort();
                }
            }
            Err(e) => tracing::warn!(network = %s.config.id, "DNS server not started: {e}"),
        }
    }

    fn stop_dns(&self, name: &str) {
        if let Ok(mut d) = self.dns.lock()
            && let Some(t) = d.remove(name)
        {
            t.abort();
        }
    }

    /// Releases addresses of containers that no longer exist (an `--rm`
    /// helper removes its record itself). Call with `create_lock` held.
    pub(crate) fn gc(&self) {
        let Ok(db) = ContainerDb::open(&self.root.containers_db()) else {
            return;
        };
        let Ok(list) = self.networks.list() else {
            return;
        };
        for s in list {
            for c in containerization::network::networks::attached(&s) {
                if matches!(db.find(&c), Ok(None)) {
                    tracing::info!(container = %c, network = %s.config.id, "releasing the address of a removed container");
                    let _ = self.networks.release(&c);
                }
            }
        }
    }

    /// `gc` under `create_lock`.
    pub(crate) async fn gc_locked(&self) {
        let _g = self.create_lock.lock().await;
        self.gc();
    }

    /// Allocates the interfaces container `id` asked for (default network
    /// unless told otherwise) and checks its published ports are free.
    pub(crate) fn attach(
        &self,
        id: &str,
        opts: &CreateOptions,
    ) -> Result<(Vec<NetworkAttachment>, DnsSettings)> {
        let explicit = !opts.networks.is_empty();
        let none = opts.networks.iter().any(|n| n.name == "none");
        if none && opts.networks.len() > 1 {
            return Err(ContainerizationError::invalid_argument(
                "--network none cannot be combined with other networks",
            ));
        }
        let requests: Vec<(String, Option<String>)> = if explicit {
            opts.networks
                .iter()
                .filter(|n| n.name != "none")
                .map(|n| (n.name.clone(), n.mac.clone()))
                .collect()
        } else if self.default_enabled {
            vec![(DEFAULT_NETWORK.to_string(), None)]
        } else {
            Vec::new()
        };
        let unavailable = self.unavailable.lock().ok().and_then(|u| u.clone());
        let mut out = Vec::new();
        if let Some(why) = unavailable.filter(|_| !requests.is_empty()) {
            if explicit || !opts.publish.is_empty() {
                return Err(ContainerizationError::unsupported(format!(
                    "networking is unavailable: {why}"
                )));
            }
            tracing::warn!(id = %id, "networking unavailable ({why}); the container gets no interface");
        } else {
            for (i, (net, mac)) in requests.iter().enumerate() {
                match self.networks.allocate(net, id, i, mac.as_deref()) {
                    Ok(a) => out.push(NetworkAttachment {
                        network: a.network,
                        address: a.address,
                        gateway: a.gateway,
                        mac: a.mac,
                        tap: a.tap,
                        bridge: a.bridge,
                        mtu: a.mtu,
                        internal: a.internal,
                    }),
                    Err(e) => {
                        let _ = self.networks.release(id);
                        return Err(e);
                    }
                }
            }
        }
        if !opts.publish.is_empty() && out.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "-p needs a network: the container has none (--network none?)",
            ));
        }
        if let Err(e) = opts.publish.iter().try_for_each(port_free) {
            let _ = self.networks.release(id);
            return Err(e);
        }
        let mut dns = opts.dns.clone();
        if !dns.disabled && dns.nameservers.is_empty() {
            match out.first() {
                Some(a) => {
                    dns.nameservers = vec![a.gateway.clone()];
                    if dns.search_domains.is_empty() {
                        dns.search_domains = vec![self.domain.clone()];
                    }
                }
                // No network, nobody to ask: keep the image's resolv.conf.
                None => dns.disabled = true,
            }
        }
        Ok((out, dns))
    }

    /// Releases everything container `id` holds.
    pub(crate) fn release(&self, id: &str) {
        if let Err(e) = self.networks.release(id) {
            tracing::warn!(id = %id, "releasing addresses failed: {e}");
        }
    }

    fn info(&self, s: &NetworkState) -> NetworkInfo {
        let prefix = |h: &str| h.rsplit_once('/').map(|(c, _)| c.to_string());
        NetworkInfo {
            id: s.config.id.clone(),
            subnet: s.config.subnet.clone(),
            gateway: s.config.gateway.clone(),
            internal: s.config.internal,
            labels: s.config.labels.clone(),
            bridge: s.config.bridge.clone(),
            created_at: s.config.created_at.clone(),
            containers: s
                .ipam
                .allocations
                .iter()
                .map(|(h, a)| AttachedContainer {
                    id: prefix(h).unwrap_or_else(|| h.clone()),
                    address: a.to_string(),
                })
                .collect(),
        }
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let _g = self.create_lock.lock().await;
        self.gc();
        self.stop_dns(name);
        let r = self.networks.delete(name).await;
        if r.is_err()
            && let Ok(s) = self.networks.get(name)
        {
            self.start_dns(&s).await;
        }
        r
    }
}

/// Deletes the TAPs of a container whose helper is gone (absent is fine).
pub(crate) async fn delete_taps(config: &container_api::ContainerConfiguration) {
    use containerization::network::HostNetwork;
    for a in &config.networks {
        if let Err(e) = KernelNetwork.delete_link(&a.tap).await {
            tracing::warn!(tap = %a.tap, "deleting a leftover TAP failed: {e}");
        }
    }
}

/// Refuses a published port something on the host already holds.
fn port_free(p: &PublishPort) -> Result<()> {
    let ip: IpAddr = p.host_ip.parse().map_err(|_| {
        ContainerizationError::invalid_argument(format!("invalid host address {}", p.host_ip))
    })?;
    for port in p.host_port..=p.host_port + (p.count - 1) {
        let addr = SocketAddr::new(ip, port);
        let r = match p.protocol {
            PortProtocol::Tcp => std::net::TcpListener::bind(addr).map(drop),
            PortProtocol::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        r.context(
            Code::Exists,
            format!(
                "host port {addr}/{} is already in use: pick another with -p",
                p.protocol.as_str()
            ),
        )?;
    }
    Ok(())
}

/// Implements `Networks`.
pub(crate) struct NetworksService {
    nets: Arc<Nets>,
}

impl NetworksService {
    pub(crate) fn new(nets: Arc<Nets>) -> Self {
        Self { nets }
    }
}

fn reply(i: &NetworkInfo) -> Result<String> {
    serde_json::to_string(i).context(Code::InternalError, "encoding a network")
}

#[tonic::async_trait]
impl NetworksRpc for NetworksService {
    async fn create(
        &self,
        req: Request<NetworkCreateRequest>,
    ) -> Result<Response<NetworkReply>, Status> {
        let r = req.into_inner();
        let subnet = (!r.subnet.is_empty()).then_some(r.subnet.as_str());
        let labels: BTreeMap<String, String> = r.labels.into_iter().collect();
        let c = self
            .nets
            .networks
            .create(&r.name, subnet, r.internal, labels)
            .await?;
        tracing::info!(network = %c.id, subnet = %c.subnet, "network created");
        let s = self.nets.networks.get(&c.id)?;
        self.nets.start_dns(&s).await;
        Ok(Response::new(NetworkReply {
            json: reply(&self.nets.info(&s))?,
        }))
    }

    async fn list(&self, _: Request<Empty>) -> Result<Response<NetworkList>, Status> {
        self.nets.gc_locked().await;
        let json = self
            .nets
            .networks
            .list()?
            .iter()
            .map(|s| reply(&self.nets.info(s)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Response::new(NetworkList { json }))
    }

    async fn inspect(&self, req: Request<NetworkName>) -> Result<Response<NetworkReply>, Status> {
        self.nets.gc_locked().await;
        let s = self.nets.networks.get(&req.into_inner().name)?;
        Ok(Response::new(NetworkReply {
            json: reply(&self.nets.info(&s))?,
        }))
    }

    async fn delete(&self, req: Request<NetworkName>) -> Result<Response<Empty>, Status> {
        let name = req.into_inner().name;
        self.nets.delete(&name).await?;
        tracing::info!(network = %name, "network deleted");
        Ok(Response::new(Empty {}))
    }

    async fn prune(&self, _: Request<Empty>) -> Result<Response<NetworkPruneReply>, Status> {
        self.nets.gc_locked().await;
        let mut deleted = Vec::new();
        for s in self.nets.networks.list()? {
            if s.config.id != DEFAULT_NETWORK && s.ipam.allocations.is_empty() {
                self.nets.delete(&s.config.id).await?;
                deleted.push(s.config.id);
            }
        }
        Ok(Response::new(NetworkPruneReply { deleted }))
    }
}
