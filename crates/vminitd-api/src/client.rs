//! `Vminitd`: the typed host client of the guest agent.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::io::ProcessIo;
use crate::proto;
use crate::proto::sandbox_context_client::SandboxContextClient;
use crate::types::{CopyMode, DnsConfig, ExitStatus, ProxyTarget, TerminalSize};

/// A byte stream that can carry the agent's HTTP/2 connection.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AgentStream for T {}

/// A boxed connection to the agent.
pub type BoxedStream = Box<dyn AgentStream>;

/// A boxed, sendable future (what connectors return).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Largest message either side accepts (WriteFile payloads, copy chunks).
pub(crate) const MAX_MESSAGE: usize = 64 << 20;

/// Chunk size used when streaming copies.
const COPY_CHUNK: usize = 256 << 10;

/// The typed client of the guest agent; cheap to clone, calls run concurrently
/// over one HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct Vminitd {
    client: SandboxContextClient<Channel>,
}

fn transport_error(e: tonic::transport::Error) -> ContainerizationError {
    ContainerizationError::new(Code::Interrupted, "cannot connect to the guest agent").with_cause(e)
}

impl Vminitd {
    /// The guest vsock port the agent serves on.
    pub const PORT: u32 = crate::AGENT_PORT;

    /// Connects through `connector`, which dials a fresh stream each time the
    /// channel (re)connects.
    pub async fn connect_with<F>(connector: F) -> Result<Self>
    where
        F: Fn() -> BoxFuture<io::Result<BoxedStream>> + Send + Sync + 'static,
    {
        let connector = Arc::new(connector);
        let service = tower::service_fn(move |_: Uri| {
            let fut = connector();
            async move { fut.await.map(TokioIo::new) }
        });
        let channel = Endpoint::from_static("http://vminitd.invalid")
            .connect_with_connector(service)
            .await
            .map_err(transport_error)?;
        Ok(Self::from_channel(channel))
    }

    /// Uses one pre-dialed stream for every call; if it breaks, calls fail
    /// instead of redialing.
    pub async fn from_stream<S: AgentStream>(stream: S) -> Result<Self> {
        let slot: Arc<Mutex<Option<BoxedStream>>> = Arc::new(Mutex::new(Some(Box::new(stream))));
        Self::connect_with(move || {
            let taken = slot.lock().ok().and_then(|mut s| s.take());
            Box::pin(async move {
                taken.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the connection to the guest agent was closed",
                    )
                })
            })
        })
        .await
    }

    /// Connects to an agent listening on a unix socket (`vminitd --listen unix:PATH`).
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        Self::connect_with(move || {
            let path = path.clone();
            Box::pin(async move {
                let s = tokio::net::UnixStream::connect(&path).await?;
                Ok(Box::new(s) as BoxedStream)
            })
        })
        .await
    }

    /// Wraps an existing tonic channel.
    pub fn from_channel(channel: Channel) -> Self {
        let client = SandboxContextClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Vminitd { client }
    }

    /// The raw generated client, for calls this wrapper does not cover.
    pub fn raw(&self) -> SandboxContextClient<Channel> {
        self.client.clone()
    }

    /// Returns the agent's version; cheap (readiness probe, latency bench).
    pub async fn ping(&self) -> Result<String> {
        let r = self.client.clone().ping(proto::PingRequest {}).await?;
        Ok(r.into_inner().version)
    }

    /// Mounts the standard guest filesystems, brings lo up, sets PATH; idempotent.
    pub async fn standard_setup(&self) -> Result<()> {
        self.client
            .clone()
            .standard_setup(proto::StandardSetupRequest {})
            .await?;
        Ok(())
    }

    /// Syncs, unmounts and powers the VM off.
    pub async fn shutdown(&self) -> Result<()> {
        self.client
            .clone()
            .shutdown(proto::ShutdownRequest {})
            .await?;
        Ok(())
    }

    /// Mounts `source` on `destination` (fstab-style `options`).
    pub async fn mount(
        &self,
        fstype: &str,
        source: &str,
        destination: &str,
        options: &[String],
    ) -> Result<()> {
        let req = proto::MountRequest {
            r#type: fstype.to_string(),
            source: source.to_string(),
            destination: destination.to_string(),
            options: options.to_vec(),
        };
        self.client.clone().mount(req).await?;
        Ok(())
    }

    /// Unmounts `path` with umount2 `flags`.
    pub async fn umount(&self, path: &str, flags: i32) -> Result<()> {
        let req = proto::UmountRequest {
            path: path.to_string(),
            flags,
        };
        self.client.clone().umount(req).await?;
        Ok(())
    }

    /// Sets an environment variable of the agent (inherited by nothing else).
    pub async fn setenv(&self, key: &str, value: &str) -> Result<()> {
        let req = proto::SetenvRequest {
            key: key.to_string(),
            value: value.to_string(),
        };
        self.client.clone().setenv(req).await?;
        Ok(())
    }

    /// Reads an environment variable of the agent; `None` when unset.
    pub async fn getenv(&self, key: &str) -> Result<Option<String>> {
        let req = proto::GetenvRequest {
            key: key.to_string(),
        };
        Ok(self.client.clone().getenv(req).await?.into_inner().value)
    }

    /// Creates a directory (and its parents when `all`).
    pub async fn mkdir(&self, path: &str, all: bool, perms: u32) -> Result<()> {
        let req = proto::MkdirRequest {
            path: path.to_string(),
            all,
            perms,
        };
        self.client.clone().mkdir(req).await?;
        Ok(())
    }

    /// Writes sysctls ("net.ipv4.ip_forward" -> "1").
    pub async fn sysctl(&self, settings: &BTreeMap<String, String>) -> Result<()> {
        let req = proto::SysctlRequest {
            settings: settings.clone().into_iter().collect(),
        };
        self.client.clone().sysctl(req).await?;
        Ok(())
    }

    /// Sets the guest clock.
    pub async fn set_time(&self, time: SystemTime) -> Result<()> {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| ContainerizationError::invalid_argument("time is before 1970"))?;
        let sec = i64::try_from(since.as_secs())
            .map_err(|_| ContainerizationError::invalid_argument("time is out of range"))?;
        let usec = i32::try_from(since.subsec_micros()).unwrap_or(0);
        self.client
            .clone()
            .set_time(proto::SetTimeRequest { sec, usec })
            .await?;
        Ok(())
    }

    /// Registers a binfmt_misc interpreter (":name:type:offset:magic:mask:interpreter:flags").
    pub async fn setup_emulator(&self, registration: &str) -> Result<()> {
        let req = proto::SetupEmulatorRequest {
            registration: registration.to_string(),
        };
        self.client.clone().setup_emulator(req).await?;
        Ok(())
    }

    /// Writes a file (atomically unless `flags` has O_APPEND); `flags` are extra open(2) flags.
    pub async fn write_file(&self, path: &str, data: &[u8], flags: i32, mode: u32) -> Result<()> {
        let req = proto::WriteFileRequest {
            path: path.to_string(),
            data: data.to_vec(),
            flags,
            mode,
            make_parents: false,
        };
        self.client.clone().write_file(req).await?;
        Ok(())
    }

    /// stat(2) of a guest path (following symlinks).
    pub async fn stat(&self, path: &str) -> Result<proto::StatResponse> {
        self.stat_in("", path).await
    }

    /// stat(2) of `path` inside container `container_id` (its mount
    /// namespace and root; `""` is the VM's own filesystem).
    pub async fn stat_in(&self, container_id: &str, path: &str) -> Result<proto::StatResponse> {
        let req = proto::StatRequest {
            path: path.to_string(),
            no_follow: false,
            container_id: container_id.to_string(),
        };
        Ok(self.client.clone().stat(req).await?.into_inner())
    }

    /// Streams `reader` into the guest at `path` (a file for `Raw`, a
    /// directory to extract into for `Tar`); returns the bytes sent.
    pub async fn copy_in<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        path: &str,
        mode: CopyMode,
        file_mode: u32,
        reader: R,
    ) -> Result<u64> {
        self.copy_in_to("", path, mode, file_mode, reader).await
    }

    /// [`Vminitd::copy_in`] with `path` inside container `container_id`.
    pub async fn copy_in_to<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        container_id: &str,
        path: &str,
        mode: CopyMode,
        file_mode: u32,
        mut reader: R,
    ) -> Result<u64> {
        let (tx, rx) = mpsc::channel(4);
        let header = proto::CopyInHeader {
            path: path.to_string(),
            mode: proto::CopyMode::from(mode) as i32,
            file_mode,
            make_parents: true,
            container_id: container_id.to_string(),
        };
        let first = proto::CopyInChunk {
            header: Some(header),
            data: Vec::new(),
        };
        let pump = tokio::spawn(async move {
            if tx.send(first).await.is_err() {
                return Ok(());
            }
            loop {
                let mut buf = vec![0u8; COPY_CHUNK];
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<(), io::Error>(());
                }
                buf.truncate(n);
                let chunk = proto::CopyInChunk {
                    header: None,
                    data: buf,
                };
                if tx.send(chunk).await.is_err() {
                    return Ok(());
                }
            }
        });
        let result = self.client.clone().copy_in(ReceiverStream::new(rx)).await;
        let read = pump
            .await
            .map_err(|e| ContainerizationError::internal("copy task failed").with_cause(e))?;
        read.context(Code::InternalError, "reading the data to copy in")?;
        Ok(result?.into_inner().bytes)
    }

    /// Streams guest `path` (a file for `Raw`, a directory archived as tar
    /// for `Tar`) into `writer`; returns the bytes received.
    pub async fn copy_out<W: AsyncWrite + Unpin>(
        &self,
        path: &str,
        mode: CopyMode,
        writer: &mut W,
    ) -> Result<u64> {
        self.copy_out_from("", path, mode, false, writer).await
    }

    /// [`Vminitd::copy_out`] with `path` inside container `container_id`;
    /// with `one_file_system` tar modes stay on `path`'s filesystem.
    pub async fn copy_out_from<W: AsyncWrite + Unpin>(
        &self,
        container_id: &str,
        path: &str,
        mode: CopyMode,
        one_file_system: bool,
        writer: &mut W,
    ) -> Result<u64> {
        let req = proto::CopyOutRequest {
            path: path.to_string(),
            mode: proto::CopyMode::from(mode) as i32,
            container_id: container_id.to_string(),
            one_file_system,
        };
        let mut stream = self.client.clone().copy_out(req).await?.into_inner();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            writer
                .write_all(&chunk.data)
                .await
                .context(Code::InternalError, "writing copied data")?;
            total += chunk.data.len() as u64;
        }
        writer
            .flush()
            .await
            .context(Code::InternalError, "writing copied data")?;
        Ok(total)
    }

    /// Creates a process from an OCI runtime spec. The first process of a
    /// container id creates the container; later ones exec into it (only the
    /// spec's `process` is used then).
    pub async fn create_process(
        &self,
        container_id: &str,
        process_id: &str,
        spec: &oci_spec::runtime::Spec,
        stdin: bool,
        terminal: bool,
    ) -> Result<()> {
        let json = serde_json::to_vec(spec).map_err(|e| {
            ContainerizationError::invalid_argument("cannot encode the runtime spec").with_cause(e)
        })?;
        self.create_process_raw(container_id, process_id, json, stdin, terminal)
            .await
    }

    /// `create_process` with the spec already encoded as JSON.
    pub async fn create_process_raw(
        &self,
        container_id: &str,
        process_id: &str,
        spec_json: Vec<u8>,
        stdin: bool,
        terminal: bool,
    ) -> Result<()> {
        let req = proto::CreateProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
            oci_spec: spec_json,
            stdin,
            terminal,
        };
        self.client.clone().create_process(req).await?;
        Ok(())
    }

    /// Starts a created process; returns its pid in the guest.
    pub async fn start_process(&self, container_id: &str, process_id: &str) -> Result<i32> {
        let req = proto::StartProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
        };
        Ok(self
            .client
            .clone()
            .start_process(req)
            .await?
            .into_inner()
            .pid)
    }

    /// Sends `signal` to a process.
    pub async fn signal_process(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        let req = proto::KillProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
            signal,
        };
        self.client.clone().kill_process(req).await?;
        Ok(())
    }

    /// Waits for a process to exit; fails with `Timeout` when `timeout` passes first.
    pub async fn wait_process(
        &self,
        container_id: &str,
        process_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ExitStatus> {
        let req = proto::WaitProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        Ok(self
            .client
            .clone()
            .wait_process(req)
            .await?
            .into_inner()
            .into())
    }

    /// Resizes a terminal process's PTY.
    pub async fn resize_process(
        &self,
        container_id: &str,
        process_id: &str,
        size: TerminalSize,
    ) -> Result<()> {
        let req = proto::ResizeProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
            rows: u32::from(size.rows),
            columns: u32::from(size.columns),
        };
        self.client.clone().resize_process(req).await?;
        Ok(())
    }

    /// Closes a process's stdin.
    pub async fn close_process_stdin(&self, container_id: &str, process_id: &str) -> Result<()> {
        let req = proto::CloseProcessStdinRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
        };
        self.client.clone().close_process_stdin(req).await?;
        Ok(())
    }

    /// Forgets an exited process (deleting a container's init process
    /// removes the container and its cgroup).
    pub async fn delete_process(&self, container_id: &str, process_id: &str) -> Result<()> {
        let req = proto::DeleteProcessRequest {
            container_id: container_id.to_string(),
            process_id: process_id.to_string(),
        };
        self.client.clone().delete_process(req).await?;
        Ok(())
    }

    /// Attaches to a process's stdio. The agent reads the process's output
    /// only while attached, so nothing is lost before this call.
    pub async fn process_io(&self, container_id: &str, process_id: &str) -> Result<ProcessIo> {
        let (tx, rx) = mpsc::channel(16);
        let attach = proto::IoRequest {
            kind: Some(proto::io_request::Kind::Attach(proto::IoAttach {
                container_id: container_id.to_string(),
                process_id: process_id.to_string(),
            })),
        };
        tx.send(attach)
            .await
            .map_err(|_| ContainerizationError::internal("cannot queue the attach request"))?;
        let output = self
            .client
            .clone()
            .process_io(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(ProcessIo::new(tx, output))
    }

    /// cgroup and network statistics of the given containers (all when empty).
    pub async fn container_statistics(
        &self,
        container_ids: &[String],
    ) -> Result<Vec<proto::ContainerStatistics>> {
        let req = proto::ContainerStatisticsRequest {
            container_ids: container_ids.to_vec(),
        };
        Ok(self
            .client
            .clone()
            .container_statistics(req)
            .await?
            .into_inner()
            .containers)
    }

    /// Brings an interface up, optionally setting its MTU.
    pub async fn up(&self, interface: &str, mtu: Option<u32>) -> Result<()> {
        self.link_set(interface, true, mtu.unwrap_or(0)).await
    }

    /// Brings an interface down.
    pub async fn down(&self, interface: &str) -> Result<()> {
        self.link_set(interface, false, 0).await
    }

    async fn link_set(&self, interface: &str, up: bool, mtu: u32) -> Result<()> {
        let req = proto::IpLinkSetRequest {
            interface: interface.to_string(),
            up,
            mtu,
        };
        self.client.clone().ip_link_set(req).await?;
        Ok(())
    }

    /// Adds an IPv4 address in CIDR form ("192.168.64.2/24") to an interface.
    pub async fn address_add(&self, interface: &str, cidr: &str) -> Result<()> {
        let req = proto::IpAddrAddRequest {
            interface: interface.to_string(),
            address: cidr.to_string(),
        };
        self.client.clone().ip_addr_add(req).await?;
        Ok(())
    }

    /// Adds a link route to `destination` (CIDR) through `interface`.
    pub async fn route_add_link(
        &self,
        interface: &str,
        destination: &str,
        source: Option<&str>,
    ) -> Result<()> {
        let req = proto::IpRouteAddLinkRequest {
            interface: interface.to_string(),
            destination: destination.to_string(),
            source: source.unwrap_or_default().to_string(),
        };
        self.client.clone().ip_route_add_link(req).await?;
        Ok(())
    }

    /// Adds the default route through `gateway` on `interface`.
    pub async fn route_add_default(&self, interface: &str, gateway: &str) -> Result<()> {
        let req = proto::IpRouteAddDefaultRequest {
            interface: interface.to_string(),
            gateway: gateway.to_string(),
        };
        self.client.clone().ip_route_add_default(req).await?;
        Ok(())
    }

    /// Writes `<location>/etc/resolv.conf`.
    pub async fn configure_dns(&self, location: &str, dns: &DnsConfig) -> Result<()> {
        let req = proto::ConfigureDnsRequest {
            location: location.to_string(),
            nameservers: dns.nameservers.clone(),
            domain: dns.domain.clone().unwrap_or_default(),
            search_domains: dns.search_domains.clone(),
            options: dns.options.clone(),
        };
        self.client.clone().configure_dns(req).await?;
        Ok(())
    }

    /// Writes `<location>/etc/hosts`.
    pub async fn configure_hosts(
        &self,
        location: &str,
        entries: &[proto::HostsEntry],
        comment: Option<&str>,
    ) -> Result<()> {
        let req = proto::ConfigureHostsRequest {
            location: location.to_string(),
            entries: entries.to_vec(),
            comment: comment.unwrap_or_default().to_string(),
        };
        self.client.clone().configure_hosts(req).await?;
        Ok(())
    }

    /// sync(2) in the guest.
    pub async fn sync(&self) -> Result<()> {
        self.client.clone().sync(proto::SyncRequest {}).await?;
        Ok(())
    }

    /// Sends `signal` to guest pid `pid`.
    pub async fn kill(&self, pid: i32, signal: i32) -> Result<()> {
        self.client
            .clone()
            .kill(proto::KillRequest { pid, signal })
            .await?;
        Ok(())
    }

    /// Makes the agent accept connections on guest vsock `port` and relay
    /// each to `target`.
    pub async fn proxy_vsock(&self, id: &str, port: u32, target: ProxyTarget) -> Result<()> {
        let target = match target {
            ProxyTarget::Unix(p) => proto::proxy_vsock_request::Target::UnixPath(p),
            ProxyTarget::Tcp(p) => proto::proxy_vsock_request::Target::TcpPort(u32::from(p)),
        };
        let req = proto::ProxyVsockRequest {
            id: id.to_string(),
            vsock_port: port,
            target: Some(target),
        };
        self.client.clone().proxy_vsock(req).await?;
        Ok(())
    }

    /// Stops a proxy started by `proxy_vsock`.
    pub async fn stop_vsock_proxy(&self, id: &str) -> Result<()> {
        let req = proto::StopVsockProxyRequest { id: id.to_string() };
        self.client.clone().stop_vsock_proxy(req).await?;
        Ok(())
    }
}
