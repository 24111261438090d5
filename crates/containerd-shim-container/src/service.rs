//! The shim: containerd's `start`/`delete` actions ([`Shim`]) and the ttrpc
//! Task service, dispatching to the [`VmTask`] of each task id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::{ExitSignal, Shim, spawn};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_str_to_file;
use containerd_shim::{Config, Error, Flags, StartOpts, TtrpcContext, TtrpcResult};
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::{api, topics};
use containerization_error::{Code, ContainerizationError};
use tokio::sync::Mutex;

use crate::events::{Events, timestamp};
use crate::metrics;
use crate::process::Status;
use crate::rootfs::RootfsMount;
use crate::spec::Process;
use crate::stdio::StdioPaths;
use crate::task::{CreateParams, VmTask, cleanup_bundle};

/// The runtime type containerd knows us by.
pub const RUNTIME_ID: &str = "io.containerd.container.v2";

/// The shim's options. Our library owns its children (QEMU,
/// vhost-device-vsock) and reaps them through tokio; the shim's blanket
/// `waitpid(-1)` reaper would steal their exit statuses, so it stays off.
pub fn config() -> Config {
    Config {
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    }
}

/// The shim process (one per task: each task is its own VM).
#[derive(Clone)]
pub struct ContainerShim {
    exit: Arc<ExitSignal>,
    namespace: String,
}

#[async_trait]
impl Shim for ContainerShim {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        ContainerShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        let grouping = opts.id.clone();
        let address = spawn(opts, &grouping, Vec::new()).await?;
        // containerd reads it back when it restarts and reconnects.
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> Result<api::DeleteResponse, Error> {
        // containerd runs `delete` in the bundle after a shim died: clean up
        // the rootfs copy and mount. The VM died with the shim (PDEATHSIG).
        if let Ok(bundle) = std::env::current_dir() {
            cleanup_bundle(&bundle);
        }
        Ok(api::DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(timestamp(std::time::SystemTime::now())).into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        TaskService {
            tasks: Mutex::new(HashMap::new()),
            events: Events::new(publisher, &self.namespace),
            exit: self.exit.clone(),
        }
    }
}

/// The ttrpc Task service of one shim.
pub struct TaskService {
    tasks: Mutex<HashMap<String, Arc<VmTask>>>,
    events: Events,
    exit: Arc<ExitSignal>,
}

/// A ttrpc error carrying the gRPC code containerd maps to its errdefs.
fn rpc_error(e: ContainerizationError) -> ttrpc::Error {
    let code = match e.code {
        Code::NotFound => ttrpc::Code::NOT_FOUND,
        Code::Exists => ttrpc::Code::ALREADY_EXISTS,
        Code::InvalidArgument => ttrpc::Code::INVALID_ARGUMENT,
        Code::InvalidState => ttrpc::Code::FAILED_PRECONDITION,
        Code::Unsupported => ttrpc::Code::UNIMPLEMENTED,
        Code::Timeout => ttrpc::Code::DEADLINE_EXCEEDED,
        Code::Cancelled | Code::Interrupted => ttrpc::Code::CANCELLED,
        _ => ttrpc::Code::INTERNAL,
    };
    log::warn!("{}", e.report());
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.report()))
}

type R<T> = TtrpcResult<T>;

impl TaskService {
    async fn task(&self, id: &str) -> R<Arc<VmTask>> {
        self.tasks.lock().await.get(id).cloned().ok_or_else(|| {
            rpc_error(ContainerizationError::not_found(format!(
                "task {id} does not exist in this shim"
            )))
        })
    }
}

fn status_of(s: Status) -> (api::Status, u32, Option<std::time::SystemTime>) {
    match s {
        Status::Created => (api::Status::CREATED, 0, None),
        Status::Running => (api::Status::RUNNING, 0, None),
        Status::Paused => (api::Status::PAUSED, 0, None),
        Status::Stopped { code, at } => (api::Status::STOPPED, code, Some(at)),
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> R<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(rpc_error(ContainerizationError::unsupported(
                "restoring a task from a checkpoint is not supported",
            )));
        }
        let mut tasks = self.tasks.lock().await;
        if tasks.contains_key(&req.id) {
            return Err(rpc_error(ContainerizationError::exists(format!(
                "task {} already exists",
                req.id
            ))));
        }
        let params = CreateParams {
            id: req.id.clone(),
            bundle: PathBuf::from(&req.bundle),
            rootfs: req
                .rootfs
                .iter()
                .map(|m| RootfsMount {
                    kind: m.type_.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            stdio: StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        };
        let task = VmTask::create(params, self.events.clone())
            .await
            .map_err(rpc_error)?;
        let pid = task.init.pid();
        tasks.insert(req.id.clone(), Arc::new(task));
        drop(tasks);
        self.events
            .publish(
                topics::TASK_CREATE_EVENT_TOPIC,
                Box::new(ev::TaskCreate {
                    container_id: req.id.clone(),
                    bundle: req.bundle.clone(),
                    rootfs: req.rootfs.clone(),
                    io: Some(ev::TaskIO {
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        terminal: req.terminal,
                        ..Default::default()
                    })
                    .into(),
                    pid,
                    ..Default::default()
                }),
            )
            .await;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> R<api::StartResponse> {
        let task = self.task(&req.id).await?;
        let pid = task.start(&req.exec_id).await.map_err(rpc_error)?;
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    async fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> R<api::StateResponse> {
        let task = self.task(&req.id).await?;
        let p = task.process(&req.exec_id).map_err(rpc_error)?;
        let (status, exit_status, at) = status_of(p.status());
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: task.bundle.display().to_string(),
            pid: p.pid(),
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status,
            exited_at: at.map(timestamp).into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> R<api::DeleteResponse> {
        let task = self.task(&req.id).await?;
        let (pid, code, at) = task.delete(&req.exec_id).await.map_err(rpc_error)?;
        if req.exec_id.is_empty() {
            self.tasks.lock().await.remove(&req.id);
        }
        Ok(api::DeleteResponse {
            pid,
            exit_status: code,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> R<api::PidsResponse> {
        let task = self.task(&req.id).await?;
        let processes = task
            .pids()
            .into_iter()
            .map(|(pid, exec_id)| {
                let mut info = api::ProcessInfo {
                    pid,
                    ..Default::default()
                };
                if !exec_id.is_empty() {
                    // The same details the runc shim gives, so ctr and the
                    // CRI can decode them (ctr prints the exec id).
                    let details = ProcessDetails {
                        exec_id,
                        ..Default::default()
                    };
                    if let Ok(value) = details.write_to_bytes() {
                        info.info = Some(Any {
                            type_url: "containerd.runc.v1.ProcessDetails".into(),
                            value,
                            ..Default::default()
                        })
                        .into();
                    }
                }
                info
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        task.pause().await.map_err(rpc_error)?;
        Ok(api::Empty::default())
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        task.resume().await.map_err(rpc_error)?;
        Ok(api::Empty::default())
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        // `all` needs nothing more: the init is PID 1 of the container's PID
        // namespace, so its death takes every other process with it.
        task.kill(&req.exec_id, req.signal)
            .await
            .map_err(rpc_error)?;
        Ok(api::Empty::default())
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        let spec = req.spec.as_ref().ok_or_else(|| {
            rpc_error(ContainerizationError::invalid_argument(
                "exec request has no process spec",
            ))
        })?;
        let process = Process::from_json(&spec.value).map_err(rpc_error)?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        task.exec(&req.exec_id, stdio, &process)
            .await
            .map_err(rpc_error)?;
        Ok(api::Empty::default())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        task.resize(&req.exec_id, req.width, req.height)
            .await
            .map_err(rpc_error)?;
        Ok(api::Empty::default())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> R<api::Empty> {
        let task = self.task(&req.id).await?;
        log::debug!("close_io {} {:?} stdin={}", req.id, req.exec_id, req.stdin);
        if req.stdin {
            task.close_stdin(&req.exec_id).map_err(rpc_error)?;
        }
        Ok(api::Empty::default())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> R<api::WaitResponse> {
        let task = self.task(&req.id).await?;
        let p = task.process(&req.exec_id).map_err(rpc_error)?;
        let (code, at) = p.wait().await;
        Ok(api::WaitResponse {
            exit_status: code,
            exited_at: Some(timestamp(at)).into(),
            ..Default::default()
        })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> R<api::StatsResponse> {
        let task = self.task(&req.id).await?;
        let stats = task.statistics().await.map_err(rpc_error)?;
        Ok(api::StatsResponse {
            stats: Some(metrics::to_any(&stats).map_err(rpc_error)?).into(),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> R<api::ConnectResponse> {
        let task_pid = match self.tasks.lock().await.get(&req.id) {
            Some(t) => t.init.pid(),
            None => 0,
        };
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, req: api::ShutdownRequest) -> R<api::Empty> {
        let tasks = self.tasks.lock().await;
        // containerd asks after every delete; stay while a task still lives.
        if req.now || tasks.is_empty() {
            self.exit.signal();
        }
        Ok(api::Empty::default())
    }
}
