//! Host side of guest vsock connections.
//!
//! Hybrid vsock (vhost-device-vsock, Firecracker, Cloud Hypervisor): connect
//! to the VM's unix socket, write `CONNECT <port>\n`, read `OK <n>\n`; the
//! stream is then raw. Kernel vsock: a plain `AF_VSOCK` connect.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use containerization_error::{ContainerizationError, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

/// A byte stream to a guest vsock port.
#[derive(Debug)]
pub enum VsockConnection {
    /// Through a hybrid-vsock unix socket.
    Hybrid(UnixStream),
    /// Through kernel `AF_VSOCK`.
    Kernel(tokio_vsock::VsockStream),
}

impl VsockConnection {
    /// Converts into a plain blocking file descriptor (seed `FileHandle`).
    pub fn into_owned_fd(self) -> Result<OwnedFd> {
        let fd: OwnedFd = match self {
            VsockConnection::Hybrid(s) => s
                .into_std()
                .map_err(|e| {
                    ContainerizationError::internal("cannot detach vsock stream").with_cause(e)
                })?
                .into(),
            VsockConnection::Kernel(s) => {
                let raw = s.as_fd().try_clone_to_owned().map_err(|e| {
                    ContainerizationError::internal("cannot duplicate vsock stream").with_cause(e)
                })?;
                drop(s);
                raw
            }
        };
        // Callers expect an ordinary blocking fd.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| ContainerizationError::internal("fcntl").with_cause(e))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| ContainerizationError::internal("fcntl").with_cause(e))?;
        Ok(fd)
    }
}

impl AsFd for VsockConnection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            VsockConnection::Hybrid(s) => s.as_fd(),
            VsockConnection::Kernel(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for VsockConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            VsockConnection::Hybrid(s) => Pin::new(s).poll_read(cx, buf),
            VsockConnection::Kernel(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for VsockConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            VsockConnection::Hybrid(s) => Pin::new(s).poll_write(cx, buf),
            VsockConnection::Kernel(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            VsockConnection::Hybrid(s) => Pin::new(s).poll_flush(cx),
            VsockConnection::Kernel(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            VsockConnection::Hybrid(s) => Pin::new(s).poll_shutdown(cx),
            VsockConnection::Kernel(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// How the host reaches guest vsock ports of one VM.
#[derive(Debug, Clone)]
pub(crate) enum VsockTransport {
    /// Hybrid-vsock unix socket path.
    Hybrid(std::path::PathBuf),
    /// Kernel vsock guest CID.
    Kernel(u32),
}

/// The agent's announcement (hybrid vsock): `ready` turns true once the
/// agent has connected to the host's `AGENT_READY_PORT`; `conn` holds that
/// connection, on which the agent serves its API, until someone takes it.
#[derive(Debug, Clone)]
pub(crate) struct Announcement {
    pub(crate) ready: tokio::sync::watch::Receiver<bool>,
    pub(crate) conn: Arc<Mutex<Option<UnixStream>>>,
}

/// Dials guest vsock ports of one VM; cheap to clone. Fails fast once the
/// VM has exited instead of retrying until the timeout.
#[derive(Debug, Clone)]
pub struct VsockDialer {
    pub(crate) transport: VsockTransport,
    pub(crate) exited: tokio::sync::watch::Receiver<bool>,
    /// The agent's readiness announcement, where the transport has one.
    pub(crate) announcement: Option<Announcement>,
    pub(crate) vm_id: String,
    pub(crate) bootlog: std::path::PathBuf,
}

impl VsockDialer {
    /// Opens a stream to guest `port`, retrying until `timeout` while nothing
    /// listens there yet.
    pub async fn dial(&self, port: u32, timeout: Duration) -> Result<VsockConnection> {
        self.until_exit(port, async {
            let timeout = self.wait_announced(timeout).await;
            self.connect(port, timeout).await
        })
        .await
    }

    /// A connection to the agent (`vminitd_api::AGENT_PORT`): the one the
    /// agent opened to announce itself, the first time, which saves the
    /// guest an accept and the host a `CONNECT` round trip (boot bench under
    /// TCG: connect and first Ping 36 ms instead of 57); a dial otherwise.
    pub async fn dial_agent(&self, timeout: Duration) -> Result<VsockConnection> {
        let port = vminitd_api::AGENT_PORT;
        self.until_exit(port, async {
            let timeout = self.wait_announced(timeout).await;
            let announced = self
                .announcement
                .as_ref()
                .and_then(|a| a.conn.lock().ok()?.take());
            match announced {
                Some(conn) => Ok(VsockConnection::Hybrid(conn)),
                None => self.connect(port, timeout).await,
            }
        })
        .await
    }

    /// Waits for the agent's announcement rather than probing with CONNECTs;
    /// returns what is left of `timeout` (at least 1 s: an agent without the
    /// announcement, an old initfs, still gets a short round of dials).
    async fn wait_announced(&self, timeout: Duration) -> Duration {
        let Some(a) = &self.announcement else {
            return timeout;
        };
        let start = Instant::now();
        let mut ready = a.ready.clone();
        let _ = tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await;
        timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_secs(1))
    }

    async fn connect(&self, port: u32, timeout: Duration) -> Result<VsockConnection> {
        match &self.transport {
            VsockTransport::Hybrid(uds) => dial_hybrid(uds, port, timeout)
                .await
                .map(VsockConnection::Hybrid),
            VsockTransport::Kernel(cid) => dial_kernel(*cid, port, timeout)
                .await
                .map(VsockConnection::Kernel),
        }
    }

    /// Runs `attempt` unless the VM exits first.
    async fn until_exit(
        &self,
        port: u32,
        attempt: impl Future<Output = Result<VsockConnection>>,
    ) -> Result<VsockConnection> {
        let mut exited = self.exited.clone();
        tokio::select! {
            r = attempt => r,
            _ = exited.wait_for(|e| *e) => Err(ContainerizationError::invalid_state(format!(
                "VM {} exited before guest port {port} answered; see {}",
                self.vm_id,
                self.bootlog.display()
            ))),
        }
    }
}

/// One hybrid-vsock connect attempt.
pub(crate) async fn dial_hybrid_once(uds: &Path, port: u32) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(uds).await?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // Read the reply byte by byte: anything after '\n' is guest data.
    let mut line = Vec::with_capacity(16);
    loop {
        let b = s.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 64 {
            return Err(std::io::Error::other("hybrid vsock: reply line too long"));
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(std::io::Error::other(format!(
            "hybrid vsock: unexpected reply {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    Ok(s)
}

/// Dials guest `port` through the hybrid socket `uds`, retrying while the
/// guest does not listen yet (the backend closes the connection then).
pub(crate) async fn dial_hybrid(uds: &Path, port: u32, timeout: Duration) -> Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        match dial_hybrid_once(uds, port).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(ContainerizationError::timeout(format!(
                    "nothing answered on guest vsock port {port} within {timeout:?}"
                ))
                .with_cause(e));
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Dials guest `port` of VM `cid` over kernel vsock, retrying until `timeout`.
pub(crate) async fn dial_kernel(
    cid: u32,
    port: u32,
    timeout: Duration,
) -> Result<tokio_vsock::VsockStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port)).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(ContainerizationError::timeout(format!(
                    "nothing answered on guest vsock {cid}:{port} within {timeout:?}"
                ))
                .with_cause(e));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn hybrid_handshake_keeps_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("v.sock");
        let l = UnixListener::bind(&uds).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 13];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"CONNECT 1024\n");
            s.write_all(b"OK 99\nhello").await.unwrap();
        });
        let mut s = dial_hybrid(&uds, 1024, Duration::from_secs(2))
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello");
    }

    #[tokio::test]
    async fn hybrid_times_out_with_port_in_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = dial_hybrid(&dir.path().join("none"), 7, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.message.contains("port 7"));
    }
}
