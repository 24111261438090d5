//! Network parts of a container's configuration: its interfaces, published
//! ports and DNS settings (all `#[serde(default)]` in the configuration, so
//! records written before networks existed still load).

use serde::{Deserialize, Serialize};

use containerization_error::{ContainerizationError, Result};

/// `--network NAME[,mac=XX]` as asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkRequest {
    /// Network name (`none` means no interface at all).
    pub name: String,
    /// Fixed MAC address.
    #[serde(default)]
    pub mac: Option<String>,
}

impl NetworkRequest {
    /// Parses `NAME[,mac=XX]`.
    pub fn parse(s: &str) -> Result<NetworkRequest> {
        let mut parts = s.split(',');
        let name = parts.next().unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid --network '{s}': use NAME[,mac=XX:XX:XX:XX:XX:XX]"
            )));
        }
        let mut req = NetworkRequest { name, mac: None };
        for p in parts {
            match p.split_once('=') {
                Some(("mac", v)) => req.mac = Some(v.to_string()),
                _ => {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "unknown --network option '{p}': only mac= is supported"
                    )));
                }
            }
        }
        Ok(req)
    }
}

/// An interface the container got on a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Network name.
    pub network: String,
    /// Address with prefix length, e.g. `192.168.64.2/24`.
    pub address: String,
    /// Gateway (also the network's DNS server).
    pub gateway: String,
    /// Guest MAC address.
    pub mac: String,
    /// Host TAP device.
    pub tap: String,
    /// Host bridge.
    pub bridge: String,
    /// MTU.
    pub mtu: u32,
    /// The network has no route out: no default route is set.
    #[serde(default)]
    pub internal: bool,
}

impl NetworkAttachment {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or_default()
    }
}

/// Transport of a published port.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// `tcp` / `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}

/// `-p [ip:]hostPort[-end]:containerPort[-end][/tcp|udp]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishPort {
    /// Host address to listen on (`0.0.0.0` by default).
    pub host_ip: String,
    /// First host port.
    pub host_port: u16,
    /// First container port.
    pub container_port: u16,
    /// How many consecutive ports.
    pub count: u16,
    /// Transport.
    pub protocol: PortProtocol,
}

fn port_range(s: &str, spec: &str) -> Result<(u16, u16)> {
    let bad = || {
        ContainerizationError::invalid_argument(format!(
            "invalid -p '{spec}': use [ip:]hostPort:containerPort[/tcp|udp], ports 1-65535, ranges as a-b"
        ))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b - a + 1))
}

impl PublishPort {
    /// Parses one `-p` value.
    pub fn parse(spec: &str) -> Result<PublishPort> {
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, PortProtocol::Tcp),
            Some((r, "udp")) => (r, PortProtocol::Udp),
            Some(_) => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "invalid -p '{spec}': the protocol must be tcp or udp"
                )));
            }
            None => (spec, PortProtocol::Tcp),
        };
        let (ip, host, ctr) = match rest.rsplitn(3, ':').collect::<Vec<_>>()[..] {
            [ctr, host] => ("0.0.0.0", host, ctr),
            [ctr, host, ip] => (ip.trim_matches(['[', ']']), host, ctr),
            _ => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "invalid -p '{spec}': use [ip:]hostPort:containerPort[/tcp|udp]"
                )));
            }
        };
        let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid -p '{spec}': '{ip}' is not an IP address"
            )));
        }
        let (host_port, n) = port_range(host, spec)?;
        let (container_port, m) = port_range(ctr, spec)?;
        if n != m {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid -p '{spec}': host and container ranges differ in size"
            )));
        }
        if u32::from(host_port) + u32::from(n) - 1 > 65535
            || u32::from(container_port) + u32::from(n) - 1 > 65535
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid -p '{spec}': range passes 65535"
            )));
        }
        Ok(PublishPort {
            host_ip: ip.to_string(),
            host_port,
            container_port,
            count: n,
            protocol,
        })
    }

    /// `127.0.0.1:8080->80/tcp` (as `list` shows it).
    pub fn display(&self) -> String {
        let range = |p: u16| {
            if self.count > 1 {
                format!("{p}-{}", p + self.count - 1)
            } else {
                p.to_string()
            }
        };
        format!(
            "{}:{}->{}/{}",
            self.host_ip,
            range(self.host_port),
            range(self.container_port),
            self.protocol.as_str()
        )
    }
}

/// `--publish-socket HOST.sock:CTR.sock`: connections to the host socket
/// reach the container's socket (relayed over vsock by the agent).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishSocket {
    /// Absolute host path the relay listens on.
    pub host_path: String,
    /// Absolute path of the socket inside the container.
    pub container_path: String,
}

impl PublishSocket {
    /// Parses `HOST_PATH:CONTAINER_PATH` (both absolute).
    pub fn parse(spec: &str) -> Result<PublishSocket> {
        match spec.split_once(':') {
            Some((h, c)) if h.starts_with('/') && c.starts_with('/') => Ok(PublishSocket {
                host_path: h.to_string(),
                container_path: c.to_string(),
            }),
            _ => Err(ContainerizationError::invalid_argument(format!(
                "invalid --publish-socket '{spec}': use /host/path.sock:/container/path.sock"
            ))),
        }
    }
}

/// Resolver settings written to the container's `/etc/resolv.conf`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsSettings {
    /// `--no-dns`: leave the image's resolv.conf alone.
    #[serde(default)]
    pub disabled: bool,
    /// `--dns` (empty: the first network's gateway).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// `--dns-domain`.
    #[serde(default)]
    pub domain: Option<String>,
    /// `--dns-search`.
    #[serde(default)]
    pub search_domains: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub options: Vec<String>,
}

/// A network as the API reports it (`network list`/`inspect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Name.
    pub id: String,
    /// IPv4 subnet (CIDR).
    pub subnet: String,
    /// Gateway and DNS server address.
    pub gateway: String,
    /// No NAT, no route out.
    pub internal: bool,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Host bridge device.
    pub bridge: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// Containers attached, with their addresses.
    #[serde(default)]
    pub containers: Vec<AttachedContainer>,
}

/// A container on a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachedContainer {
    /// Container id.
    pub id: String,
    /// Its address on the network.
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse() {
        let p = PublishPort::parse("127.0.0.1:18080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.count,
                p.protocol
            ),
            ("127.0.0.1", 18080, 80, 1, PortProtocol::Tcp)
        );
        let p = PublishPort::parse("9000-9002:7000-7002/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.count, p.protocol),
            ("0.0.0.0", 3, PortProtocol::Udp)
        );
        assert_eq!(p.display(), "0.0.0.0:9000-9002->7000-7002/udp");
        let p = PublishPort::parse("[::1]:80:80").unwrap();
        assert_eq!(p.host_ip, "::1");
        for bad in [
            "80",
            "a:80",
            "1:2:3:4",
            "80:80/sctp",
            "0:80",
            "9-8:1-2",
            "1-3:1-2",
            "x.y:1:2",
        ] {
            assert!(PublishPort::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_requests_parse() {
        let r = NetworkRequest::parse("back,mac=02:00:00:00:00:01").unwrap();
        assert_eq!(
            (r.name.as_str(), r.mac.as_deref()),
            ("back", Some("02:00:00:00:00:01"))
        );
        assert!(NetworkRequest::parse("").is_err());
        assert!(NetworkRequest::parse("x,mtu=9").is_err());
    }
}
