//! ProxyVsock: accept on a guest vsock port, relay each connection to a
//! guest unix socket or TCP port (published sockets, `relayUnixSocket`).

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use vminitd_api::proto;

use super::Agent;

impl Agent {
    pub(super) fn proxy_vsock_impl(&self, r: proto::ProxyVsockRequest) -> Result<()> {
        let target = r
            .target
            .ok_or_else(|| ContainerizationError::invalid_argument("the proxy has no target"))?;
        if r.id.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "the proxy id must not be empty",
            ));
        }
        let mut proxies = self.inner.proxies.lock().unwrap_or_else(|p| p.into_inner());
        if proxies.contains_key(&r.id) {
            return Err(ContainerizationError::exists(format!(
                "proxy {} already exists",
                r.id
            )));
        }
        let listener = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(
            tokio_vsock::VMADDR_CID_ANY,
            r.vsock_port,
        ))
        .context(
            Code::Unsupported,
            format!("cannot listen on vsock port {}", r.vsock_port),
        )?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                tokio::spawn(async move {
                    let _ = match target {
                        proto::proxy_vsock_request::Target::UnixPath(p) => {
                            match tokio::net::UnixStream::connect(&p).await {
                                Ok(mut s) => tokio::io::copy_bidirectional(&mut conn, &mut s)
                                    .await
                                    .map(|_| ()),
                                Err(e) => Err(e),
                            }
                        }
                        proto::proxy_vsock_request::Target::TcpPort(port) => {
                            match tokio::net::TcpStream::connect(("127.0.0.1", port as u16)).await {
                                Ok(mut s) => tokio::io::copy_bidirectional(&mut conn, &mut s)
                                    .await
                                    .map(|_| ()),
                                Err(e) => Err(e),
                            }
                        }
                    };
                });
            }
        });
        proxies.insert(r.id, task);
        Ok(())
    }

    pub(super) fn stop_vsock_proxy_impl(&self, id: &str) -> Result<()> {
        let task = self
            .inner
            .proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| ContainerizationError::not_found(format!("proxy {id} not found")))?;
        task.abort();
        Ok(())
    }
}
