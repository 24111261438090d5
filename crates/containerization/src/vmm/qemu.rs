//! `QemuVirtualMachineManager`: QEMU `microvm`, direct kernel boot, virtio-mmio.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use containerization_error::{ContainerizationError, Result};
use tokio::sync::{oneshot, watch};
use tracing::debug;

use super::accel::{Accelerator, host_tsc_khz, probe_accelerator};
use super::qmp::Qmp;
use super::spawn::{Reaper, spawn_tied};
use super::vsock::{Announcement, VsockDialer, VsockTransport};
use super::{DiskFormat, VirtualMachineInstance, VirtualMachineManager, VmConfig, VmState};
use crate::kernel::{Kernel, default_initfs};
use crate::kernel_modules::initfs_for_kernel;

/// Creates QEMU microVMs. Cheap to clone; holds no VM state.
#[derive(Debug, Clone)]
pub struct QemuVirtualMachineManager {
    /// Guest kernel and command line.
    pub kernel: Kernel,
    /// initramfs (newc cpio, compressed or not) whose init is PID 1.
    pub initfs: PathBuf,
    /// Path of init inside the initramfs (`rdinit=`).
    pub init_path: String,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// vhost-user vsock backend binary, used where `/dev/vhost-vsock` is absent.
    pub vhost_device_vsock: PathBuf,
    /// virtio-fs daemon binary (for shares).
    pub virtiofsd: PathBuf,
    /// Accelerator; `None` probes on first use.
    pub accelerator: Option<Accelerator>,
    /// TCG translation-buffer size in MiB (QEMU's default is large; a small
    /// buffer cuts host memory per idle VM).
    pub tcg_tb_size_mib: Option<u32>,
    /// Directory for each VM's sockets and logs.
    pub runtime_dir: PathBuf,
}

impl QemuVirtualMachineManager {
    /// A manager booting `kernel` with `initfs` (seed
    /// `VZVirtualMachineManager(kernel:initialFilesystem:bootlog:)`).
    pub fn new(kernel: Kernel, initfs: impl Into<PathBuf>) -> Self {
        let runtime_dir = if nix::unistd::geteuid().is_root() {
            PathBuf::from("/run/container/vm")
        } else {
            std::env::temp_dir().join("container-vm")
        };
        QemuVirtualMachineManager {
            kernel,
            initfs: initfs.into(),
            init_path: "/sbin/vminitd".into(),
            qemu: "qemu-system-x86_64".into(),
            vhost_device_vsock: "vhost-device-vsock".into(),
            virtiofsd: "virtiofsd".into(),
            accelerator: None,
            // CONTAINER_TCG_TB_MIB overrides it (0: QEMU's default).
            tcg_tb_size_mib: match std::env::var("CONTAINER_TCG_TB_MIB").map(|v| v.parse::<u32>()) {
                Ok(Ok(0)) => None,
                Ok(Ok(mib)) => Some(mib),
                _ => Some(32),
            },
            runtime_dir,
        }
    }

    /// A manager with the installed or built kernel and initfs (see
    /// [`Kernel::default_path`] and [`default_initfs`]).
    pub fn with_defaults() -> Result<Self> {
        Ok(Self::new(Kernel::default_kernel()?, default_initfs()?))
    }
}

#[async_trait]
impl VirtualMachineManager for QemuVirtualMachineManager {
    async fn create(&self, config: VmConfig) -> Result<Box<dyn VirtualMachineInstance>> {
        // A modular kernel (the cloud-kernel fallback) boots with its
        // modules appended to the initfs; made once, then cached.
        let (kernel, initfs) = (self.kernel.path.clone(), self.initfs.clone());
        let initfs = if kernel.exists() && initfs.exists() {
            tokio::task::spawn_blocking(move || initfs_for_kernel(&kernel, &initfs))
                .await
                .map_err(|e| {
                    ContainerizationError::internal("initfs task failed").with_cause(e)
                })??
        } else {
            initfs
        };
        Ok(Box::new(QemuVirtualMachineInstance::new(
            self.clone(),
            config,
            initfs,
        )?))
    }
}

/// One QEMU microVM and its helper processes.
#[derive(Debug)]
pub struct QemuVirtualMachineInstance {
    manager: QemuVirtualMachineManager,
    config: VmConfig,
    /// The initfs booted: the manager's, plus kernel modules if needed.
    initfs: PathBuf,
    dir: Option<tempfile::TempDir>,
    bootlog: PathBuf,
    transport: Option<VsockTransport>,
    qmp: Option<Qmp>,
    helpers: Vec<tokio::process::Child>,
    qemu_pid: Option<u32>,
    kill: Option<oneshot::Sender<()>>,
    exited: watch::Receiver<bool>,
    exited_tx: Option<watch::Sender<bool>>,
    /// The agent's announcement and connection (hybrid vsock only).
    announcement: Option<Announcement>,
    _reaper: Option<Reaper>,
}

fn io_err(msg: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerizationError {
    let msg = msg.into();
    move |e| ContainerizationError::internal(msg).with_cause(e)
}

impl QemuVirtualMachineInstance {
    fn new(manager: QemuVirtualMachineManager, config: VmConfig, initfs: PathBuf) -> Result<Self> {
        if config.cpus == 0 || config.memory_in_bytes < (64 << 20) {
            return Err(ContainerizationError::invalid_argument(
                "a VM needs at least 1 CPU and 64 MiB of memory",
            ));
        }
        for path in [&manager.kernel.path, &initfs] {
            if !path.exists() {
                return Err(ContainerizationError::not_found(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
        }
        std::fs::create_dir_all(&manager.runtime_dir).map_err(io_err(format!(
            "cannot create {}",
            manager.runtime_dir.display()
        )))?;
        // Unix socket paths are limited to 108 bytes: keep the name short.
        let prefix: String = config.id.chars().take(12).collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir_in(&manager.runtime_dir)
            .map_err(io_err("cannot create the VM's runtime directory"))?;
        let bootlog = config
            .bootlog
            .clone()
            .unwrap_or_else(|| dir.path().join("bootlog"));
        let reaper = Reaper::start(&[dir.path().to_path_buf()])?;
        let (exited_tx, exited) = watch::channel(false);
        Ok(QemuVirtualMachineInstance {
            manager,
            config,
            initfs,
            dir: Some(dir),
            bootlog,
            transport: None,
            qmp: None,
            helpers: Vec::new(),
            qemu_pid: None,
            kill: None,
            exited,
            exited_tx: Some(exited_tx),
            announcement: None,
            _reaper: Some(reaper),
        })
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    fn qmp(&self) -> Result<&Qmp> {
        self.qmp.as_ref().ok_or_else(|| {
            ContainerizationError::invalid_state(format!("VM {} is not running", self.config.id))
        })
    }

    /// Listens, before the guest boots, for the agent's announcement on
    /// `AGENT_READY_PORT`, so that dialers never send `CONNECT` to a guest
    /// whose vsock driver is not up yet (such early requests can be lost or
    /// leave the hybrid backend resetting later connections). The agent
    /// serves its API on the announcing connection: it is kept for the
    /// first agent dial (`VsockDialer::dial_agent`).
    fn watch_agent_ready(&mut self) -> Result<()> {
        let listener = self.listen_vsock(vminitd_api::AGENT_READY_PORT)?;
        let (tx, ready) = watch::channel(false);
        let conn = Arc::new(Mutex::new(None));
        let slot = conn.clone();
        let mut exited = self.exited.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = listener.accept() => {
                    if let Ok((stream, _)) = r {
                        if let Ok(mut slot) = slot.lock() {
                            *slot = Some(stream);
                        }
                        tx.send_replace(true);
                    }
                }
                _ = exited.wait_for(|e| *e) => {}
            }
        });
        self.announcement = Some(Announcement { ready, conn });
        Ok(())
    }

    async fn start_vsock_backend(&mut self) -> Result<Vec<OsString>> {
        if Path::new("/dev/vhost-vsock").exists() {
            // Kernel vsock: any CID unique on this host; collisions make QEMU
            // fail to start, which the caller reports.
            let cid = 3
                + (std::process::id() ^ (Instant::now().elapsed().subsec_nanos() << 8))
                    % 0x00ff_ffff;
            self.transport = Some(VsockTransport::Kernel(cid));
            return Ok(vec![
                "-device".into(),
                format!("vhost-vsock-device,guest-cid={cid}").into(),
            ]);
        }
        let socket = self.dir().join("vhost.sock");
        let uds = self.dir().join("vsock");
        let mut cmd = tokio::process::Command::new(&self.manager.vhost_device_vsock);
        cmd.arg("--guest-cid")
            .arg("3")
            .arg("--socket")
            .arg(&socket)
            .arg("--uds-path")
            .arg(&uds)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir().join("vhost-device-vsock.log"))
                    .map_err(io_err("cannot create helper log"))?,
            );
        let mut child = spawn_tied(cmd).map_err(|e| {
            ContainerizationError::not_found(format!(
                "cannot start {}: install it with scripts/install-vhost-device-vsock.sh",
                self.manager.vhost_device_vsock.display()
            ))
            .with_cause(e)
        })?;
        wait_for_socket(&socket, &mut child, "vhost-device-vsock").await?;
        self.helpers.push(child);
        self.transport = Some(VsockTransport::Hybrid(uds));
        self.watch_agent_ready()?;
        let mut args: Vec<OsString> = vec!["-chardev".into()];
        let mut chardev = OsString::from("socket,id=vsk,path=");
        chardev.push(&socket);
        args.push(chardev);
        args.push("-device".into());
        args.push("vhost-user-vsock-device,chardev=vsk".into());
        Ok(args)
    }

    async fn start_virtiofsd(&mut self) -> Result<Vec<OsString>> {
        let mut args = Vec::new();
        for (i, share) in self.config.shares.clone().iter().enumerate() {
            let socket = self.dir().join(format!("fs{i}.sock"));
            let mut cmd = tokio::process::Command::new(&self.manager.virtiofsd);
            let mut sock_arg = OsString::from("--socket-path=");
            sock_arg.push(&socket);
            let mut dir_arg = OsString::from("--shared-dir=");
            dir_arg.push(&share.source);
            cmd.arg(sock_arg)
                .arg(dir_arg)
                .arg("--cache=auto")
                .arg("--sandbox=none")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(self.dir().join(format!("virtiofsd{i}.log")))
                        .map_err(io_err("cannot create helper log"))?,
                );
            if share.read_only {
                cmd.arg("--readonly");
            }
            let mut child = spawn_tied(cmd).map_err(|e| {
                ContainerizationError::not_found(format!(
                    "cannot start {}: install it with `cargo install virtiofsd --locked`",
                    self.manager.virtiofsd.display()
                ))
                .with_cause(e)
            })?;
            wait_for_socket(&socket, &mut child, "virtiofsd").await?;
            self.helpers.push(child);
            let mut chardev = OsString::from(format!("socket,id=fs{i},path="));
            chardev.push(&socket);
            args.extend([
                "-chardev".into(),
                chardev,
                "-device".into(),
                format!("vhost-user-fs-device,chardev=fs{i},tag={}", share.tag).into(),
            ]);
        }
        Ok(args)
    }

    /// The QEMU command line, without the helper-specific arguments.
    fn qemu_args(&self, accel: Accelerator) -> Vec<OsString> {
        let c = &self.config;
        let mem_mib = c.memory_in_bytes.div_ceil(1 << 20);
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-M");
        push("microvm,x-option-roms=off,memory-backend=mem0");
        push("-accel");
        match (accel, self.manager.tcg_tb_size_mib) {
            (Accelerator::Tcg, Some(tb)) => push(&format!("tcg,tb-size={tb}")),
            (acc, _) => push(acc.as_str()),
        }
        push("-cpu");
        push(if accel == Accelerator::Kvm {
            "host"
        } else {
            "max"
        });
        push("-smp");
        push(&c.cpus.to_string());
        push("-m");
        push(&format!("{mem_mib}M"));
        push("-object");
        push(&format!(
            "memory-backend-memfd,id=mem0,size={mem_mib}M,share=on"
        ));
        for s in ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"] {
            push(s);
        }
        let m = &self.manager;
        let mut cl = m.kernel.command_line.clone();
        cl.kernel_args.push(format!("rdinit={}", m.init_path));
        if accel == Accelerator::Tcg
            && !cl
                .kernel_args
                .iter()
                .any(|k| k.starts_with("tsc_early_khz="))
            && let Some(khz) = host_tsc_khz()
        {
            cl.kernel_args.push(format!("tsc_early_khz={khz}"));
        }
        push("-append");
        push(&cl.render());
        a.push("-kernel".into());
        a.push(m.kernel.path.clone().into());
        a.push("-initrd".into());
        a.push(self.initfs.clone().into());
        let mut serial = OsString::from("file:");
        serial.push(&self.bootlog);
        a.push("-serial".into());
        a.push(serial);
        for (i, d) in c.block_devices.iter().enumerate() {
            let fmt = match d.format {
                DiskFormat::Raw => "raw",
                DiskFormat::Qcow2 => "qcow2",
            };
            // QEMU's default (`werror=enospc`) pauses the whole VM when the
            // host file system fills, which hangs the container and every
            // command sent to it. `report` hands the error to the guest as
            // an I/O error instead: the writer's write/fsync fails with EIO,
            // the guest's ext4 aborts its journal and goes read-only (what
            // was committed stays), and the VM keeps serving.
            let mut drive = OsString::from(format!(
                "id=d{i},format={fmt},if=none,discard=unmap,werror=report,rerror=report,"
            ));
            if d.read_only {
                drive.push("readonly=on,");
            }
            drive.push("file=");
            // QEMU option values escape ',' by doubling it.
            drive.push(d.path.to_string_lossy().replace(',', ",,"));
            a.push("-drive".into());
            a.push(drive);
            a.push("-device".into());
            a.push(format!("virtio-blk-device,drive=d{i}").into());
        }
        for (i, tap) in c.taps.iter().enumerate() {
            a.push("-netdev".into());
            a.push(format!("tap,id=n{i},ifname={tap},script=no,downscript=no").into());
            a.push("-device".into());
            match c.tap_macs.get(i).cloned().flatten() {
                Some(mac) => a.push(format!("virtio-net-device,netdev=n{i},mac={mac}").into()),
                None => a.push(format!("virtio-net-device,netdev=n{i}").into()),
            }
        }
        let mut qmp = OsString::from("unix:");
        qmp.push(self.dir().join("qmp.sock"));
        qmp.push(",server=on,wait=off");
        a.push("-qmp".into());
        a.push(qmp);
        a
    }

    /// Last lines of the QEMU and boot logs, for error messages.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for p in [self.dir().join("qemu.log"), self.bootlog.clone()] {
            if let Ok(s) = std::fs::read_to_string(&p) {
                let lines: Vec<&str> = s.lines().rev().take(5).collect();
                for l in lines.into_iter().rev() {
                    out.push_str(" | ");
                    out.push_str(l);
                }
            }
        }
        out
    }

    fn cleanup(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        for h in &mut self.helpers {
            let _ = h.start_kill();
        }
        self.helpers.clear();
        self.qmp = None;
        self.dir = None;
    }
}

async fn wait_for_socket(path: &Path, child: &mut tokio::process::Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ContainerizationError::internal(format!(
                "{what} exited at startup ({status})"
            )));
        }
        if Instant::now() > deadline {
            return Err(ContainerizationError::timeout(format!(
                "{what} did not create {} within 10 s",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

#[async_trait]
impl VirtualMachineInstance for QemuVirtualMachineInstance {
    fn id(&self) -> &str {
        &self.config.id
    }

    async fn start(&mut self) -> Result<()> {
        if self.qemu_pid.is_some() {
            return Err(ContainerizationError::invalid_state(format!(
                "VM {} was already started",
                self.config.id
            )));
        }
        let accel = match self.manager.accelerator {
            Some(a) => a,
            None => probe_accelerator(&self.manager.kernel.path).await,
        };
        let mut args = self.qemu_args(accel);
        args.extend(self.start_vsock_backend().await?);
        args.extend(self.start_virtiofsd().await?);
        debug!(vm = %self.config.id, ?args, "starting qemu");
        let log = std::fs::File::create(self.dir().join("qemu.log"))
            .map_err(io_err("cannot create qemu.log"))?;
        let mut cmd = tokio::process::Command::new(&self.manager.qemu);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("cannot dup qemu.log"))?)
            .stderr(log);
        let mut child = spawn_tied(cmd).map_err(|e| {
            ContainerizationError::not_found(format!(
                "cannot start {} (apt-get install qemu-system-x86)",
                self.manager.qemu.display()
            ))
            .with_cause(e)
        })?;
        self.qemu_pid = child.id();
        let qmp_path = self.dir().join("qmp.sock");
        if let Err(e) = wait_for_socket(&qmp_path, &mut child, "qemu").await {
            let _ = child.start_kill();
            return Err(ContainerizationError::internal(format!(
                "{}{}",
                e.message,
                self.log_tail()
            )));
        }
        let qmp = match Qmp::connect(&qmp_path).await {
            Ok(q) => q,
            Err(e) => {
                let _ = child.start_kill();
                return Err(e);
            }
        };
        self.qmp = Some(qmp);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        self.kill = Some(kill_tx);
        let exited_tx = self.exited_tx.take().expect("start runs once");
        // The task owns the child, so kill and reap never race on the PID.
        tokio::spawn(async move {
            tokio::select! {
                _ = child.wait() => {}
                _ = kill_rx => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
            exited_tx.send_replace(true);
        });
        Ok(())
    }

    async fn pause(&self) -> Result<()> {
        self.qmp()?.stop().await
    }

    async fn resume(&self) -> Result<()> {
        self.qmp()?.cont().await
    }

    async fn state(&self) -> Result<VmState> {
        if *self.exited.borrow() || self.qmp.is_none() {
            return Ok(VmState::Stopped);
        }
        match self.qmp()?.query_status().await {
            Ok(s) => Ok(match s.as_str() {
                "running" => VmState::Running,
                "paused" | "suspended" | "debug" | "prelaunch" => VmState::Paused,
                _ => VmState::Stopped,
            }),
            Err(_) if *self.exited.borrow() => Ok(VmState::Stopped),
            Err(e) => Err(e),
        }
    }

    async fn stop(&mut self) -> Result<()> {
        if self.qemu_pid.is_some() && !*self.exited.borrow() {
            if let Some(q) = &self.qmp {
                let _ = tokio::time::timeout(Duration::from_secs(1), q.quit()).await;
            }
            let mut rx = self.exited.clone();
            if tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|e| *e))
                .await
                .is_err()
                && let Some(k) = self.kill.take()
            {
                let _ = k.send(());
                let _ = rx.wait_for(|e| *e).await;
            }
        }
        self.cleanup();
        Ok(())
    }

    async fn wait(&self) -> Result<()> {
        if self.qemu_pid.is_none() {
            return Err(ContainerizationError::invalid_state(format!(
                "VM {} was never started",
                self.config.id
            )));
        }
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|e| *e).await;
        Ok(())
    }

    fn dialer(&self) -> Result<VsockDialer> {
        let transport = self.transport.clone().ok_or_else(|| {
            ContainerizationError::invalid_state(format!("VM {} is not running", self.config.id))
        })?;
        Ok(VsockDialer {
            transport,
            exited: self.exited.clone(),
            announcement: self.announcement.clone(),
            vm_id: self.config.id.clone(),
            bootlog: self.bootlog.clone(),
        })
    }

    fn listen_vsock(&self, port: u32) -> Result<tokio::net::UnixListener> {
        match &self.transport {
            Some(VsockTransport::Hybrid(uds)) => {
                let mut path = uds.clone().into_os_string();
                path.push(format!("_{port}"));
                tokio::net::UnixListener::bind(PathBuf::from(path))
                    .map_err(io_err(format!("cannot listen on host vsock port {port}")))
            }
            Some(VsockTransport::Kernel(_)) => Err(ContainerizationError::unsupported(
                "guest-initiated connections over kernel vsock are not implemented",
            )),
            None => Err(ContainerizationError::invalid_state(format!(
                "VM {} is not running",
                self.config.id
            ))),
        }
    }

    fn bootlog(&self) -> PathBuf {
        self.bootlog.clone()
    }

    fn pids(&self) -> Vec<u32> {
        self.qemu_pid
            .into_iter()
            .chain(self.helpers.iter().filter_map(|h| h.id()))
            .collect()
    }
}

impl Drop for QemuVirtualMachineInstance {
    fn drop(&mut self) {
        self.cleanup();
    }
}
