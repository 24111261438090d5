//! A test-only microVM launcher: QEMU (microvm, TCG) with the project's
//! kernel and initfs, vhost-user-vsock through `vhost-device-vsock`, as in
//! docs/ARCHITECTURE.md. Used by the VM test and the boot benchmark.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vminitd_api::Vminitd;

/// A booted (or booting) VM; its processes are killed on drop.
pub struct Vm {
    /// When QEMU was spawned.
    pub spawned: Instant,
    /// The serial console log.
    pub console: PathBuf,
    uds: PathBuf,
    /// Where the agent announces that it listens (`<uds>_AGENT_READY_PORT`).
    ready: UnixListener,
    procs: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Vm {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guest kernel (CONTAINER_KERNEL or the build-kernel.sh output).
pub fn kernel() -> PathBuf {
    let p = std::env::var_os("CONTAINER_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/container-kernel/vmlinux-current"));
    assert!(
        p.exists(),
        "guest kernel {} missing: run scripts/build-kernel.sh",
        p.display()
    );
    p
}

/// The initfs (CONTAINER_INITFS or the build-initfs.sh output).
pub fn initfs() -> PathBuf {
    let p = std::env::var_os("CONTAINER_INITFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/initfs.cpio.lz4"));
    assert!(
        p.exists(),
        "initfs {} missing: run scripts/build-initfs.sh",
        p.display()
    );
    p
}

/// Fails naming what provides `tool` when it is not installed.
pub fn require(tool: &str, provider: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "{tool} missing: {provider}");
}

/// Host TSC in kHz; mandatory on the kernel command line under TCG.
fn tsc_khz() -> u64 {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let mhz: f64 = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("cpu MHz")?
                .split(':')
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
        .expect("cpu MHz in /proc/cpuinfo");
    (mhz * 1000.0) as u64
}

/// Dials guest vsock port `port` through the hybrid-vsock socket.
pub fn dial(uds: &Path, port: u32) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(uds)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    // Byte by byte: the agent speaks HTTP/2 right after the OK line, and a
    // buffered reader would swallow its first frames.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    s.set_read_timeout(None)?;
    let line = String::from_utf8_lossy(&line);
    if !line.starts_with("OK ") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("vsock connect refused: {line:?}"),
        ));
    }
    Ok(s)
}

/// The agent's client over `stream`, once it answered a Ping within `limit`.
async fn answering(stream: tokio::net::UnixStream, limit: Duration) -> Result<Vminitd, String> {
    let attempt = tokio::time::timeout(limit, async {
        let c = Vminitd::from_stream(stream).await?;
        c.ping().await.map(|_| c)
    });
    match attempt.await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("connected but the agent failed: {e}")),
        Err(_) => Err(format!("the agent did not answer within {limit:?}")),
    }
}

/// Boots a VM; `extra` is appended to the kernel command line, `disk` is
/// attached as /dev/vda.
pub fn launch(extra: &str, disk: Option<&Path>) -> Vm {
    require("qemu-system-x86_64", "apt-get install qemu-system-x86");
    require(
        "vhost-device-vsock",
        "scripts/install-vhost-device-vsock.sh",
    );
    let (kernel, initfs) = (kernel(), initfs());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vhost_sock = d.join("vhost.sock");
    let uds = d.join("vm.vsock");
    let mut procs = Vec::new();
    procs.push(
        Command::new("vhost-device-vsock")
            .args(["--guest-cid", "3"])
            .arg("--socket")
            .arg(&vhost_sock)
            .arg("--uds-path")
            .arg(&uds)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..500 {
        if vhost_sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        vhost_sock.exists(),
        "vhost-device-vsock did not create its socket"
    );
    // Bound before the guest boots, so the agent's announcement is not lost.
    let ready = UnixListener::bind(format!(
        "{}_{}",
        uds.display(),
        vminitd_api::AGENT_READY_PORT
    ))
    .unwrap();
    ready.set_nonblocking(true).unwrap();
    let console = d.join("console.log");
    let append = format!(
        "console=ttyS0 panic=-1 reboot=t quiet loglevel=1 tsc_early_khz={} rdinit=/sbin/vminitd {extra}",
        tsc_khz()
    );
    // VM_CPU: another -cpu model, for experiments.
    let cpu = std::env::var("VM_CPU").unwrap_or_else(|_| "max".to_string());
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-M", "microvm,x-option-roms=off,memory-backend=mem0"])
        .args(["-cpu", &cpu, "-m", "256", "-smp", "1", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none"])
        .args(["-object", "memory-backend-memfd,id=mem0,size=256M,share=on"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-chardev")
        .arg(format!("socket,id=vsk,path={}", vhost_sock.display()))
        .args(["-device", "vhost-user-vsock-device,chardev=vsk"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initfs)
        .arg("-append")
        .arg(&append)
        .stdout(Stdio::null());
    if let Some(disk) = disk {
        cmd.arg("-drive")
            .arg(format!(
                "id=d0,file={},format=raw,if=none,cache=unsafe",
                disk.display()
            ))
            .args(["-device", "virtio-blk-device,drive=d0"]);
    }
    let spawned = Instant::now();
    procs.push(cmd.spawn().unwrap());
    Vm {
        spawned,
        console,
        uds,
        ready,
        procs,
        _dir: dir,
    }
}

impl Vm {
    /// Dials guest vsock `port` through the hybrid-vsock socket.
    pub fn dial(&self, port: u32) -> std::io::Result<UnixStream> {
        dial(&self.uds, port)
    }

    /// Waits for the agent's announcement that it listens: its connection
    /// to the host, on which it serves its API.
    pub async fn announced(&self, within: Duration) -> tokio::net::UnixStream {
        let ready = tokio::net::UnixListener::from_std(self.ready.try_clone().unwrap()).unwrap();
        match tokio::time::timeout(within, ready.accept()).await {
            Ok(Ok((conn, _))) => conn,
            Ok(Err(e)) => panic!("accepting the agent's announcement: {e}"),
            Err(_) => panic!(
                "the agent did not announce itself within {within:?}; console: {}",
                std::fs::read_to_string(&self.console).unwrap_or_default()
            ),
        }
    }

    /// Connects to the agent over its announcing connection (as the library
    /// does) and checks that it answers a Ping.
    pub async fn connect(&self, within: Duration) -> Vminitd {
        let conn = self.announced(within).await;
        self.connect_announced(conn, within).await
    }

    /// The agent's client over `conn`, its announcing connection, once it
    /// answered a Ping within `within`.
    pub async fn connect_announced(
        &self,
        conn: tokio::net::UnixStream,
        within: Duration,
    ) -> Vminitd {
        answering(conn, within).await.unwrap_or_else(|e| {
            panic!(
                "on its announcing connection, {e}; console: {}",
                std::fs::read_to_string(&self.console).unwrap_or_default()
            )
        })
    }

    /// Dials the agent's port (`AGENT_PORT`), as a host reconnecting does,
    /// once it has announced itself: a second connection, retried until it
    /// answers a Ping or `within` passes.
    pub async fn dial_agent_port(&self, within: Duration) -> Vminitd {
        let deadline = Instant::now() + within;
        let mut last_error = String::new();
        loop {
            match dial(&self.uds, vminitd_api::AGENT_PORT) {
                Ok(s) => {
                    s.set_nonblocking(true).unwrap();
                    let stream = tokio::net::UnixStream::from_std(s).unwrap();
                    // Bounded, so a stuck handshake cannot outlive the deadline.
                    match answering(stream, Duration::from_secs(5)).await {
                        Ok(c) => return c,
                        Err(e) => eprintln!("vm: {e}"),
                    }
                }
                // Refused until the agent listens; VM_DEBUG shows each attempt.
                Err(e) => {
                    if std::env::var_os("VM_DEBUG").is_some() {
                        eprintln!("vm: dial: {e}");
                    }
                    last_error = e.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not answer within {within:?} (last dial error: {last_error}); console: {}",
                std::fs::read_to_string(&self.console).unwrap_or_default()
            );
            // Paced: a flood of early CONNECTs is what the backend handles worst.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for QEMU to exit (after Shutdown or a power-off).
    pub fn wait_exit(&mut self, within: Duration) -> Duration {
        let deadline = Instant::now() + within;
        let qemu = self.procs.last_mut().unwrap();
        while qemu.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the VM did not power off within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        self.spawned.elapsed()
    }
}
