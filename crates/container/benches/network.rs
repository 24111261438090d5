//! Network benchmark (not a test): throughput host -> container through a
//! published port and container -> container over a bridge, against host
//! loopback measured in the same run; connection setup latency through the
//! publish proxy against a direct connection to the container's address.
//! The same transfer straight to the container's address (no proxy) shows
//! what the proxy costs. Runs in a network namespace of its own, like the
//! network tests.
//!
//! `cargo test -p container --bench network` (debug build; add
//! `--release` on a machine with CPU to spare). `NET_BENCH_MIB` sets the
//! transfer size (default 128).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Registry};

fn private_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) failed: the benchmark needs root");
    let ok = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2) is installed");
    assert!(ok.success());
}

/// Sends `bytes` to `addr` and waits for the peer to close: MiB/s.
fn push(addr: &str, bytes: usize) -> f64 {
    let mut s = None;
    for _ in 0..240 {
        if let Ok(c) = TcpStream::connect(addr) {
            s = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut s = s.unwrap_or_else(|| panic!("cannot connect to {addr}"));
    let chunk = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut sink = [0u8; 64];
    while s.read(&mut sink).unwrap_or(0) > 0 {}
    bytes as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64()
}

/// Host loopback: the same transfer to a local sink.
fn loopback(bytes: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        while c.read(&mut buf).unwrap_or(0) > 0 {}
    });
    push(&addr, bytes)
}

/// Median time of `n` connect + request + first byte round trips.
fn setup_latency(addr: &str, n: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

fn main() {
    private_netns();
    let mib: usize = std::env::var("NET_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let bytes = mib << 20;
    let reg = Registry::start(None);
    reg.push_busybox("bench/busybox:latest", None);
    let image = format!("{}/bench/busybox:latest", reg.host());
    let d = Daemon::new();
    let out = d
        .cmd(&["system", "start"])
        .env("CONTAINER_DEFAULT_SUBNET", "192.168.64.0/24")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Server: a sink on 5001 (published) and 5002 (for the peer), httpd on 80.
    let script = "mkdir -p /www; echo hi > /www/index.html; httpd -p 80 -h /www; \
        (while :; do nc -l -p 5002 </dev/null >/dev/null; done) & \
        (while :; do nc -l -p 5003 </dev/null >/dev/null; done) & \
        while :; do nc -l -p 5001 </dev/null >/dev/null; done";
    d.run(&[
        "run",
        "-d",
        "--name",
        "sink",
        "-p",
        "127.0.0.1:15001:5001",
        "-p",
        "127.0.0.1:18080:80",
        &image,
        "sh",
        "-c",
        script,
    ])
    .ok();
    d.run(&["run", "-d", "--name", "peer", &image, "sleep", "100000"])
        .ok();

    let base = loopback(bytes);
    let published = push("127.0.0.1:15001", bytes);
    let direct_bw = push("192.168.64.2:5003", bytes);
    // Container -> container: wall time of the exec minus an empty exec.
    let empty = {
        let t = Instant::now();
        d.run(&["exec", "peer", "true"]).ok();
        t.elapsed()
    };
    let t = Instant::now();
    d.run(&[
        "exec",
        "peer",
        "sh",
        "-c",
        &format!("head -c {bytes} /dev/zero | nc 192.168.64.2 5002"),
    ])
    .ok();
    let c2c_time = t
        .elapsed()
        .saturating_sub(empty)
        .max(Duration::from_millis(1));
    let c2c = mib as f64 / c2c_time.as_secs_f64();

    let _ = setup_latency("127.0.0.1:18080", 5); // warm up
    let via_proxy = setup_latency("127.0.0.1:18080", 51);
    let direct = setup_latency("192.168.64.2:80", 51);

    println!("network bench ({mib} MiB per transfer)");
    println!("  host loopback                 {base:10.1} MiB/s (reference)");
    println!(
        "  host -> container (-p proxy)  {published:10.1} MiB/s  ratio {:.3}",
        published / base
    );
    println!(
        "  host -> container (direct IP)  {direct_bw:10.1} MiB/s  ratio {:.3}; proxy vs direct {:.2}",
        direct_bw / base,
        published / direct_bw
    );
    println!(
        "  container -> container        {c2c:10.1} MiB/s  ratio {:.3}",
        c2c / base
    );
    println!(
        "  connect+first byte via -p     {:10.2} ms  vs direct to the container {:.2} ms  ratio {:.2}",
        via_proxy.as_secs_f64() * 1e3,
        direct.as_secs_f64() * 1e3,
        via_proxy.as_secs_f64() / direct.as_secs_f64()
    );
}
