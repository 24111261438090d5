//! Networks through the real CLI, daemon, runtime helpers and VMs, all
//! inside a network namespace this test creates (the registry, the daemon,
//! its bridges, nftables rules, DNS servers and the VMs' TAPs live there;
//! the host's namespace is never touched). Four VMs in all, shared across
//! the assertions. Needs root, the guest kernel and initfs
//! (scripts/build-kernel.sh, scripts/build-initfs.sh), gcc (for a static UDP
//! echo responder) and nftables.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Registry, Run};

/// Moves this thread, and everything it spawns from now on, into a fresh
/// network namespace with loopback up. Panics rather than ever running in
/// the host's namespace.
fn private_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) failed: network tests need root");
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "add", "outside0", "type", "bridge"],
        &["addr", "add", "10.200.0.1/24", "dev", "outside0"],
        &["link", "set", "outside0", "up"],
    ] {
        let ok = Command::new("ip")
            .args(args)
            .status()
            .expect("ip (iproute2) is installed");
        assert!(ok.success(), "ip {args:?}");
    }
}

fn start_daemon(d: &Daemon) {
    let out = d
        .cmd(&["system", "start"])
        .env("CONTAINER_DEFAULT_SUBNET", "192.168.64.0/24")
        .stdin(Stdio::null())
        .output()
        .expect("running container");
    assert!(
        out.status.success(),
        "system start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The configured addresses of container `id` (one per interface).
fn addresses(d: &Daemon, id: &str) -> Vec<String> {
    let json = d.run(&["inspect", id]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect prints JSON");
    v[0]["configuration"]["networks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["address"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// GET / through TCP `addr`, retried while the server comes up.
fn http_get(addr: &str) -> String {
    for _ in 0..120 {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("200") {
                return body;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("no HTTP answer through {addr}");
}

fn exec(d: &Daemon, id: &str, script: &str) -> Run {
    d.run(&["exec", id, "sh", "-c", script])
}

/// Builds a static UDP echo server (port 9090) the busybox image lacks.
fn udp_echo_binary(dir: &std::path::Path) -> String {
    let src = dir.join("udpecho.c");
    std::fs::write(
        &src,
        r#"#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>
#include <string.h>
/* A unix stream echo at /tmp/echo.sock (child) and a UDP echo on 9090. */
int main(void) {
  if (fork() == 0) {
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {0};
    ua.sun_family = AF_UNIX; strcpy(ua.sun_path, "/tmp/echo.sock");
    unlink(ua.sun_path);
    if (bind(u, (struct sockaddr *)&ua, sizeof ua) || listen(u, 8)) return 1;
    for (;;) {
      int c = accept(u, 0, 0); char b[256]; int n;
      while ((n = read(c, b, sizeof b)) > 0) write(c, b, n);
      close(c);
    }
  }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(9090);
  if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
  char b[2048];
  for (;;) {
    struct sockaddr_in p; socklen_t l = sizeof p;
    int n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&p, &l);
    if (n > 0) sendto(s, b, n, 0, (struct sockaddr *)&p, l);
  }
}
"#,
    )
    .unwrap();
    let bin = dir.join("udpecho");
    let ok = Command::new("gcc")
        .args(["-static", "-Os", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc is installed (build-essential, as for the Rust toolchain)");
    assert!(ok.success(), "compiling the UDP echo responder");
    let out = Command::new("base64").arg(&bin).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn networks_dns_isolation_publishing_and_restart() {
    private_netns();
    let tmp = tempfile::tempdir().unwrap();
    let echo_b64 = udp_echo_binary(tmp.path());
    // A host-side service outside every container network.
    let outside = TcpListener::bind("10.200.0.1:8081").unwrap();
    std::thread::spawn(move || {
        for mut c in outside.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\noutside-ok\n");
        }
    });

    let host_sock = tmp.path().join("web.sock");
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let image = format!("{}/test/busybox:latest", reg.host());
    let d = Daemon::new();
    start_daemon(&d);

    // Networks: create, refuse overlaps, list.
    d.run(&["network", "create", "--subnet", "10.88.0.0/24", "back"])
        .ok();
    d.run(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.89.0.0/24",
        "iso",
    ])
    .ok();
    let r = d.run(&["network", "create", "--subnet", "10.88.0.0/25", "clash"]);
    assert_ne!(r.code, 0, "overlapping subnet refused");
    assert!(r.stderr.contains("overlaps"), "{}", r.stderr);
    let ls = d.run(&["network", "ls", "--format", "json"]).ok();
    let nets: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(nets.as_array().unwrap().len(), 3, "{ls}");

    // Four VMs: a web server publishing TCP and UDP ports, a client on two
    // networks, one on `back` only and one on the internal network.
    let web_script = "mkdir -p /www; echo hello-web > /www/index.html; httpd -p 80 -h /www; \
        (while [ ! -x /udpecho ]; do sleep 0.2; done; exec /udpecho) & exec sleep 100000";
    d.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18080:80",
        "-p",
        "127.0.0.1:19090:9090/udp",
        "--publish-socket",
        &format!("{}:/tmp/echo.sock", host_sock.display()),
        &image,
        "sh",
        "-c",
        web_script,
    ])
    .ok();
    // A host port already taken fails before any VM boots, leaving nothing.
    let r = d.run(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        "127.0.0.1:18080:80",
        &image,
        "true",
    ]);
    assert_ne!(r.code, 0, "taken host port refused");
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    assert!(!d.run(&["ls", "-a"]).ok().contains("clash"));
    d.run(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "default",
        "--network",
        "back,mac=02:00:00:00:00:42",
        &image,
        "sleep",
        "100000",
    ])
    .ok();
    d.run(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "back",
        &image,
        "sleep",
        "100000",
    ])
    .ok();
    d.run(&[
        "run",
        "-d",
        "--name",
        "lonely",
        "--network",
        "iso",
        "--dns",
        "10.1.1.1",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--dns-domain",
        "corp.test",
        &image,
        "sleep",
        "100000",
    ])
    .ok();
    assert_eq!(addresses(&d, "web"), ["192.168.64.2/24"]);
    assert_eq!(addresses(&d, "cli"), ["192.168.64.3/24", "10.88.0.2/24"]);
    assert_eq!(addresses(&d, "other"), ["10.88.0.3/24"]);
    assert_eq!(addresses(&d, "lonely"), ["10.89.0.2/24"]);
    let ls = d.run(&["ls"]).ok();
    assert!(ls.contains("192.168.64.2"), "list shows addresses: {ls}");

    // Same network: by address, by name and name.domain (the gateway's DNS).
    // The first request waits for httpd to come up.
    let r = exec(
        &d,
        "cli",
        "for i in $(seq 120); do timeout 5 wget -q -O /dev/null http://192.168.64.2/ && exit 0; sleep 0.5; done; exit 1",
    );
    assert_eq!(r.code, 0, "web never answered: {}", r.stderr);
    for url in [
        "http://192.168.64.2/",
        "http://web/",
        "http://web.container/",
    ] {
        let r = exec(&d, "cli", &format!("timeout 10 wget -q -O - {url}"));
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, "hello-web"),
            "{url}: {}",
            r.stderr
        );
    }
    let r = exec(&d, "cli", "cat /etc/resolv.conf; ip addr show eth1");
    assert!(r.stdout.contains("nameserver 192.168.64.1"), "{}", r.stdout);
    assert!(
        r.stdout.contains("02:00:00:00:00:42") && r.stdout.contains("10.88.0.2/24"),
        "{}",
        r.stdout
    );
    // Names resolve across any network two containers share.
    let r = exec(&d, "cli", "ping -c 1 -W 5 other");
    assert!(r.stdout.contains("10.88.0.3"), "{}{}", r.stdout, r.stderr);
    let r = exec(&d, "other", "ping -c 1 -W 5 10.88.0.2");
    assert_eq!(
        r.code, 0,
        "same network reachable: {}{}",
        r.stdout, r.stderr
    );
    // Other networks are not reachable.
    let r = exec(&d, "other", "timeout 3 wget -q -O - http://192.168.64.2/");
    assert_ne!(
        r.code, 0,
        "a container on another network reached web: {}",
        r.stdout
    );
    // Outbound: a NAT'd network routes out, an internal one has no route.
    let r = exec(&d, "cli", "timeout 10 wget -q -O - http://10.200.0.1:8081/");
    assert_eq!((r.code, r.stdout.trim()), (0, "outside-ok"), "{}", r.stderr);
    let r = exec(&d, "lonely", "cat /etc/resolv.conf");
    for want in [
        "nameserver 10.1.1.1",
        "example.org",
        "options ndots:2",
        "domain corp.test",
    ] {
        assert!(
            r.stdout.contains(want),
            "--dns* honoured ({want}): {}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("10.89.0.1"), "{}", r.stdout);
    let r = exec(&d, "lonely", "ip route");
    assert!(
        !r.stdout.contains("default"),
        "internal has no default route: {}",
        r.stdout
    );
    let r = exec(
        &d,
        "lonely",
        "timeout 3 wget -q -O - http://10.200.0.1:8081/",
    );
    assert_ne!(r.code, 0, "internal network reached the outside");

    // Published TCP port from the host side of the namespace.
    assert!(http_get("127.0.0.1:18080").contains("hello-web"));
    // Published UDP port: echo through the proxy.
    let r = d.run_with_stdin(
        &[
            "exec",
            "-i",
            "web",
            "sh",
            "-c",
            "base64 -d > /udpecho.tmp && chmod +x /udpecho.tmp && mv /udpecho.tmp /udpecho",
        ],
        &echo_b64,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut echoed = String::new();
    for _ in 0..60 {
        udp.send_to(b"ping-udp", "127.0.0.1:19090").unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = udp.recv_from(&mut buf) {
            echoed = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
    }
    assert_eq!(echoed, "ping-udp");
    // Published unix socket, relayed through the agent over vsock.
    let mut echoed = String::new();
    for _ in 0..60 {
        if let Ok(mut c) = std::os::unix::net::UnixStream::connect(&host_sock) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            // No half-close: vsock relays end the whole stream on it.
            let _ = c.write_all(b"ping-unix");
            let mut got = [0u8; 9];
            if c.read_exact(&mut got).is_ok() {
                echoed = String::from_utf8_lossy(&got).into_owned();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(echoed, "ping-unix");

    // IPAM: a freed address is reused, never duplicated; 20 containers
    // (created, not booted) get distinct addresses.
    d.run(&["rm", "-f", "other"]).ok();
    d.run(&[
        "create",
        "--name",
        "n1",
        "--network",
        "back",
        &image,
        "true",
    ])
    .ok();
    assert_eq!(
        addresses(&d, "n1"),
        ["10.88.0.3/24"],
        "freed address reused"
    );
    let mut seen = std::collections::HashSet::new();
    seen.insert("10.88.0.2/24".to_string());
    seen.insert("10.88.0.3/24".to_string());
    for i in 0..20 {
        let name = format!("m{i}");
        d.run(&[
            "create",
            "--name",
            &name,
            "--network",
            "back",
            &image,
            "true",
        ])
        .ok();
        let a = addresses(&d, &name);
        assert!(seen.insert(a[0].clone()), "{} handed out twice", a[0]);
    }
    let r = d.run(&["network", "rm", "back"]);
    assert_ne!(r.code, 0, "a network in use is not deleted");
    let info = d.run(&["network", "inspect", "back"]).ok();
    assert!(
        info.contains("\"cli\"") && info.contains("\"m19\""),
        "{info}"
    );
    for i in 0..20 {
        d.run(&["rm", &format!("m{i}")]).ok();
    }
    d.run(&["rm", "n1"]).ok();
    // --network none: no interface; -p then has nothing to forward to.
    d.run(&[
        "create",
        "--name",
        "nonet",
        "--network",
        "none",
        &image,
        "true",
    ])
    .ok();
    assert!(addresses(&d, "nonet").is_empty());
    d.run(&["rm", "nonet"]).ok();
    let r = d.run(&[
        "create",
        "--network",
        "none",
        "-p",
        "18081:80",
        &image,
        "true",
    ]);
    assert_ne!(r.code, 0, "-p without a network refused");
    let r = d.run(&["create", "--network", "nosuch", &image, "true"]);
    assert!(
        r.code != 0 && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );

    // A daemon restart keeps addresses, forwards and names.
    d.run(&["system", "stop"]).ok();
    start_daemon(&d);
    assert_eq!(addresses(&d, "web"), ["192.168.64.2/24"]);
    assert!(http_get("127.0.0.1:18080").contains("hello-web"));
    let r = exec(&d, "cli", "timeout 10 wget -q -O - http://web/");
    assert_eq!((r.code, r.stdout.trim()), (0, "hello-web"), "{}", r.stderr);
    d.run(&["create", "--name", "after", &image, "true"]).ok();
    assert_eq!(
        addresses(&d, "after"),
        ["192.168.64.4/24"],
        "no duplicate after restart"
    );
    d.run(&["rm", "after"]).ok();

    // Published ports close with the container; everything is removed on delete.
    d.run(&["stop", "web"]).ok();
    assert!(
        !host_sock.exists(),
        "published socket removed with the container"
    );
    assert!(
        TcpStream::connect("127.0.0.1:18080").is_err(),
        "port closed with the container"
    );
    d.run(&["rm", "-f", "web", "cli", "lonely"]).ok();
    d.run(&["network", "rm", "back", "iso"]).ok();
    assert_eq!(d.run(&["network", "prune"]).ok().trim(), "");
    let links = String::from_utf8(
        Command::new("ip")
            .args(["-br", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!links.contains("ctap"), "no TAP left: {links}");
    assert_eq!(
        links.matches("ctbr").count(),
        1,
        "only the default bridge is left: {links}"
    );
    let rules = String::from_utf8(
        Command::new("nft")
            .args(["list", "table", "inet", "container"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        rules.matches("chain ").count(),
        2,
        "only the default network's chains: {rules}"
    );
}

#[test]
fn without_cap_net_admin_networking_fails_clearly() {
    private_netns();
    let d = Daemon::new();
    // Root without CAP_NET_ADMIN: dropped from the bounding set, so neither
    // the CLI nor the daemon it starts has it after exec.
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(env!("CARGO_BIN_EXE_container"))
        .args(["system", "start"])
        .env("CONTAINER_ROOT", d.root.path())
        .env("CONTAINER_DEFAULT_SUBNET", "192.168.64.0/24")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) is installed");
    assert!(
        out.status.success(),
        "the daemon starts without networking: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = d.run(&["network", "create", "--subnet", "10.66.0.0/24", "x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("CAP_NET_ADMIN"), "{}", r.stderr);
    let ls = d.run(&["network", "ls", "--format", "json"]).ok();
    assert_eq!(ls.trim(), "[]", "nothing half-made is left: {ls}");
}
