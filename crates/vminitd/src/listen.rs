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

/// Tells the host the agent listens by connecting to the host's
/// `AGENT_READY_PORT`, and serves the API on that connection too: the host
/// makes it its first agent connection, without a `CONNECT` round trip or
/// an accept in the guest (boot bench under TCG: connect and first Ping
/// 36 ms instead of 57, medians of 10 boots). Hosts that do not listen there
/// reset it, and use port `AGENT_PORT` as before.
async fn announce_ready(http2: Http2, service: SandboxContextServer<Agent>) {
    let host =
        tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_HOST, vminitd_api::AGENT_READY_PORT);
    match tokio_vsock::VsockStream::connect(host).await {
        Ok(conn) => {
            crate::timeline::mark("connected");
            serve_connection(&http2, conn, service).await
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
            crate::timeline::mark("listening");
            let http2 = http2_server();
            tokio::spawn(announce_ready(http2.clone(), service.clone()));
            // The announcement's connect goes out first, so the console
            // line below overlaps the wait for the host's answer (under TCG
            // ~2 ms of an otherwise idle guest).
            tokio::task::yield_now().await;
            crate::timeline::mark("connecting");
            // The boot's one console line, the log of PID 1's start too: a
            // tracing line as well cost 3 ms of every boot under TCG, a
            // separate line at PID 1's start 3 ms.
            let since = crate::timeline::at("pid1")
                .map(|t| format!("pid 1 since {t:.3} s, "))
                .unwrap_or_default();
            eprintln!(
                "vminitd: ready on vsock port {port} ({since}uptime {:.3} s)",
                crate::sys::uptime()
            );
            crate::timeline::mark("console");
            accept_loop(http2, listener.incoming(), service).await
        }
        ListenAddr::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).context(
                Code::InternalError,
                format!("cannot listen on {}", path.display()),
            )?;
            tracing::info!("vminitd: serving on {}", path.display());
            accept_loop(
                http2_server(),
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                service,
            )
            .await
        }
    }
}

type Http2 = hyper::server::conn::http2::Builder<TokioExecutor>;

/// HTTP/2 served straight into the generated gRPC service. tonic's `Server`
/// would wrap it in a router and layers the agent does not use: under TCG
/// that code cost every boot ~15 ms before the first answer (boot bench,
/// guest time). As tonic's server: no stream limit, hyper's timer for its
/// timeouts.
fn http2_server() -> Http2 {
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new()).max_concurrent_streams(None);
    http2
}

/// Serves one connection until it ends.
async fn serve_connection<S>(http2: &Http2, conn: S, service: SandboxContextServer<Agent>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let served = http2.serve_connection(TokioIo::new(conn), TowerToHyperService::new(service));
    if let Err(e) = served.await {
        tracing::debug!("vminitd: connection ended: {e}");
    }
}

/// Serves each accepted connection in a task of its own.
async fn accept_loop<S, I>(
    http2: Http2,
    incoming: I,
    service: SandboxContextServer<Agent>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    I: Stream<Item = std::io::Result<S>>,
{
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
        let (http2, service) = (http2.clone(), service.clone());
        tokio::spawn(async move { serve_connection(&http2, conn, service).await });
    }
    Err(ContainerizationError::internal(
        "the listening socket was closed",
    ))
}
