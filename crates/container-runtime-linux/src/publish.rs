//! Published ports: userspace TCP and UDP proxies from host `ip:port` to
//! the container's address (like Apple's SocketForwarder). Sockets are bound
//! before the VM boots, so a taken port fails the start early, and they
//! close when the helper (and so the container) ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use container_api::network::{PortProtocol, PublishPort};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A UDP flow is forgotten after this long without traffic.
const UDP_IDLE: Duration = Duration::from_secs(120);

/// One bound host socket and where it forwards.
pub(crate) enum Forwarder {
    /// TCP listener.
    Tcp(TcpListener, SocketAddr),
    /// UDP socket.
    Udp(Arc<UdpSocket>, SocketAddr),
}

/// Binds every published port (ranges expanded) towards `target`.
pub(crate) async fn bind(ports: &[PublishPort], target: IpAddr) -> Result<Vec<Forwarder>> {
    let mut out = Vec::new();
    for p in ports {
        let ip: IpAddr = p.host_ip.parse().map_err(|_| {
            ContainerizationError::invalid_argument(format!("invalid host address {}", p.host_ip))
        })?;
        for k in 0..p.count {
            let host = SocketAddr::new(ip, p.host_port + k);
            let to = SocketAddr::new(target, p.container_port + k);
            let what = format!(
                "host port {host}/{} is already in use: pick another with -p",
                p.protocol.as_str()
            );
            out.push(match p.protocol {
                PortProtocol::Tcp => Forwarder::Tcp(
                    TcpListener::bind(host).await.context(Code::Exists, what)?,
                    to,
                ),
                PortProtocol::Udp => Forwarder::Udp(
                    Arc::new(UdpSocket::bind(host).await.context(Code::Exists, what)?),
                    to,
                ),
            });
        }
    }
    Ok(out)
}

/// Runs every forwarder in the background.
pub(crate) fn spawn(forwarders: Vec<Forwarder>) {
    for f in forwarders {
        match f {
            Forwarder::Tcp(l, to) => {
                tokio::spawn(tcp(l, to));
            }
            Forwarder::Udp(s, to) => {
                tokio::spawn(udp(s, to));
            }
        }
    }
}

async fn tcp(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            match TcpStream::connect(to).await {
                Ok(mut upstream) => {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!("publish: connecting to {to} failed: {e}"),
            }
        });
    }
}

async fn udp(host: Arc<UdpSocket>, to: SocketAddr) {
    // One connected socket per client, so replies find their way back.
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf).await else {
            continue;
        };
        let existing = flows.lock().ok().and_then(|f| f.get(&client).cloned());
        let flow = match existing {
            Some(f) => f,
            None => {
                let bind: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let Ok(s) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if s.connect(to).await.is_err() {
                    continue;
                }
                let s = Arc::new(s);
                if let Ok(mut f) = flows.lock() {
                    f.insert(client, s.clone());
                }
                let (s2, host2, flows2) = (s.clone(), host.clone(), flows.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, s2.recv(&mut buf)).await {
                        let _ = host2.send_to(&buf[..n], client).await;
                    }
                    if let Ok(mut f) = flows2.lock() {
                        f.remove(&client);
                    }
                });
                s
            }
        };
        let _ = flow.send(&buf[..n]).await;
    }
}
