//! The `Runtime` gRPC service of the helper.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use container_api::ProcessConfig;
use container_api::runtime::{
    CopyInChunk, CopyOutRequest, CreateProcessRequest, Empty, ExitReply, KillRequest, PathReply,
    PathRequest, ProcessId, ResizeRequest, RuntimeState, StatsReply, StopRequest,
    runtime_server::Runtime,
};
use containerization::Stdio;
use containerization::terminal::Size;
use containerization_error::ContainerizationError;
use tonic::{Request, Response, Status};

use crate::helper::Helper;

/// Implements `Runtime` over the helper.
pub(crate) struct RuntimeService {
    h: Arc<Helper>,
}

impl RuntimeService {
    pub(crate) fn new(h: Arc<Helper>) -> Self {
        Self { h }
    }

    fn state(&self) -> RuntimeState {
        let exit = self.h.exit.get();
        let started = self.h.started.load(Ordering::SeqCst);
        RuntimeState {
            status: match (started, exit) {
                _ if self.h.files.is_some() => "files",
                (_, Some(_)) => "stopped",
                (true, None) => "running",
                (false, None) => "created",
            }
            .into(),
            pid: std::process::id(),
            exit_code: exit.unwrap_or(0),
            exited: exit.is_some(),
        }
    }

    fn not_running(&self) -> Status {
        ContainerizationError::invalid_state(format!("container {} is not running", self.h.id))
            .into()
    }

    /// A files-only helper runs no program: only the file RPCs work.
    fn program_runs(&self) -> Result<(), Status> {
        match self.h.files {
            Some(_) => Err(self.not_running()),
            None => Ok(()),
        }
    }

    async fn exec(&self, id: &str) -> Result<Arc<containerization::LinuxProcess>, Status> {
        self.h.execs.lock().await.get(id).cloned().ok_or_else(|| {
            ContainerizationError::not_found(format!(
                "process {id} not found in container {}",
                self.h.id
            ))
            .into()
        })
    }
}

#[tonic::async_trait]
impl Runtime for RuntimeService {
    async fn state(&self, _: Request<Empty>) -> Result<Response<RuntimeState>, Status> {
        Ok(Response::new(RuntimeService::state(self)))
    }

    async fn create_process(
        &self,
        req: Request<CreateProcessRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.program_runs()?;
        let req = req.into_inner();
        let pc: ProcessConfig = serde_json::from_str(&req.process_json)
            .map_err(|e| Status::invalid_argument(format!("bad process configuration: {e}")))?;
        if self.h.exit.get().is_some() || !self.h.started.load(Ordering::SeqCst) {
            return Err(self.not_running());
        }
        if self.h.execs.lock().await.contains_key(&req.id) {
            return Err(ContainerizationError::exists(format!("process {} exists", req.id)).into());
        }
        let attached = self.h.take_pending(&req.id);
        let process = self
            .h
            .container
            .exec(&req.id, move |p| {
                p.args = pc.args;
                p.env.extend(pc.env);
                if !pc.cwd.is_empty() {
                    p.cwd = pc.cwd;
                }
                if !pc.user.is_empty() {
                    p.user = containerization::User::parse(&pc.user)?;
                }
                p.terminal = pc.terminal;
                if let Some(a) = attached {
                    p.stdout = Stdio::Fd(a.stdout.into());
                    p.stderr = Stdio::Fd(a.stderr.into());
                    if pc.interactive
                        && let Some(i) = a.stdin
                    {
                        p.stdin = Stdio::Fd(i.into());
                    }
                }
                Ok(())
            })
            .await?;
        self.h.execs.lock().await.insert(req.id, Arc::new(process));
        Ok(Response::new(Empty {}))
    }

    async fn start_process(
        &self,
        req: Request<ProcessId>,
    ) -> Result<Response<RuntimeState>, Status> {
        self.program_runs()?;
        let id = req.into_inner().id;
        if id == self.h.id {
            self.h.start_init().await?;
        } else {
            self.exec(&id).await?.start().await?;
        }
        Ok(Response::new(RuntimeService::state(self)))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Result<Response<Empty>, Status> {
        self.program_runs()?;
        let req = req.into_inner();
        if req.id.is_empty() || req.id == self.h.id {
            if self.h.exit.get().is_some() || !self.h.started.load(Ordering::SeqCst) {
                return Err(self.not_running());
            }
            self.h.container.kill(req.signal).await?;
        } else {
            self.exec(&req.id).await?.kill(req.signal).await?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn resize(&self, req: Request<ResizeRequest>) -> Result<Response<Empty>, Status> {
        self.program_runs()?;
        let req = req.into_inner();
        let size = Size {
            width: req.width.min(u16::MAX as u32) as u16,
            height: req.height.min(u16::MAX as u32) as u16,
        };
        if req.id.is_empty() || req.id == self.h.id {
            self.h.container.resize(size).await?;
        } else {
            self.exec(&req.id).await?.resize(size).await?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn wait(&self, req: Request<ProcessId>) -> Result<Response<ExitReply>, Status> {
        self.program_runs()?;
        let id = req.into_inner().id;
        let exit_code = if id.is_empty() || id == self.h.id {
            let code = self
                .h
                .exit
                .wait(None)
                .await
                .ok_or_else(|| Status::internal("the container's exit was not observed"))?;
            self.h.exit_delivered.notify_one();
            code
        } else {
            let p = self.exec(&id).await?;
            let code = p.wait(None).await?.exit_code;
            let _ = p.delete().await;
            self.h.execs.lock().await.remove(&id);
            code
        };
        Ok(Response::new(ExitReply { exit_code }))
    }

    async fn stop(&self, req: Request<StopRequest>) -> Result<Response<RuntimeState>, Status> {
        self.program_runs()?;
        let req = req.into_inner();
        if self.h.exit.get().is_some() || !self.h.started.load(Ordering::SeqCst) {
            return Err(self.not_running());
        }
        let signal = if req.signal > 0 {
            req.signal
        } else {
            libc::SIGTERM
        };
        let _ = self.h.container.kill(signal).await;
        let timeout = Duration::from_secs(req.timeout_secs as u64);
        if self.h.exit.wait(Some(timeout)).await.is_none() {
            tracing::info!("init did not exit after signal {signal}; sending SIGKILL");
            let _ = self.h.container.kill(libc::SIGKILL).await;
            self.h.exit.wait(Some(Duration::from_secs(60))).await;
        }
        Ok(Response::new(RuntimeService::state(self)))
    }

    async fn statistics(&self, _: Request<Empty>) -> Result<Response<StatsReply>, Status> {
        self.program_runs()?;
        let s = self.h.container.statistics().await?;
        let json = serde_json::json!({
            "id": s.id,
            "cpuUsageUsec": s.cpu_usage_usec,
            "memoryUsageBytes": s.memory_usage_bytes,
            "memoryLimitBytes": s.memory_limit_bytes,
            "pids": s.pids,
            "blockReadBytes": s.block_read_bytes,
            "blockWriteBytes": s.block_write_bytes,
            "networkRxBytes": s.network_rx_bytes,
            "networkTxBytes": s.network_tx_bytes,
        })
        .to_string();
        Ok(Response::new(StatsReply { json }))
    }

    async fn stat_path(&self, req: Request<PathRequest>) -> Result<Response<PathReply>, Status> {
        crate::files::stat_path(&self.h, req.into_inner()).await
    }

    async fn copy_in(
        &self,
        req: Request<tonic::Streaming<CopyInChunk>>,
    ) -> Result<Response<Empty>, Status> {
        crate::files::copy_in(&self.h, req.into_inner()).await
    }

    type CopyOutStream = crate::files::DataStream;

    async fn copy_out(
        &self,
        req: Request<CopyOutRequest>,
    ) -> Result<Response<Self::CopyOutStream>, Status> {
        crate::files::copy_out(&self.h, req.into_inner()).await
    }

    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        if let Some(files) = &self.h.files {
            // Ends once the clients still copying are done.
            files.closing.store(true, Ordering::SeqCst);
            return Ok(Response::new(Empty {}));
        }
        let started = self.h.started.load(Ordering::SeqCst);
        if started && self.h.exit.get().is_none() {
            // The monitor records the exit and ends the helper.
            let _ = self.h.container.kill(libc::SIGKILL).await;
        } else if !started {
            let _ = self.h.container.stop().await;
            let _ = self.h.db(|db| db.set_stopped(&self.h.id, None));
            self.h.shutdown.notify_one();
        }
        Ok(Response::new(Empty {}))
    }
}
