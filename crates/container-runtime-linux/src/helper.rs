//! The helper's life: boot the VM, serve, record the exit, clean up.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use container_api::runtime::runtime_server::RuntimeServer;
use container_api::{ContainerConfiguration, ContainerDb, StateRoot};
use containerization::{
    Kernel, LinuxContainer, LinuxProcess, Mount, QemuVirtualMachineManager, Stdio, User,
    default_initfs,
};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::sync::{Notify, watch};
use tokio_stream::wrappers::UnixListenerStream;

use crate::attach::{Attached, spawn_listener};
use crate::output::{ClientSink, Output, StdioLog};
use crate::service::RuntimeService;

/// Shared state of the helper.
pub(crate) struct Helper {
    pub id: String,
    pub config: ContainerConfiguration,
    pub container: LinuxContainer,
    db: Mutex<ContainerDb>,
    init_out: ClientSink,
    init_err: ClientSink,
    init_stdin: Mutex<Option<File>>,
    pending: Mutex<HashMap<String, Attached>>,
    pub execs: tokio::sync::Mutex<HashMap<String, Arc<LinuxProcess>>>,
    pub exit: InitExit,
    pub started: std::sync::atomic::AtomicBool,
    pub shutdown: Notify,
    /// Told when a `Wait` for the init process has its exit code, so the
    /// helper can end without leaving a late waiter a socket that is gone.
    pub exit_delivered: Notify,
    /// Set in a files-only helper (a stopped container's files for `cp`
    /// and `export`): no program runs.
    pub files: Option<crate::files_helper::FilesState>,
}

impl Helper {
    /// Runs `f` on the database (one connection, used from any task).
    pub(crate) fn db<T>(&self, f: impl FnOnce(&ContainerDb) -> Result<T>) -> Result<T> {
        let db = self
            .db
            .lock()
            .map_err(|_| ContainerizationError::internal("containers.db handle poisoned"))?;
        f(&db)
    }

    /// The state of a files-only helper: no init process, no stdio.
    pub(crate) fn files_only(
        id: &str,
        config: ContainerConfiguration,
        container: LinuxContainer,
        db: ContainerDb,
    ) -> Helper {
        Helper {
            id: id.to_string(),
            config,
            container,
            db: Mutex::new(db),
            init_out: Arc::new(Mutex::new(None)),
            init_err: Arc::new(Mutex::new(None)),
            init_stdin: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            execs: tokio::sync::Mutex::new(HashMap::new()),
            exit: InitExit::default(),
            started: std::sync::atomic::AtomicBool::new(false),
            shutdown: Notify::new(),
            exit_delivered: Notify::new(),
            files: Some(crate::files_helper::FilesState::default()),
        }
    }

    /// A client attached its stdio to process `process`.
    pub(crate) fn attach(&self, process: &str, a: Attached) {
        if process != self.id {
            if let Ok(mut p) = self.pending.lock() {
                p.insert(process.to_string(), a);
            }
            return;
        }
        if let Ok(mut s) = self.init_out.lock() {
            *s = Some(a.stdout);
        }
        if let Ok(mut s) = self.init_err.lock() {
            *s = Some(a.stderr);
        }
        let pipe = self.init_stdin.lock().ok().and_then(|mut p| p.take());
        if let (Some(mut from), Some(mut to)) = (a.stdin, pipe) {
            // Blocking copy on its own thread: the client's stdin may be a
            // terminal; EOF closes the container's stdin.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.flush();
            });
        }
    }

    /// Takes the descriptors a client attached for exec'd process `id`.
    pub(crate) fn take_pending(&self, id: &str) -> Option<Attached> {
        self.pending.lock().ok().and_then(|mut p| p.remove(id))
    }

    /// Drops the client's descriptors of the init process (so its pipes see EOF).
    fn detach_init(&self) {
        for s in [&self.init_out, &self.init_err] {
            if let Ok(mut s) = s.lock() {
                s.take();
            }
        }
    }

    /// Starts the init process and watches for its exit.
    pub(crate) async fn start_init(self: &Arc<Self>) -> Result<()> {
        if let Err(e) = self.container.start().await {
            // Nothing runs: release the client's descriptors (its pipes must
            // see EOF), record the container as stopped and end the helper.
            tracing::error!("starting the init process failed: {e}");
            self.detach_init();
            let reason = format!("starting the init process failed: {}", e.message);
            let _ = self.db(|db| db.set_stopped_because(&self.id, None, Some(&reason)));
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.container.stop().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                me.shutdown.notify_one();
            });
            return Err(e);
        }
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.db(|db| db.set_running(&self.id, std::process::id()))?;
        let me = self.clone();
        tokio::spawn(async move { me.monitor().await });
        Ok(())
    }

    async fn monitor(self: Arc<Self>) {
        let (code, reason) = match self.container.wait(None).await {
            Ok(s) => (Some(s.exit_code), None),
            Err(e) => {
                tracing::error!("waiting for the init process failed: {e}");
                let reason = format!(
                    "the VM stopped before the init process exited: {}",
                    e.message
                );
                (None, Some(reason))
            }
        };
        tracing::info!(?code, "init process exited");
        self.detach_init();
        if let Err(e) = self.db(|db| db.set_stopped_because(&self.id, code, reason.as_deref())) {
            tracing::error!("recording the exit failed: {e}");
        }
        self.exit.record(code.unwrap_or(255));
        if let Err(e) = self.container.stop().await {
            tracing::warn!("stopping the VM failed: {e}");
        }
        // An attached client (`run` without -d) asks for the exit code at
        // once; give one that has not yet asked up to 300 ms before the
        // socket goes (graceful shutdown still answers calls under way).
        let _ =
            tokio::time::timeout(Duration::from_millis(300), self.exit_delivered.notified()).await;
        self.shutdown.notify_one();
    }
}

/// The init process's exit code: recorded once, and there for every
/// waiter, however late it asks (a `run` whose process exits before its
/// `Wait` arrives must still get the code).
#[derive(Debug, Default)]
pub struct InitExit(watch::Sender<Option<i32>>);

impl InitExit {
    /// Records the exit code. `send_replace`, not `send`: `send` drops the
    /// value while no receiver is subscribed, and then every later waiter
    /// would wait forever.
    pub fn record(&self, code: i32) {
        self.0.send_replace(Some(code));
    }

    /// The exit code, once recorded.
    pub fn get(&self) -> Option<i32> {
        *self.0.borrow()
    }

    /// Waits for the exit code, up to `timeout`.
    pub async fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        let mut rx = self.0.subscribe();
        let fut = rx.wait_for(Option::is_some);
        let got = match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.ok()?,
            None => fut.await,
        };
        got.ok().and_then(|c| *c)
    }
}

pub(crate) fn init_logging(path: &std::path::Path) {
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init();
    }
}

pub(crate) fn kernel(config: &ContainerConfiguration) -> Result<Kernel> {
    match &config.kernel {
        Some(p) => Ok(Kernel::new(
            p,
            containerization::kernel::SystemPlatform::linux_amd64(),
        )),
        None => Kernel::default_kernel(),
    }
}

/// Takes the container's VM lock, held until the returned value is dropped
/// or the helper exits; `InvalidState` when another helper holds it.
pub(crate) fn lock_vm(dir: &std::path::Path, id: &str) -> Result<nix::fcntl::Flock<File>> {
    let path = dir.join(crate::VM_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(Code::InternalError, format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        ContainerizationError::invalid_state(format!(
            "container {id} is busy: another runtime helper owns its VM (a start, or a cp or export of it, is under way)"
        ))
    })
}

/// The emulator of a container of another architecture (its disk image
/// cached in `<root>/emulators`); `None` for the host's.
async fn emulator(
    root: &StateRoot,
    config: &ContainerConfiguration,
) -> Result<Option<containerization::Emulator>> {
    let platform = match config.platform.as_str() {
        "" => return Ok(None),
        p => containerization_oci::Platform::parse(p)?,
    };
    let cache = root.path().join("emulators");
    tokio::task::spawn_blocking(move || containerization::Emulator::prepare(&platform, &cache))
        .await
        .map_err(|e| ContainerizationError::internal("emulator image task failed").with_cause(e))?
}

/// The whole life of the helper for container `id`.
pub(crate) async fn run(root: StateRoot, id: String) -> Result<()> {
    let dir = root.container_dir(&id);
    let _ = std::fs::remove_file(dir.join(crate::START_ERROR_FILE));
    init_logging(&dir.join("runtime.log"));
    let _vm_lock = lock_vm(&dir, &id)?;
    let db = ContainerDb::open(&root.containers_db())?;
    let config = db.get(&id)?.configuration;
    db.set_starting(&id, std::process::id())?;
    tracing::info!(id = %id, "runtime helper starting");

    let log =
        StdioLog::open(&dir.join("stdio.log")).context(Code::InternalError, "opening stdio.log")?;
    let init_out: ClientSink = Arc::new(Mutex::new(None));
    let init_err: ClientSink = Arc::new(Mutex::new(None));
    let (stdin, stdin_writer) = if config.process.interactive {
        let (r, w) = std::io::pipe().context(Code::InternalError, "creating the stdin pipe")?;
        (
            Stdio::Fd(r.into()),
            Some(File::from(std::os::fd::OwnedFd::from(w))),
        )
    } else {
        (Stdio::Null, None)
    };

    let initfs = match &config.init_image {
        Some(p) => p.into(),
        None => default_initfs()?,
    };
    let vmm = Arc::new(QemuVirtualMachineManager::new(kernel(&config)?, initfs));
    // Published ports are bound and TAPs made before the VM boots: a taken
    // port or a missing bridge fails the start with nothing running.
    let forwarders = match config.networks.first() {
        Some(a) if !config.publish.is_empty() => {
            let ip = a.ip().parse().map_err(|_| {
                ContainerizationError::internal(format!("stored address {} is corrupt", a.address))
            });
            match ip {
                Ok(ip) => crate::publish::bind(&config.publish, ip).await,
                Err(e) => Err(e),
            }
        }
        _ => Ok(Vec::new()),
    };
    let forwarders = match forwarders {
        Ok(f) => f,
        Err(e) => {
            let _ = db.set_created(&id);
            return Err(e);
        }
    };
    if let Err(e) = crate::network::create_taps(&config).await {
        let _ = db.set_created(&id);
        return Err(e);
    }
    let emulator = match emulator(&root, &config).await {
        Ok(e) => e,
        Err(e) => {
            let _ = db.set_created(&id);
            crate::network::delete_taps(&config).await;
            return Err(e);
        }
    };
    let net_config = config.clone();
    let rootfs = Mount::block("ext4", dir.join("rootfs.qcow2"), "/", Vec::new());
    let mounts = crate::mounts::library_mounts(&root, &config.mounts)?;
    let (read_only, shm_size) = (config.read_only, config.shm_size_in_bytes);
    let p = config.process.clone();
    let security = Security(config.security.clone());
    let (out, err) = (init_out.clone(), init_err.clone());
    let (cpus, memory, hostname) = (config.cpus, config.memory_in_bytes, config.hostname.clone());
    let bootlog = dir.join("bootlog");
    let container = LinuxContainer::new(&id, rootfs, vmm, move |c| {
        c.process.args = p.args;
        c.process.env = p.env;
        if !p.cwd.is_empty() {
            c.process.cwd = p.cwd;
        }
        if !p.user.is_empty() {
            c.process.user = User::parse(&p.user)?;
        }
        c.process.terminal = p.terminal;
        security.apply(c)?;
        c.process.stdin = stdin;
        c.process.stdout = Stdio::Writer(Box::new(Output::new("stdout", Some(log.clone()), out)));
        c.process.stderr = Stdio::Writer(Box::new(Output::new("stderr", Some(log), err)));
        if cpus > 0 {
            c.cpus = cpus;
        }
        if memory > 0 {
            c.memory_in_bytes = memory;
        }
        c.hostname = hostname;
        c.bootlog = Some(bootlog);
        c.mounts = mounts;
        c.read_only_rootfs = read_only;
        c.shm_size_in_bytes = shm_size;
        c.emulator = emulator;
        crate::network::configure(c, &net_config);
        Ok(())
    });
    let container = match container {
        Ok(c) => c,
        Err(e) => {
            let _ = db.set_created(&id);
            crate::network::delete_taps(&config).await;
            return Err(e);
        }
    };
    if let Err(e) = container.create().await {
        let _ = db.set_created(&id);
        crate::network::delete_taps(&config).await;
        return Err(e);
    }
    crate::publish::spawn(forwarders);
    for ps in &config.publish_sockets {
        let relay = containerization::UnixSocketConfiguration {
            source: ps.container_path.clone().into(),
            destination: ps.host_path.clone().into(),
            direction: containerization::container::SocketDirection::OutOf,
        };
        if let Err(e) = container.relay_unix_socket(relay).await {
            let _ = db.set_created(&id);
            let _ = container.stop().await;
            crate::network::delete_taps(&config).await;
            return Err(e);
        }
    }
    let exit = InitExit::default();
    let helper = Arc::new(Helper {
        id: id.clone(),
        config,
        container,
        db: Mutex::new(db),
        init_out,
        init_err,
        init_stdin: Mutex::new(stdin_writer),
        pending: Mutex::new(HashMap::new()),
        execs: tokio::sync::Mutex::new(HashMap::new()),
        exit,
        started: std::sync::atomic::AtomicBool::new(false),
        shutdown: Notify::new(),
        exit_delivered: Notify::new(),
        files: None,
    });

    spawn_listener(&dir.join("stdio.sock"), helper.clone())?;
    let sock = dir.join("runtime.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)
        .context(Code::InternalError, format!("binding {}", sock.display()))?;
    tracing::info!("VM booted; serving {}", sock.display());
    let stop = {
        let h = helper.clone();
        async move { h.shutdown.notified().await }
    };
    let served = tonic::transport::Server::builder()
        .add_service(RuntimeServer::new(RuntimeService::new(helper.clone())))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await;
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(dir.join("stdio.sock"));
    crate::network::delete_taps(&helper.config).await;
    for ps in &helper.config.publish_sockets {
        let _ = std::fs::remove_file(&ps.host_path);
    }
    if helper.config.auto_remove {
        tracing::info!("removing the container (--rm)");
        let _ = helper.db(|db| db.remove(&id));
        let _ = std::fs::remove_dir_all(&dir);
    }
    served.context(Code::InternalError, "serving runtime.sock")
}

/// The container's `--ulimit`, `--cap-add/--cap-drop` and `--init`.
struct Security(container_api::config::ProcessSecurity);

impl Security {
    fn apply(&self, c: &mut containerization::Configuration) -> Result<()> {
        for (kind, soft, hard) in &self.0.rlimits {
            c.process.set_rlimit(containerization::container::Rlimit {
                kind: kind.clone(),
                soft: *soft,
                hard: *hard,
            });
        }
        c.process
            .adjust_capabilities(&self.0.cap_add, &self.0.cap_drop)?;
        c.init = self.0.init;
        c.process.no_new_privileges |= self.0.no_new_privileges;
        c.seccomp = match self.0.seccomp.as_deref() {
            None => containerization::seccomp::Seccomp::Default,
            Some("unconfined") => containerization::seccomp::Seccomp::Unconfined,
            Some(json) => containerization::seccomp::Seccomp::Profile(
                serde_json::from_str(json).map_err(|e| {
                    containerization::ContainerizationError::invalid_argument(format!(
                        "invalid seccomp profile: {e}"
                    ))
                })?,
            ),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exit_recorded_before_anyone_waits_reaches_a_late_waiter() {
        let exit = InitExit::default();
        assert_eq!(exit.wait(Some(Duration::from_millis(10))).await, None);
        // Nobody subscribed at this moment (the race a fast `run` hit).
        exit.record(3);
        assert_eq!(exit.get(), Some(3));
        assert_eq!(exit.wait(Some(Duration::from_secs(5))).await, Some(3));
        assert_eq!(exit.wait(None).await, Some(3));
    }

    #[tokio::test]
    async fn a_waiter_gets_an_exit_recorded_while_it_waits() {
        let exit = std::sync::Arc::new(InitExit::default());
        let waiter = {
            let exit = exit.clone();
            tokio::spawn(async move { exit.wait(None).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        exit.record(0);
        assert_eq!(waiter.await.unwrap(), Some(0));
    }
}
