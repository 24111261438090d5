//! Where the agent serves: AF_VSOCK in the guest, a unix socket on the host.

use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;

use crate::service::Agent;

/// A listen address: `vsock:PORT` or `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// Guest vsock port (any CID).
    Vsock(u32),
    /// A unix socket path (host tests).
    Unix(std::path::PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(port) = s.strip_prefix("vsock:") {
            return port
                .parse()
                .map(ListenAddr::Vsock)
                .map_err(|_| format!("invalid vsock port in {s:?}"));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(ListenAddr::Unix(path.into()));
        }
        Err(format!("expected vsock:PORT or unix:/path, got {s:?}"))
    }
}

/// A vsock stream that tonic accepts (tokio-vsock implements `Connected`
/// only for older tonic versions).
pub struct VsockConn(tokio_vsock::VsockStream);

impl Connected for VsockConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for VsockConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for VsockConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Tells the host the agent listens: one connection to the host's
/// `AGENT_READY_PORT`. Hosts that do not listen there simply reset it.
async fn announce_ready() {
    use tokio::io::AsyncWriteExt;
    let host =
        tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_HOST, vminitd_api::AGENT_READY_PORT);
    match tokio_vsock::VsockStream::connect(host).await {
        Ok(mut s) => {
            let _ = s.write_all(b"ready\n").await;
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        Err(e) => tracing::debug!("vminitd: ready announcement not delivered: {e}"),
    }
}

/// Serves the agent until the listener fails.
pub async fn serve(addr: ListenAddr, agent: Agent) -> Result<()> {
    let router = tonic::transport::Server::builder().add_service(agent.clone().into_server());
    match addr {
        ListenAddr::Vsock(port) => {
            let listener = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(
                tokio_vsock::VMADDR_CID_ANY,
                port,
            ))
            .context(
                Code::InternalError,
                format!("cannot listen on vsock port {port}"),
            )?;
            tracing::info!("vminitd: serving on vsock port {port}");
            eprintln!(
                "vminitd: ready on vsock port {port} (uptime {:.3} s)",
                crate::sys::uptime()
            );
            let warm = agent;
            tokio::spawn(async move {
                announce_ready().await;
                // The guest idles while the host connects: do the slow
                // first-time work of the first requests now.
                warm.warm_up().await;
            });
            let incoming = listener.incoming().map(|r| r.map(VsockConn));
            router.serve_with_incoming(incoming).await.map_err(|e| {
                ContainerizationError::internal("the gRPC server failed").with_cause(e)
            })
        }
        ListenAddr::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).context(
                Code::InternalError,
                format!("cannot listen on {}", path.display()),
            )?;
            tracing::info!("vminitd: serving on {}", path.display());
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            router.serve_with_incoming(incoming).await.map_err(|e| {
                ContainerizationError::internal("the gRPC server failed").with_cause(e)
            })
        }
    }
}
