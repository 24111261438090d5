//! RUN: the command runs as the init process of a container in its own VM
//! (the same isolation as `container run`), on a writable ext4 copy of the
//! stage's filesystem. The VM is shut down cleanly (the agent syncs and
//! unmounts) so the image can be read and diffed on the host afterwards.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use containerization::{LinuxContainer, Mount, QemuVirtualMachineManager, Stdio, User};
use containerization_error::Result;
use futures::future::BoxFuture;
use tokio::io::AsyncWrite;

/// Called with each chunk of the command's output (stdout and stderr).
pub type OutputFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What one RUN needs.
#[derive(Clone)]
pub struct RunRequest {
    /// Unique id for the build container.
    pub id: String,
    /// Writable ext4 image of the stage's filesystem.
    pub rootfs: PathBuf,
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User and group ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Extra mounts (cache and secret images).
    pub mounts: Vec<Mount>,
    /// CPUs of the build VM.
    pub cpus: u32,
    /// Memory of the build container in bytes.
    pub memory: u64,
    /// Where output goes.
    pub output: OutputFn,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("id", &self.id)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

/// Runs RUN commands; the seam that lets unit tests avoid VMs.
pub trait RunExecutor: Send + Sync {
    /// Runs the command to completion; returns its exit code.
    fn run(&self, req: RunRequest) -> BoxFuture<'_, Result<i32>>;

    /// Starts one VM for several RUNs in a row on `req.rootfs` (`req.args`
    /// is ignored); `None` when this executor runs each RUN on its own.
    fn session(&self, _req: RunRequest) -> BoxFuture<'_, Result<Option<Box<dyn RunSession>>>> {
        Box::pin(async { Ok(None) })
    }
}

/// A VM kept for consecutive RUNs (see [`RunExecutor::session`]).
pub trait RunSession: Send {
    /// Runs one command, ends whatever it left running, flushes the guest's
    /// filesystems and pauses the VM, so the rootfs image can be read.
    fn exec(&mut self, req: RunRequest) -> BoxFuture<'_, Result<i32>>;
    /// Resumes the VM after [`RunSession::exec`].
    fn resume(&mut self) -> BoxFuture<'_, Result<()>>;
    /// Stops the VM.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}

/// Runs each RUN in a fresh QEMU microVM through `containerization`.
#[derive(Debug, Default)]
pub struct VmRunExecutor {
    /// Made at the first RUN, so builds without RUN need no kernel.
    vmm: std::sync::OnceLock<Arc<QemuVirtualMachineManager>>,
}

impl VmRunExecutor {
    /// Uses the default kernel and initfs (`CONTAINER_KERNEL`,
    /// `CONTAINER_INITFS`, then the installed ones), looked up at the first
    /// RUN.
    pub fn new() -> VmRunExecutor {
        VmRunExecutor::default()
    }

    fn vmm(&self) -> Result<Arc<QemuVirtualMachineManager>> {
        if let Some(v) = self.vmm.get() {
            return Ok(v.clone());
        }
        let kernel = containerization::Kernel::default_kernel()?;
        let initfs = containerization::default_initfs()?;
        let vmm = Arc::new(QemuVirtualMachineManager::new(kernel, initfs));
        Ok(self.vmm.get_or_init(|| vmm).clone())
    }
}

/// Adapts [`OutputFn`] to the container's async stdio writer.
struct Sink(OutputFn);

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        (self.0)(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl RunExecutor for VmRunExecutor {
    fn run(&self, req: RunRequest) -> BoxFuture<'_, Result<i32>> {
        Box::pin(async move {
            let rootfs = Mount::block("ext4", &req.rootfs, "/", Vec::new());
            let out = req.output.clone();
            let container = LinuxContainer::new(&req.id, rootfs, self.vmm()?, |c| {
                c.process.args = req.args.clone();
                c.process.env = req.env.clone();
                c.process.cwd = req.cwd.clone();
                c.process.user = run_user(&req);
                c.process.stdout = Stdio::Writer(Box::new(Sink(out.clone())));
                c.process.stderr = Stdio::Writer(Box::new(Sink(out)));
                c.cpus = req.cpus.max(1);
                c.memory_in_bytes = req.memory.max(64 << 20);
                c.mounts = req.mounts.clone();
                c.hostname = "buildkitsandbox".into();
                Ok(())
            })?;
            container.create().await?;
            let result = async {
                container.start().await?;
                let status = container.wait(None).await?;
                // Flush before the shutdown: if the VM then has to be killed,
                // the image still holds everything the command wrote.
                container.sync().await?;
                Ok::<_, containerization_error::ContainerizationError>(status)
            }
            .await;
            // Always shut down: the agent syncs and unmounts the rootfs, so
            // the image is consistent for the diff.
            let stopped = container.stop().await;
            let status = result?;
            stopped?;
            Ok(status.exit_code)
        })
    }

    fn session(&self, req: RunRequest) -> BoxFuture<'_, Result<Option<Box<dyn RunSession>>>> {
        Box::pin(async move {
            let rootfs = Mount::block("ext4", &req.rootfs, "/", Vec::new());
            let container = LinuxContainer::new(&req.id, rootfs, self.vmm()?, |c| {
                // An idle init that leaves at SIGTERM; the RUNs are execs.
                c.process.args = vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    // USR1: end everything a RUN left behind (kill -1 from the
                    // namespace's init reaches every other process).
                    "trap 'kill -9 -1' USR1; trap 'exit 0' TERM; while :; do sleep 3600 & wait; done".into(),
                ];
                c.process.env = req.env.clone();
                c.cpus = req.cpus.max(1);
                c.memory_in_bytes = req.memory.max(64 << 20);
                c.hostname = "buildkitsandbox".into();
                c.stop_timeout = std::time::Duration::from_secs(2);
                Ok(())
            })?;
            container.create().await?;
            if let Err(e) = container.start().await {
                let _ = container.stop().await;
                return Err(e);
            }
            Ok(Some(
                Box::new(VmSession { container, n: 0 }) as Box<dyn RunSession>
            ))
        })
    }
}

/// One VM serving consecutive RUNs.
struct VmSession {
    container: LinuxContainer,
    n: usize,
}

impl VmSession {
    async fn exec_one(&mut self, req: &RunRequest) -> Result<i32> {
        let out = req.output.clone();
        self.n += 1;
        let id = format!("run-{}", self.n);
        let p = self
            .container
            .exec(&id, |p| {
                p.args = req.args.clone();
                p.env = req.env.clone();
                p.cwd = req.cwd.clone();
                p.user = run_user(req);
                p.stdout = Stdio::Writer(Box::new(Sink(out.clone())));
                p.stderr = Stdio::Writer(Box::new(Sink(out)));
                Ok(())
            })
            .await?;
        p.start().await?;
        let status = p.wait(None).await;
        let _ = p.delete().await;
        Ok(status?.exit_code)
    }
}

impl RunSession for VmSession {
    fn exec(&mut self, req: RunRequest) -> BoxFuture<'_, Result<i32>> {
        Box::pin(async move {
            let code = self.exec_one(&req).await?;
            // Each RUN starts clean, as in its own container: the init
            // ends anything it left running.
            self.container.kill(libc::SIGUSR1).await?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            self.container.sync().await?;
            self.container.pause().await?;
            Ok(code)
        })
    }

    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.container.resume().await })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { self.container.stop().await })
    }
}

/// Collects the last `limit` bytes of output (for error messages) while
/// forwarding everything to `inner`.
#[derive(Clone)]
pub struct Tail {
    buf: Arc<Mutex<Vec<u8>>>,
    limit: usize,
}

impl Tail {
    /// A tail of at most `limit` bytes.
    pub fn new(limit: usize) -> Tail {
        Tail {
            buf: Arc::new(Mutex::new(Vec::new())),
            limit,
        }
    }

    /// Appends output.
    pub fn push(&self, data: &[u8]) {
        if let Ok(mut b) = self.buf.lock() {
            b.extend_from_slice(data);
            if b.len() > self.limit {
                let cut = b.len() - self.limit;
                b.drain(..cut);
            }
        }
    }

    /// The collected text.
    pub fn text(&self) -> String {
        self.buf
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// The user a RUN step runs as (its ids were resolved from the image's
/// /etc/passwd on the host).
fn run_user(req: &RunRequest) -> User {
    User {
        uid: req.uid,
        gid: req.gid,
        ..User::default()
    }
}
