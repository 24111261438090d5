//! Where the agent serves: AF_VSOCK in the guest, a unix socket on the host.

use std::str::FromStr;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::{Stream, StreamExt};
use vminitd_api::proto::sandbox_context_server::SandboxContextServer;

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
    let service = agent.into_server();
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
            // The console line is the log: a tracing line as well cost 3 ms
            // of every boot under TCG.
            eprintln!(
                "vminitd: ready on vsock port {port} (uptime {:.3} s)",
                crate::sys::uptime()
            );
            tokio::spawn(announce_ready());
            accept_loop(listener.incoming(), service).await
        }
        ListenAddr::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).context(
                Code::InternalError,
                format!("cannot listen on {}", path.display()),
            )?;
            tracing::info!("vminitd: serving on {}", path.display());
            accept_loop(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                service,
            )
            .await
        }
    }
}

/// Serves each accepted connection as HTTP/2 straight into the generated
/// gRPC service. tonic's `Server` would wrap it in a router and layers the
/// agent does not use: under TCG that code cost every boot ~15 ms before
/// the first answer (boot bench, guest time).
async fn accept_loop<S, I>(incoming: I, service: SandboxContextServer<Agent>) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    I: Stream<Item = std::io::Result<S>>,
{
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // As tonic's server: no stream limit, hyper's timer for its timeouts.
    http2.timer(TokioTimer::new()).max_concurrent_streams(None);
    let mut incoming = std::pin::pin!(incoming);
    while let Some(conn) = incoming.next().await {
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning.
                tracing::warn!("vminitd: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let served = http2.serve_connection(
            TokioIo::new(conn),
            TowerToHyperService::new(service.clone()),
        );
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!("vminitd: connection ended: {e}");
            }
        });
    }
    Err(ContainerizationError::internal(
        "the listening socket was closed",
    ))
}
