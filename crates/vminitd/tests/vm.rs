//! The agent as PID 1 of a real microVM (QEMU under TCG here), reached over
//! vhost-user-vsock exactly as docs/ARCHITECTURE.md describes. One booted VM
//! is shared by the assertions: boot, Ping, StandardSetup, a container in a
//! mounted ext4 rootfs, an OOM kill reported as 137, SetTime, Shutdown.
//! Prints the boot-to-first-Ping time and the Ping round-trip median.
//!
//! Prerequisites (a missing one fails the test naming what provides it):
//! scripts/build-kernel.sh, scripts/build-initfs.sh,
//! `cargo install vhost-device-vsock --locked`, qemu-system-x86, e2fsprogs.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use oci_spec::runtime::{LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};
use vminitd_api::{ProcessOutput, Vminitd};

/// Kills the spawned processes when the test ends, however it ends.
struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kernel() -> PathBuf {
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

fn initfs() -> PathBuf {
    let p = std::env::var_os("CONTAINER_INITFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/initfs.cpio.gz"));
    assert!(
        p.exists(),
        "initfs {} missing: run scripts/build-initfs.sh",
        p.display()
    );
    p
}

fn require(tool: &str, provider: &str) {
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
fn dial(uds: &Path, port: u32) -> std::io::Result<UnixStream> {
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

async fn collect(c: &Vminitd, id: &str) -> (String, i32) {
    let mut io = c.process_io(id, id).await.unwrap();
    c.start_process(id, id).await.unwrap();
    let mut out = String::new();
    while let Some(chunk) = io.next().await.unwrap() {
        let (ProcessOutput::Stdout(d) | ProcessOutput::Stderr(d)) = chunk;
        out.push_str(&String::from_utf8_lossy(&d));
    }
    let code = c.wait_process(id, id, None).await.unwrap().code;
    (out, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_in_a_microvm() {
    require("qemu-system-x86_64", "apt-get install qemu-system-x86");
    require(
        "vhost-device-vsock",
        "cargo install vhost-device-vsock --locked",
    );
    require("mke2fs", "apt-get install e2fsprogs");
    let (kernel, initfs) = (kernel(), initfs());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // An ext4 image holding a busybox rootfs, for the container.
    let rootfs = common::busybox_rootfs(d);
    let img = d.join("rootfs.ext4");
    let st = Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&rootfs)
        .arg(&img)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success(), "mke2fs failed");

    let vhost_sock = d.join("vhost.sock");
    let uds = d.join("vm.vsock");
    let mut kill = Kill(Vec::new());
    kill.0.push(
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
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        vhost_sock.exists(),
        "vhost-device-vsock did not create its socket"
    );

    let console = d.join("console.log");
    let append = format!(
        "console=ttyS0 panic=-1 reboot=t quiet loglevel=1 tsc_early_khz={} rdinit=/sbin/vminitd",
        tsc_khz()
    );
    let spawned = Instant::now();
    kill.0.push(
        Command::new("qemu-system-x86_64")
            .args(["-M", "microvm,x-option-roms=off,memory-backend=mem0"])
            .args(["-cpu", "max", "-m", "256", "-smp", "1", "-no-reboot"])
            .args(["-display", "none", "-monitor", "none"])
            .args(["-object", "memory-backend-memfd,id=mem0,size=256M,share=on"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-chardev")
            .arg(format!("socket,id=vsk,path={}", vhost_sock.display()))
            .args(["-device", "vhost-user-vsock-device,chardev=vsk"])
            .arg("-drive")
            .arg(format!(
                "id=d0,file={},format=raw,if=none,cache=unsafe",
                img.display()
            ))
            .args(["-device", "virtio-blk-device,drive=d0"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initfs)
            .arg("-append")
            .arg(&append)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Boot to the first answered Ping.
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        if let Ok(s) = dial(&uds, vminitd_api::AGENT_PORT) {
            s.set_nonblocking(true).unwrap();
            let stream = tokio::net::UnixStream::from_std(s).unwrap();
            if let Ok(c) = Vminitd::from_stream(stream).await
                && c.ping().await.is_ok()
            {
                break c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not answer within 60 s; console: {}",
            std::fs::read_to_string(&console).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let boot = spawned.elapsed();

    let mut rtts = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        client.ping().await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    println!(
        "vm: boot to first Ping {:.0} ms; Ping round trip median {:.3} ms, p90 {:.3} ms",
        boot.as_secs_f64() * 1000.0,
        rtts[rtts.len() / 2].as_secs_f64() * 1000.0,
        rtts[rtts.len() * 9 / 10].as_secs_f64() * 1000.0
    );

    client.standard_setup().await.unwrap();
    client.standard_setup().await.unwrap();
    let st = client.stat("/dev/pts/ptmx").await.unwrap();
    assert_eq!(st.mode & 0o170000, 0o020000, "devpts is mounted");

    // A container in a mounted ext4 rootfs.
    let root = "/run/container/c1/rootfs";
    client.mount("ext4", "/dev/vda", root, &[]).await.unwrap();
    let root_path = Path::new(root);
    let mut s = common::spec(
        root_path,
        &["sh", "-c", "echo hello from ext4; cat /proc/1/comm"],
        false,
    );
    client
        .create_process("c1", "c1", &s, false, false)
        .await
        .unwrap();
    let (out, code) = collect(&client, "c1").await;
    assert_eq!((out.as_str(), code), ("hello from ext4\nsh\n", 0));
    client.delete_process("c1", "c1").await.unwrap();

    // Over its memory limit: OOM-killed, reported as 137.
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(16i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s.set_linux(Some(
        LinuxBuilder::default()
            .resources(resources)
            .build()
            .unwrap(),
    ));
    let mut process = s.process().clone().unwrap();
    process.set_args(Some(vec!["tail".into(), "/dev/zero".into()]));
    s.set_process(Some(process));
    client
        .create_process("oom", "oom", &s, false, false)
        .await
        .unwrap();
    let (_, code) = collect(&client, "oom").await;
    assert_eq!(code, 137);
    let stats = client
        .container_statistics(&["oom".to_string()])
        .await
        .unwrap();
    assert_eq!(stats[0].memory.as_ref().unwrap().limit_bytes, 16 << 20);
    assert!(stats[0].memory.as_ref().unwrap().oom_kill >= 1);
    assert!(stats[0].networks.iter().any(|n| n.interface == "lo"));
    client.delete_process("oom", "oom").await.unwrap();

    // SetTime moves the guest clock.
    let target = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000); // 2030-01-01
    client.set_time(target).await.unwrap();
    let s = common::spec(root_path, &["date", "-u", "+%Y"], false);
    client
        .create_process("t", "t", &s, false, false)
        .await
        .unwrap();
    let (out, code) = collect(&client, "t").await;
    assert_eq!((out.trim(), code), ("2030", 0));

    client.delete_process("t", "t").await.unwrap();
    client.sync().await.unwrap();
    client.umount(root, 0).await.unwrap();
    client.shutdown().await.unwrap();
    let qemu = kill.0.last_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while qemu.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the VM did not power off after Shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(
        log.contains("vminitd: booting"),
        "boot messages on the console: {log}"
    );
}
