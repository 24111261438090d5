//! The `SandboxContext` service: state shared by the handlers and the tonic
//! trait implementation, which delegates to one module per concern.

pub(crate) mod fs;
mod io;
mod net;
pub(crate) mod process;
mod proxy;
mod system;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};
use vminitd_api::proto;
use vminitd_api::proto::sandbox_context_server::{SandboxContext, SandboxContextServer};

use crate::reaper::Reaper;

/// Largest message the agent accepts (WriteFile payloads).
const MAX_MESSAGE: usize = 64 << 20;

/// The agent: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    reaper: Arc<Reaper>,
    cgroup_root: PathBuf,
    pid1: bool,
    containers: Mutex<HashMap<String, process::Container>>,
    env: Mutex<HashMap<String, String>>,
    proxies: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Agent {
    /// A fresh agent with no containers.
    pub fn new(reaper: Arc<Reaper>, cgroup_root: PathBuf, pid1: bool) -> Self {
        Agent {
            inner: Arc::new(Inner {
                reaper,
                cgroup_root,
                pid1,
                containers: Mutex::new(HashMap::new()),
                env: Mutex::new(std::env::vars().collect()),
                proxies: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The tonic service wrapping this agent.
    pub fn into_server(self) -> SandboxContextServer<Agent> {
        SandboxContextServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }
}

type Res<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl SandboxContext for Agent {
    async fn ping(&self, _: Request<proto::PingRequest>) -> Res<proto::PingResponse> {
        crate::timeline::on_ping();
        ok(proto::PingResponse {
            version: vminitd_api::VERSION.to_string(),
        })
    }
    async fn standard_setup(
        &self,
        _: Request<proto::StandardSetupRequest>,
    ) -> Res<proto::StandardSetupResponse> {
        self.standard_setup_impl()?;
        ok(proto::StandardSetupResponse {})
    }
    async fn shutdown(&self, _: Request<proto::ShutdownRequest>) -> Res<proto::ShutdownResponse> {
        self.shutdown_impl().await;
        ok(proto::ShutdownResponse {})
    }
    async fn mount(&self, r: Request<proto::MountRequest>) -> Res<proto::MountResponse> {
        fs::mount(r.into_inner()).await?;
        ok(proto::MountResponse {})
    }
    async fn umount(&self, r: Request<proto::UmountRequest>) -> Res<proto::UmountResponse> {
        fs::umount(r.into_inner()).await?;
        ok(proto::UmountResponse {})
    }
    async fn setenv(&self, r: Request<proto::SetenvRequest>) -> Res<proto::SetenvResponse> {
        self.setenv_impl(r.into_inner())?;
        ok(proto::SetenvResponse {})
    }
    async fn getenv(&self, r: Request<proto::GetenvRequest>) -> Res<proto::GetenvResponse> {
        ok(self.getenv_impl(r.into_inner()))
    }
    async fn mkdir(&self, r: Request<proto::MkdirRequest>) -> Res<proto::MkdirResponse> {
        fs::mkdir(r.into_inner()).await?;
        ok(proto::MkdirResponse {})
    }
    async fn sysctl(&self, r: Request<proto::SysctlRequest>) -> Res<proto::SysctlResponse> {
        system::sysctl(r.into_inner())?;
        ok(proto::SysctlResponse {})
    }
    async fn set_time(&self, r: Request<proto::SetTimeRequest>) -> Res<proto::SetTimeResponse> {
        system::set_time(r.into_inner())?;
        ok(proto::SetTimeResponse {})
    }
    async fn setup_emulator(
        &self,
        r: Request<proto::SetupEmulatorRequest>,
    ) -> Res<proto::SetupEmulatorResponse> {
        system::setup_emulator(r.into_inner())?;
        ok(proto::SetupEmulatorResponse {})
    }
    async fn write_file(
        &self,
        r: Request<proto::WriteFileRequest>,
    ) -> Res<proto::WriteFileResponse> {
        fs::write_file(r.into_inner()).await?;
        ok(proto::WriteFileResponse {})
    }
    async fn stat(&self, r: Request<proto::StatRequest>) -> Res<proto::StatResponse> {
        let r = r.into_inner();
        let root = self.container_root(&r.container_id)?;
        ok(fs::stat(r, root).await?)
    }
    async fn copy_in(
        &self,
        r: Request<Streaming<proto::CopyInChunk>>,
    ) -> Res<proto::CopyInResponse> {
        let mut stream = r.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            containerization_error::ContainerizationError::invalid_argument(
                "the copy stream is empty",
            )
        })?;
        let id = first.header.as_ref().map(|h| h.container_id.clone());
        let root = self.container_root(id.as_deref().unwrap_or_default())?;
        ok(fs::copy_in(first, stream, root).await?)
    }
    type CopyOutStream = BoxStream<proto::CopyOutChunk>;
    async fn copy_out(&self, r: Request<proto::CopyOutRequest>) -> Res<Self::CopyOutStream> {
        let r = r.into_inner();
        let root = self.container_root(&r.container_id)?;
        ok(fs::copy_out(r, root).await?)
    }
    async fn create_process(
        &self,
        r: Request<proto::CreateProcessRequest>,
    ) -> Res<proto::CreateProcessResponse> {
        self.create_process_impl(r.into_inner())?;
        ok(proto::CreateProcessResponse {})
    }
    async fn start_process(
        &self,
        r: Request<proto::StartProcessRequest>,
    ) -> Res<proto::StartProcessResponse> {
        let r = r.into_inner();
        let pid = self
            .start_process_impl(&r.container_id, &r.process_id)
            .await?;
        ok(proto::StartProcessResponse { pid })
    }
    async fn kill_process(
        &self,
        r: Request<proto::KillProcessRequest>,
    ) -> Res<proto::KillProcessResponse> {
        let r = r.into_inner();
        self.kill_process_impl(&r.container_id, &r.process_id, r.signal)?;
        ok(proto::KillProcessResponse {})
    }
    async fn wait_process(
        &self,
        r: Request<proto::WaitProcessRequest>,
    ) -> Res<proto::WaitProcessResponse> {
        ok(self.wait_process_impl(r.into_inner()).await?)
    }
    async fn resize_process(
        &self,
        r: Request<proto::ResizeProcessRequest>,
    ) -> Res<proto::ResizeProcessResponse> {
        self.resize_process_impl(r.into_inner())?;
        ok(proto::ResizeProcessResponse {})
    }
    async fn close_process_stdin(
        &self,
        r: Request<proto::CloseProcessStdinRequest>,
    ) -> Res<proto::CloseProcessStdinResponse> {
        let r = r.into_inner();
        self.close_stdin_impl(&r.container_id, &r.process_id)
            .await?;
        ok(proto::CloseProcessStdinResponse {})
    }
    async fn delete_process(
        &self,
        r: Request<proto::DeleteProcessRequest>,
    ) -> Res<proto::DeleteProcessResponse> {
        let r = r.into_inner();
        self.delete_process_impl(&r.container_id, &r.process_id)?;
        ok(proto::DeleteProcessResponse {})
    }
    type ProcessIoStream = BoxStream<proto::IoEvent>;
    async fn process_io(
        &self,
        r: Request<Streaming<proto::IoRequest>>,
    ) -> Res<Self::ProcessIoStream> {
        ok(self.process_io_impl(r.into_inner()).await?)
    }
    async fn container_statistics(
        &self,
        r: Request<proto::ContainerStatisticsRequest>,
    ) -> Res<proto::ContainerStatisticsResponse> {
        ok(self.statistics_impl(r.into_inner()))
    }
    async fn ip_link_set(
        &self,
        r: Request<proto::IpLinkSetRequest>,
    ) -> Res<proto::IpLinkSetResponse> {
        net::link_set(r.into_inner())?;
        ok(proto::IpLinkSetResponse {})
    }
    async fn ip_addr_add(
        &self,
        r: Request<proto::IpAddrAddRequest>,
    ) -> Res<proto::IpAddrAddResponse> {
        net::addr_add(r.into_inner())?;
        ok(proto::IpAddrAddResponse {})
    }
    async fn ip_route_add_link(
        &self,
        r: Request<proto::IpRouteAddLinkRequest>,
    ) -> Res<proto::IpRouteAddLinkResponse> {
        net::route_add_link(r.into_inner())?;
        ok(proto::IpRouteAddLinkResponse {})
    }
    async fn ip_route_add_default(
        &self,
        r: Request<proto::IpRouteAddDefaultRequest>,
    ) -> Res<proto::IpRouteAddDefaultResponse> {
        net::route_add_default(r.into_inner())?;
        ok(proto::IpRouteAddDefaultResponse {})
    }
    async fn configure_dns(
        &self,
        r: Request<proto::ConfigureDnsRequest>,
    ) -> Res<proto::ConfigureDnsResponse> {
        fs::configure_dns(r.into_inner()).await?;
        ok(proto::ConfigureDnsResponse {})
    }
    async fn configure_hosts(
        &self,
        r: Request<proto::ConfigureHostsRequest>,
    ) -> Res<proto::ConfigureHostsResponse> {
        fs::configure_hosts(r.into_inner()).await?;
        ok(proto::ConfigureHostsResponse {})
    }
    async fn sync(&self, _: Request<proto::SyncRequest>) -> Res<proto::SyncResponse> {
        tokio::task::spawn_blocking(nix::unistd::sync)
            .await
            .map_err(|e| Status::internal(format!("sync failed: {e}")))?;
        ok(proto::SyncResponse {})
    }
    async fn kill(&self, r: Request<proto::KillRequest>) -> Res<proto::KillResponse> {
        system::kill(r.into_inner())?;
        ok(proto::KillResponse {})
    }
    async fn proxy_vsock(
        &self,
        r: Request<proto::ProxyVsockRequest>,
    ) -> Res<proto::ProxyVsockResponse> {
        self.proxy_vsock_impl(r.into_inner())?;
        ok(proto::ProxyVsockResponse {})
    }
    async fn stop_vsock_proxy(
        &self,
        r: Request<proto::StopVsockProxyRequest>,
    ) -> Res<proto::StopVsockProxyResponse> {
        self.stop_vsock_proxy_impl(&r.into_inner().id)?;
        ok(proto::StopVsockProxyResponse {})
    }
}
