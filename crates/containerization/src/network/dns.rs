//! A small DNS server per network, on the gateway address: answers the
//! names of containers on that network (`NAME` and `NAME.DOMAIN`) and
//! forwards everything else to the host's resolvers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use containerization_error::{Code, Result, ResultExt};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use tokio::net::UdpSocket;

/// Finds the address of a container name for the client asking (its source
/// address tells which networks it shares with whom).
pub type Lookup = Arc<dyn Fn(&str, IpAddr) -> Option<Ipv4Addr> + Send + Sync>;

/// Default domain container names live under (`web.container`).
pub const DEFAULT_DOMAIN: &str = "container";

/// How long answers about containers may be cached: short, names come and go.
const TTL: u32 = 5;

/// Nameservers of the host (`/etc/resolv.conf`), minus any in `except`.
pub fn host_resolvers(except: &[IpAddr]) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    parse_resolv_conf(&text)
        .into_iter()
        .filter(|a| !except.contains(a))
        .map(|a| SocketAddr::new(a, 53))
        .collect()
}

/// The `nameserver` addresses of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// The server of one network.
pub struct DnsServer {
    socket: Arc<UdpSocket>,
    lookup: Lookup,
    domain: String,
    upstream: Vec<SocketAddr>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("domain", &self.domain)
            .field("upstream", &self.upstream)
            .finish()
    }
}

impl DnsServer {
    /// Binds UDP `addr` (the gateway, port 53).
    pub async fn bind(
        addr: SocketAddr,
        lookup: Lookup,
        domain: &str,
        upstream: Vec<SocketAddr>,
    ) -> Result<DnsServer> {
        let socket = UdpSocket::bind(addr).await.context(
            Code::InternalError,
            format!("binding the DNS server to {addr}"),
        )?;
        Ok(DnsServer {
            socket: Arc::new(socket),
            lookup,
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            upstream,
        })
    }

    /// Serves until the task is dropped.
    pub async fn serve(self) {
        let me = Arc::new(self);
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = match me.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("DNS receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let packet = buf[..n].to_vec();
            match me.answer_local(&packet, from.ip()) {
                Some(reply) => {
                    let _ = me.socket.send_to(&reply, from).await;
                }
                None => {
                    let me = me.clone();
                    tokio::spawn(async move { me.forward(packet, from).await });
                }
            }
        }
    }

    /// A reply from our own names, or `None` to forward.
    fn answer_local(&self, packet: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let q = query.queries.first()?.clone();
        let full = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let suffix = format!(".{}", self.domain);
        let short = full.strip_suffix(&suffix).unwrap_or(&full);
        let found = if short.contains('.') {
            None
        } else {
            (self.lookup)(short, client)
        };
        // Dotted names go upstream; an unknown single label (or one under
        // our domain) is answered NXDOMAIN without a round trip.
        if found.is_none() && short.contains('.') {
            return None;
        }
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.authoritative = true;
        reply.add_query(q.clone());
        match found {
            Some(ip) => {
                if q.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                }
            }
            None => reply.metadata.response_code = ResponseCode::NXDomain,
        }
        reply.to_vec().ok()
    }

    async fn forward(&self, packet: Vec<u8>, from: SocketAddr) {
        for up in &self.upstream {
            let bind: SocketAddr = if up.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(&packet, up).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
            {
                let _ = self.socket.send_to(&buf[..n], from).await;
                return;
            }
        }
        if let Ok(q) = Message::from_vec(&packet) {
            let mut reply = Message::response(q.metadata.id, q.metadata.op_code);
            reply.metadata.response_code = ResponseCode::ServFail;
            reply.add_queries(q.queries);
            if let Ok(b) = reply.to_vec() {
                let _ = self.socket.send_to(&b, from).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    async fn ask(server: SocketAddr, name: &str) -> Message {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&m.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0u8; 1500];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), s.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    #[tokio::test]
    async fn answers_container_names_and_forwards_the_rest() {
        // The "upstream" is a second instance of the server that knows other names.
        let up_lookup: Lookup = Arc::new(|n, _| (n == "far").then_some(Ipv4Addr::new(10, 0, 0, 9)));
        let up = DnsServer::bind("127.0.0.1:0".parse().unwrap(), up_lookup, "example", vec![])
            .await
            .unwrap();
        let up_addr = up.socket.local_addr().unwrap();
        tokio::spawn(up.serve());
        let lookup: Lookup =
            Arc::new(|n, _| (n == "web").then_some(Ipv4Addr::new(192, 168, 64, 2)));
        let s = DnsServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            lookup,
            "container",
            vec![up_addr],
        )
        .await
        .unwrap();
        let addr = s.socket.local_addr().unwrap();
        tokio::spawn(s.serve());

        for name in ["web.", "WEB.container."] {
            let r = ask(addr, name).await;
            assert_eq!(r.metadata.id, 7);
            let ips: Vec<String> = r.answers.iter().map(|a| a.data.to_string()).collect();
            assert_eq!(ips, vec!["192.168.64.2"], "{name}");
        }
        assert_eq!(
            ask(addr, "nosuch.").await.metadata.response_code,
            ResponseCode::NXDomain
        );
        let r = ask(addr, "far.example.").await;
        let ips: Vec<String> = r.answers.iter().map(|a| a.data.to_string()).collect();
        assert_eq!(ips, vec!["10.0.0.9"], "forwarded upstream");
    }

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# c\nnameserver 10.0.0.2\nsearch x\nnameserver ::1\nnameserver bad\n";
        assert_eq!(parse_resolv_conf(t).len(), 2);
    }
}
