//! `LinuxContainer`: a container in its own VM (seed section 1.2).

mod config;
mod files;
mod process;
mod saved;
mod spec;
mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use containerization_error::{ContainerizationError, Result};
use tokio::sync::Mutex;
use vminitd_api::{BoxedStream, DnsConfig, ProxyTarget, Vminitd};

pub use config::{
    Configuration, DEFAULT_CAPABILITIES, MEMORY_OVERHEAD, ProcessConfiguration, Rlimit,
    SocketDirection, UnixSocketConfiguration, User,
};
pub use files::{ArchiveShape, PathInfo};
pub use process::LinuxProcess;
pub(crate) use saved::SavedConfiguration;
pub use stdio::{OutputBuffer, Stdio};

use crate::exit_status::ExitStatus;
use crate::mount::{Mount, RuntimeOptions};
use crate::statistics::ContainerStatistics;
use crate::terminal::Size;
use crate::vmm::{
    BlockDevice, DiskFormat, SharedDirectory, VirtualMachineInstance, VirtualMachineManager,
    VmConfig, VsockConnection, VsockDialer,
};
use spec::SpecMount;

/// How long to wait for the agent to answer after the VM starts (TCG boots
/// take ~1 s, more on a loaded host).
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Constructed; no VM yet.
    Initialized,
    /// VM booted, init process created but not started.
    Created,
    /// Init process running.
    Running,
    /// VM paused.
    Paused,
    /// Init process exited or the container was stopped.
    Stopped,
}

#[derive(Debug)]
struct Inner {
    state: State,
    vm: Option<Box<dyn VirtualMachineInstance>>,
    agent: Option<Vminitd>,
    init: Option<Arc<LinuxProcess>>,
    exit: Option<ExitStatus>,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

/// A Linux container running in its own lightweight VM.
#[derive(Debug)]
pub struct LinuxContainer {
    /// Container identifier.
    pub id: String,
    /// Root filesystem (a block device: ext4 image or qcow2 overlay).
    pub rootfs: Mount,
    /// Configuration (the init process's stdio is taken by `create`).
    config: std::sync::Mutex<Configuration>,
    vmm: Arc<dyn VirtualMachineManager>,
    inner: Mutex<Inner>,
    next_port: AtomicU32,
}

/// An extra mount, the guest device or virtio-fs tag it comes from, and for
/// a single shared file, its name inside the shared parent directory.
type GuestMount = (Mount, Option<String>, Option<String>);

/// What the guest must do besides booting: the extra mounts, and the guest
/// device of the emulator disk with the emulator, if any.
struct GuestPlan {
    mounts: Vec<GuestMount>,
    emulator: Option<(String, crate::emulator::Emulator)>,
}

fn guest_disk(index: usize) -> String {
    format!("/dev/vd{}", (b'a' + index as u8) as char)
}

impl LinuxContainer {
    /// A container `id` on `rootfs`, whose VM comes from `vmm`, configured by
    /// `configure` (seed `LinuxContainer(_:rootfs:vmm:configuration:)`).
    pub fn new(
        id: &str,
        rootfs: Mount,
        vmm: Arc<dyn VirtualMachineManager>,
        configure: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<LinuxContainer> {
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "container id {id:?} must be 1-64 characters of [A-Za-z0-9._-]"
            )));
        }
        if !matches!(rootfs.runtime_options, RuntimeOptions::Virtioblk(_)) {
            return Err(ContainerizationError::invalid_argument(
                "the rootfs must be a block mount (Mount::block)",
            ));
        }
        let mut config = Configuration::default();
        configure(&mut config)?;
        config.validate()?;
        Ok(LinuxContainer {
            id: id.to_string(),
            rootfs,
            config: std::sync::Mutex::new(config),
            vmm,
            inner: Mutex::new(Inner {
                state: State::Initialized,
                vm: None,
                agent: None,
                init: None,
                exit: None,
                relays: Vec::new(),
            }),
            next_port: AtomicU32::new(0x1000_0000),
        })
    }

    /// CPUs of the container.
    pub fn cpus(&self) -> u32 {
        self.config.lock().map(|c| c.cpus).unwrap_or(1)
    }

    /// Memory limit of the container in bytes.
    pub fn memory_in_bytes(&self) -> u64 {
        self.config.lock().map(|c| c.memory_in_bytes).unwrap_or(0)
    }

    /// Current lifecycle state.
    pub async fn state(&self) -> State {
        self.inner.lock().await.state
    }

    fn wrong_state(&self, what: &str, state: State) -> ContainerizationError {
        ContainerizationError::invalid_state(format!(
            "cannot {what} container {}: it is {state:?}",
            self.id
        ))
    }

    /// Changes the configuration before the next `create`, while the
    /// container is `Initialized` or `Stopped`: e.g. the init process's
    /// stdio for a restart (every `create` takes the handles it finds, so a
    /// restarted container's output is discarded unless new ones are set).
    /// On error the configuration is left as it was (stdio handles `f`
    /// replaced are kept).
    pub async fn reconfigure(
        &self,
        f: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<()> {
        let inner = self.inner.lock().await;
        if !matches!(inner.state, State::Initialized | State::Stopped) {
            return Err(self.wrong_state("reconfigure", inner.state));
        }
        let mut config = self
            .config
            .lock()
            .map_err(|_| ContainerizationError::internal("container config poisoned"))?;
        let mut next = config.clone_without_stdio();
        next.process.swap_stdio(&mut config.process);
        match f(&mut next).and_then(|()| next.validate()) {
            Ok(()) => {
                *config = next;
                Ok(())
            }
            Err(e) => {
                config.process.swap_stdio(&mut next.process);
                Err(e)
            }
        }
    }

    /// Runs `f` on the configuration (for `ContainerManager`, which saves it).
    pub(crate) fn with_config<T>(&self, f: impl FnOnce(&Configuration) -> T) -> Result<T> {
        let config = self
            .config
            .lock()
            .map_err(|_| ContainerizationError::internal("container config poisoned"))?;
        Ok(f(&config))
    }

    /// Boots the VM, prepares the rootfs and mounts, and creates the init
    /// process (not started). A `Stopped` container is created again: a new
    /// VM on the same root filesystem, so what its processes wrote is there.
    pub async fn create(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        self.create_locked(&mut inner).await
    }

    async fn create_locked(&self, inner: &mut Inner) -> Result<()> {
        if !matches!(inner.state, State::Initialized | State::Stopped) {
            return Err(self.wrong_state("create", inner.state));
        }
        // An init that exited by itself leaves its VM running, holding the
        // root filesystem: power it off before booting the next one.
        Self::power_off(inner).await?;
        let (vm_config, plan) = self.vm_config()?;
        let mut vm = self.vmm.create(vm_config).await?;
        vm.start().await?;
        let result = self.setup_guest(vm.as_ref(), &plan).await;
        match result {
            Ok((agent, init)) => {
                inner.vm = Some(vm);
                inner.agent = Some(agent);
                inner.init = Some(Arc::new(init));
                inner.exit = None;
                inner.state = State::Created;
                Ok(())
            }
            Err(e) => {
                let _ = vm.stop().await;
                Err(e)
            }
        }
    }

    /// Ends the relays, lets the agent sync and unmount, and powers the VM off.
    async fn power_off(inner: &mut Inner) -> Result<()> {
        for r in inner.relays.drain(..) {
            r.abort();
        }
        // The agent's reply means the guest's file systems are synced and
        // unmounted: the VM can end at once (its own power-off follows the
        // reply). Without a reply, give the guest time to power off.
        let synced = match inner.agent.take() {
            Some(agent) => {
                matches!(
                    tokio::time::timeout(Duration::from_secs(5), agent.shutdown()).await,
                    Ok(Ok(()))
                )
            }
            None => false,
        };
        if let Some(mut vm) = inner.vm.take() {
            if !synced {
                let _ = tokio::time::timeout(Duration::from_secs(5), vm.wait()).await;
            }
            vm.stop().await?;
        }
        Ok(())
    }

    /// The VM's devices, and what the guest must do with them.
    fn vm_config(&self) -> Result<(VmConfig, GuestPlan)> {
        let config = self
            .config
            .lock()
            .map_err(|_| ContainerizationError::internal("container config poisoned"))?;
        let mut vm = VmConfig::new(self.id.clone());
        vm.cpus = config.cpus;
        vm.memory_in_bytes = config.memory_in_bytes + MEMORY_OVERHEAD;
        vm.bootlog = config.bootlog.clone();
        let block = |m: &Mount| -> Result<BlockDevice> {
            let path = std::path::PathBuf::from(&m.source);
            if !path.exists() {
                return Err(ContainerizationError::not_found(format!(
                    "block device source {} does not exist",
                    m.source
                )));
            }
            let format = if m.source.ends_with(".qcow2") {
                DiskFormat::Qcow2
            } else {
                DiskFormat::Raw
            };
            Ok(BlockDevice {
                path,
                format,
                read_only: m.read_only(),
            })
        };
        vm.block_devices.push(block(&self.rootfs)?);
        let mut guest = Vec::new();
        for m in &config.mounts {
            match &m.runtime_options {
                RuntimeOptions::Virtioblk(_) => {
                    vm.block_devices.push(block(m)?);
                    guest.push((
                        m.clone(),
                        Some(guest_disk(vm.block_devices.len() - 1)),
                        None,
                    ));
                }
                RuntimeOptions::Virtiofs(_) => {
                    let (dir, file) = share_source(&m.source)?;
                    let read_only = m.read_only();
                    // One virtiofsd per directory: files bound from the same
                    // directory share it.
                    let tag = match vm
                        .shares
                        .iter()
                        .find(|s| s.source == dir && s.read_only == read_only)
                    {
                        Some(s) => s.tag.clone(),
                        None => {
                            let tag = format!("share{}", vm.shares.len());
                            vm.shares.push(SharedDirectory {
                                tag: tag.clone(),
                                source: dir,
                                read_only,
                            });
                            tag
                        }
                    };
                    guest.push((m.clone(), Some(tag), file));
                }
                RuntimeOptions::Any => guest.push((m.clone(), None, None)),
            }
        }
        for i in &config.interfaces {
            if let Some(tap) = i.tap() {
                vm.taps.push(tap.to_string());
                vm.tap_macs.push(i.mac_address().map(str::to_string));
            }
        }
        let emulator = match &config.emulator {
            Some(e) => {
                vm.block_devices.push(BlockDevice {
                    path: e.image().to_path_buf(),
                    format: DiskFormat::Raw,
                    read_only: true,
                });
                Some((guest_disk(vm.block_devices.len() - 1), e.clone()))
            }
            None => None,
        };
        Ok((
            vm,
            GuestPlan {
                mounts: guest,
                emulator,
            },
        ))
    }

    async fn setup_guest(
        &self,
        vm: &dyn VirtualMachineInstance,
        plan: &GuestPlan,
    ) -> Result<(Vminitd, LinuxProcess)> {
        let dialer = vm.dialer()?;
        let agent = connect_agent(dialer).await?;
        agent.standard_setup().await?;
        // The guest has no RTC worth trusting under TCG.
        let _ = agent.set_time(std::time::SystemTime::now()).await;
        if let Some((dev, emulator)) = &plan.emulator {
            // Mounted in the guest's own namespace, outside the rootfs: the
            // `F` registration keeps the interpreter open for the container.
            let dir = crate::emulator::GUEST_DIR;
            agent.mkdir(dir, true, 0o755).await?;
            agent.mount("ext4", dev, dir, &["ro".to_string()]).await?;
            agent.setup_emulator(&emulator.registration(dir)).await?;
        }
        let base = format!("/run/container/{}", self.id);
        let root = format!("{base}/rootfs");
        agent.mkdir(&root, true, 0o755).await?;
        let mut root_opts = Vec::new();
        if self.rootfs.read_only() {
            root_opts.push("ro".to_string());
        }
        agent
            .mount(&self.rootfs.r#type, &guest_disk(0), &root, &root_opts)
            .await?;
        let mut spec_mounts = Vec::new();
        // Guest mount point of each device or tag already mounted.
        let mut mounted: Vec<(String, String)> = Vec::new();
        for (i, (m, dev, file)) in plan.mounts.iter().enumerate() {
            match (&m.runtime_options, dev) {
                (RuntimeOptions::Any, _) | (_, None) => spec_mounts.push(SpecMount {
                    kind: m.r#type.clone(),
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    options: m.options.clone(),
                }),
                (RuntimeOptions::Virtioblk(_), Some(dev))
                | (RuntimeOptions::Virtiofs(_), Some(dev)) => {
                    let at = match mounted.iter().find(|(d, _)| d == dev) {
                        Some((_, at)) => at.clone(),
                        None => {
                            let at = format!("{base}/mounts/{i}");
                            agent.mkdir(&at, true, 0o755).await?;
                            agent.mount(&m.r#type, dev, &at, &m.options).await?;
                            mounted.push((dev.clone(), at.clone()));
                            at
                        }
                    };
                    let source = match file {
                        Some(f) => format!("{at}/{f}"),
                        None => at,
                    };
                    let mut options = vec!["rbind".to_string()];
                    if m.read_only() {
                        options.push("ro".into());
                    }
                    spec_mounts.push(SpecMount {
                        kind: "bind".into(),
                        source,
                        destination: m.destination.clone(),
                        options,
                    });
                }
            }
        }
        let (interfaces, dns, hosts, mut process, spec) = {
            let mut config = self
                .config
                .lock()
                .map_err(|_| ContainerizationError::internal("container config poisoned"))?;
            let process = std::mem::take(&mut config.process);
            config.process = process.clone_without_stdio();
            let spec = spec::container_spec(&self.id, &config, &process, &root, &spec_mounts);
            (
                config.interfaces.clone(),
                config.dns.clone(),
                config.hosts.clone(),
                process,
                spec,
            )
        };
        for (n, iface) in interfaces.iter().enumerate() {
            let name = format!("eth{n}");
            agent.up(&name, Some(1500)).await?;
            agent.address_add(&name, iface.address()).await?;
            if let Some(gw) = iface.gateway() {
                agent.route_add_default(&name, gw).await?;
            }
        }
        if let Some(dns) = dns {
            let cfg = DnsConfig {
                nameservers: dns.nameservers.clone(),
                domain: dns.domain.clone(),
                search_domains: dns.search_domains.clone(),
                options: dns.options.clone(),
            };
            agent.configure_dns(&root, &cfg).await?;
        }
        if let Some(hosts) = hosts {
            let entries: Vec<vminitd_api::proto::HostsEntry> = hosts
                .entries
                .iter()
                .map(|e| vminitd_api::proto::HostsEntry {
                    ip_address: e.ip_address.clone(),
                    hostnames: e.hostnames.clone(),
                    comment: e.comment.clone().unwrap_or_default(),
                })
                .collect();
            agent
                .configure_hosts(&root, &entries, hosts.comment.as_deref())
                .await?;
        }
        let init =
            LinuxProcess::create(agent.clone(), &self.id, &self.id, &mut process, spec).await?;
        Ok((agent, init))
    }

    /// Starts the init process, creating the container first when it has
    /// no VM (`Initialized`, or `Stopped`: a restart on the same root
    /// filesystem).
    pub async fn start(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if matches!(inner.state, State::Initialized | State::Stopped) {
            self.create_locked(&mut inner).await?;
        }
        if inner.state != State::Created {
            return Err(self.wrong_state("start", inner.state));
        }
        let init = inner.init.clone().expect("created container has an init");
        init.start().await?;
        inner.state = State::Running;
        Ok(())
    }

    /// Pauses the whole VM (no guest code runs until `resume`).
    pub async fn pause(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.state != State::Running {
            return Err(self.wrong_state("pause", inner.state));
        }
        inner.vm.as_ref().expect("running has a vm").pause().await?;
        inner.state = State::Paused;
        Ok(())
    }

    /// Resumes a paused container.
    pub async fn resume(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.state != State::Paused {
            return Err(self.wrong_state("resume", inner.state));
        }
        inner.vm.as_ref().expect("paused has a vm").resume().await?;
        inner.state = State::Running;
        Ok(())
    }

    /// Sends `signal` to the init process.
    pub async fn kill(&self, signal: i32) -> Result<()> {
        let init = {
            let inner = self.inner.lock().await;
            if !matches!(inner.state, State::Running | State::Paused) {
                return Err(self.wrong_state("signal", inner.state));
            }
            inner.init.clone().expect("running has an init")
        };
        init.kill(signal).await
    }

    /// Waits for the init process to exit; `Timeout` error when `timeout`
    /// passes first.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<ExitStatus> {
        let init = {
            let inner = self.inner.lock().await;
            if let Some(exit) = inner.exit {
                return Ok(exit);
            }
            if !matches!(inner.state, State::Running | State::Paused) {
                return Err(self.wrong_state("wait for", inner.state));
            }
            inner.init.clone().expect("running has an init")
        };
        let status = init.wait(timeout).await?;
        let mut inner = self.inner.lock().await;
        inner.exit = Some(status);
        if matches!(inner.state, State::Running | State::Paused) {
            inner.state = State::Stopped;
        }
        Ok(status)
    }

    /// Stops the container: SIGTERM, SIGKILL after the configured timeout
    /// (default 5 s), then powers the VM off and removes its files.
    pub async fn stop(&self) -> Result<()> {
        let state = self.inner.lock().await.state;
        if state == State::Paused {
            self.resume().await?;
        }
        if matches!(state, State::Running | State::Paused) {
            let timeout = self
                .config
                .lock()
                .map(|c| c.stop_timeout)
                .unwrap_or(Duration::from_secs(5));
            let _ = self.kill(libc::SIGTERM).await;
            match self.wait(Some(timeout)).await {
                Ok(_) => {}
                Err(e) if e.is_code(containerization_error::Code::Timeout) => {
                    self.kill(libc::SIGKILL).await?;
                    self.wait(Some(Duration::from_secs(30))).await?;
                }
                Err(e) => return Err(e),
            }
        }
        let mut inner = self.inner.lock().await;
        Self::power_off(&mut inner).await?;
        inner.state = State::Stopped;
        Ok(())
    }

    /// Creates a process in the running container, configured by `configure`
    /// starting from the init process's settings (without its stdio).
    pub async fn exec(
        &self,
        id: &str,
        configure: impl FnOnce(&mut ProcessConfiguration) -> Result<()>,
    ) -> Result<LinuxProcess> {
        let mut process = self
            .config
            .lock()
            .map_err(|_| ContainerizationError::internal("container config poisoned"))?
            .process
            .clone_without_stdio();
        configure(&mut process)?;
        self.exec_with(id, process).await
    }

    /// `exec` with an explicit configuration.
    pub async fn exec_with(
        &self,
        id: &str,
        mut process: ProcessConfiguration,
    ) -> Result<LinuxProcess> {
        if id == self.id {
            return Err(ContainerizationError::exists(format!(
                "process id {id} is the container's init"
            )));
        }
        if process.args.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "exec needs a command",
            ));
        }
        let agent = {
            let inner = self.inner.lock().await;
            if inner.state != State::Running {
                return Err(self.wrong_state("exec into", inner.state));
            }
            inner.agent.clone().expect("running has an agent")
        };
        let spec = {
            let config = self
                .config
                .lock()
                .map_err(|_| ContainerizationError::internal("container config poisoned"))?;
            let root = format!("/run/container/{}/rootfs", self.id);
            spec::container_spec(&self.id, &config, &process, &root, &[])
        };
        LinuxProcess::create(agent, &self.id, id, &mut process, spec).await
    }

    async fn init(&self) -> Result<Arc<LinuxProcess>> {
        let inner = self.inner.lock().await;
        if !matches!(inner.state, State::Created | State::Running | State::Paused) {
            return Err(self.wrong_state("use", inner.state));
        }
        Ok(inner.init.clone().expect("created has an init"))
    }

    /// Flushes the guest's filesystems (the agent's `Sync`), so the host can
    /// read a block device's image consistently even if the VM is killed
    /// afterwards (used by `container build` before it diffs the rootfs).
    pub async fn sync(&self) -> Result<()> {
        self.running_agent("sync").await?.sync().await
    }

    /// Closes the init process's stdin.
    pub async fn close_stdin(&self) -> Result<()> {
        self.init().await?.close_stdin().await
    }

    /// Resizes the init process's terminal.
    pub async fn resize(&self, size: Size) -> Result<()> {
        self.init().await?.resize(size).await
    }

    async fn dialer(&self) -> Result<VsockDialer> {
        let inner = self.inner.lock().await;
        match &inner.vm {
            Some(vm) => vm.dialer(),
            None => Err(self.wrong_state("dial into", inner.state)),
        }
    }

    /// Opens a stream to guest vsock `port`.
    pub async fn dial_vsock(&self, port: u32) -> Result<VsockConnection> {
        self.dialer()
            .await?
            .dial(port, Duration::from_secs(10))
            .await
    }

    /// Relays a unix socket between guest and host. `OutOf`: connections to
    /// the host path `destination` reach the guest socket `source` (a path
    /// in the container's rootfs).
    pub async fn relay_unix_socket(&self, socket: UnixSocketConfiguration) -> Result<()> {
        if socket.direction != SocketDirection::OutOf {
            return Err(ContainerizationError::unsupported(
                "relaying a host socket into the guest is not supported yet",
            ));
        }
        let dialer = self.dialer().await?;
        let agent = self.running_agent("relay into").await?;
        let port = self.next_port.fetch_add(1, Ordering::Relaxed);
        let guest_path = format!(
            "/run/container/{}/rootfs/{}",
            self.id,
            socket.source.to_string_lossy().trim_start_matches('/')
        );
        agent
            .proxy_vsock(
                &format!("relay-{port}"),
                port,
                ProxyTarget::Unix(guest_path),
            )
            .await?;
        let _ = std::fs::remove_file(&socket.destination);
        let listener = tokio::net::UnixListener::bind(&socket.destination).map_err(|e| {
            ContainerizationError::internal(format!(
                "cannot listen on {}",
                socket.destination.display()
            ))
            .with_cause(e)
        })?;
        let task = tokio::spawn(async move {
            while let Ok((mut host, _)) = listener.accept().await {
                let dialer = dialer.clone();
                tokio::spawn(async move {
                    if let Ok(mut guest) = dialer.dial(port, Duration::from_secs(5)).await {
                        let _ = tokio::io::copy_bidirectional(&mut host, &mut guest).await;
                    }
                });
            }
        });
        self.inner.lock().await.relays.push(task);
        Ok(())
    }

    /// Resource usage of the container, from its cgroup in the guest.
    pub async fn statistics(&self) -> Result<ContainerStatistics> {
        let agent = self.running_agent("read statistics of").await?;
        let stats = agent
            .container_statistics(std::slice::from_ref(&self.id))
            .await?;
        let s = stats.into_iter().next().ok_or_else(|| {
            ContainerizationError::not_found(format!("no statistics for container {}", self.id))
        })?;
        let (mut rd, mut wr) = (0, 0);
        for d in &s.io {
            rd += d.read_bytes;
            wr += d.write_bytes;
        }
        let (mut rx, mut tx) = (0, 0);
        for n in &s.networks {
            rx += n.rx_bytes;
            tx += n.tx_bytes;
        }
        Ok(ContainerStatistics {
            id: self.id.clone(),
            cpu_usage_usec: s.cpu.map(|c| c.usage_usec).unwrap_or(0),
            memory_usage_bytes: s.memory.map(|m| m.usage_bytes).unwrap_or(0),
            memory_limit_bytes: s.memory.map(|m| m.limit_bytes).unwrap_or(0),
            pids: s.pids.map(|p| p.current).unwrap_or(0),
            block_read_bytes: rd,
            block_write_bytes: wr,
            network_rx_bytes: rx,
            network_tx_bytes: tx,
        })
    }

    /// Host PIDs of the VM's processes (QEMU and helpers).
    pub async fn vm_pids(&self) -> Vec<u32> {
        self.inner
            .lock()
            .await
            .vm
            .as_ref()
            .map(|v| v.pids())
            .unwrap_or_default()
    }
}

/// The host directory to share for a share mount of `source`, and the file
/// to bind from it when `source` is a single file (virtio-fs shares
/// directories only, so a file is served by sharing its parent).
fn share_source(source: &str) -> Result<(std::path::PathBuf, Option<String>)> {
    let path = std::path::Path::new(source);
    let meta = std::fs::metadata(path).map_err(|e| {
        ContainerizationError::not_found(format!("share source {source} does not exist"))
            .with_cause(e)
    })?;
    if meta.is_dir() {
        return Ok((path.to_path_buf(), None));
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => {
            Ok((dir.to_path_buf(), Some(name.to_string_lossy().into_owned())))
        }
        _ => Err(ContainerizationError::invalid_argument(format!(
            "share source {source} must be an absolute path"
        ))),
    }
}

/// Connects to the agent, redialing on reconnects.
async fn connect_agent(dialer: VsockDialer) -> Result<Vminitd> {
    let first = dialer.dial_agent(AGENT_TIMEOUT).await?;
    let slot = Arc::new(std::sync::Mutex::new(Some(first)));
    Vminitd::connect_with(move || {
        let dialer = dialer.clone();
        let first = slot.lock().ok().and_then(|mut s| s.take());
        Box::pin(async move {
            let conn = match first {
                Some(c) => c,
                None => dialer
                    .dial(Vminitd::PORT, Duration::from_secs(5))
                    .await
                    .map_err(std::io::Error::other)?,
            };
            Ok(Box::new(conn) as BoxedStream)
        })
    })
    .await
}
