//! The agent as PID 1 of a real microVM (QEMU under TCG here), reached over
//! vhost-user-vsock exactly as docs/ARCHITECTURE.md describes. One booted VM
//! is shared by the assertions: boot, Ping, StandardSetup, a container in a
//! mounted ext4 rootfs, an OOM kill reported as 137, SetTime, Shutdown.
//! Prints the boot-to-first-Ping time and the Ping round-trip median.
//!
//! Prerequisites (a missing one fails the test naming what provides it):
//! scripts/build-kernel.sh, scripts/build-initfs.sh,
//! `scripts/install-vhost-device-vsock.sh`, qemu-system-x86, e2fsprogs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use oci_spec::runtime::{LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};
use vminitd_api::{ProcessOutput, Vminitd};

use common::vm::{launch, require};

async fn collect(c: &Vminitd, id: &str) -> (String, i32) {
    collect_in(c, id, id).await
}

/// Starts process `id` of container `cid` and returns its output and code.
async fn collect_in(c: &Vminitd, cid: &str, id: &str) -> (String, i32) {
    let mut io = c.process_io(cid, id).await.unwrap();
    c.start_process(cid, id).await.unwrap();
    let mut out = String::new();
    while let Some(chunk) = io.next().await.unwrap() {
        let (ProcessOutput::Stdout(d) | ProcessOutput::Stderr(d)) = chunk;
        out.push_str(&String::from_utf8_lossy(&d));
    }
    let code = c.wait_process(cid, id, None).await.unwrap().code;
    (out, code)
}

/// The pids in the agent's own cgroup, where a container's exec server
/// lives (read through CopyOut, from the agent's view).
async fn agent_cgroup_pids(c: &Vminitd) -> Vec<String> {
    let mut procs = Vec::new();
    c.copy_out(
        "/sys/fs/cgroup/vminitd/cgroup.procs",
        vminitd_api::CopyMode::Raw,
        &mut procs,
    )
    .await
    .unwrap();
    String::from_utf8_lossy(&procs)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_in_a_microvm() {
    require("mke2fs", "apt-get install e2fsprogs");
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

    let mut vm = launch("vminitd_timeline=1", Some(&img));
    let client = vm.connect(Duration::from_secs(60)).await;
    let boot = vm.spawned.elapsed();
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

    // The milestones line (printed at the second Ping): the first Ping
    // came on the announcing connection.
    let console = std::fs::read_to_string(&vm.console).unwrap();
    let marks = vminitd::timeline::parse(&console).expect("a timeline line");
    let at = |name: &str| {
        marks
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {marks:?}"))
    };
    assert!(at("pid1") < at("mounts"), "{marks:?}");
    assert!(at("listening") < at("connected"), "{marks:?}");
    assert!(at("connected") < at("first-ping"), "{marks:?}");
    assert!(marks.windows(2).all(|w| w[0].1 <= w[1].1), "{marks:?}");

    // The announcing connection is the first one; port 1024 still takes
    // more (a host reconnecting), and both serve at once.
    let second = vm.dial_agent_port(Duration::from_secs(10)).await;
    let (a, b) = tokio::join!(client.ping(), second.ping());
    a.unwrap();
    b.unwrap();
    drop(second);
    client.ping().await.unwrap();

    // A container in a mounted ext4 rootfs, before standard setup: the
    // agent mounts the cgroup hierarchy (not mounted at boot) for it.
    let root = "/run/container/c1/rootfs";
    client.mount("ext4", "/dev/vda", root, &[]).await.unwrap();
    let root_path = Path::new(root);
    let mut s = common::spec(
        root_path,
        &["sh", "-c", "echo hello from ext4; echo $$"],
        false,
    );
    client
        .create_process("c1", "c1", &s, false, false)
        .await
        .unwrap();
    let (out, code) = collect(&client, "c1").await;
    assert_eq!((out.as_str(), code), ("hello from ext4\n1\n", 0));
    let stats = client
        .container_statistics(&["c1".to_string()])
        .await
        .unwrap();
    assert!(stats[0].memory.is_some(), "c1 has a cgroup: {stats:?}");
    client.delete_process("c1", "c1").await.unwrap();

    client.standard_setup().await.unwrap();
    client.standard_setup().await.unwrap();
    let st = client.stat("/dev/pts/ptmx").await.unwrap();
    assert_eq!(st.mode & 0o170000, 0o020000, "devpts is mounted");

    // Execs into a running container go through its exec server: each is
    // in the container's pid namespace (pid > 1, only the container's
    // processes in /proc), its hostname, its cgroup (and cgroup namespace
    // root) and its root; the server itself is in none of the container's
    // cgroup or pid namespace, and it is gone once the init exits.
    let before = agent_cgroup_pids(&client).await;
    let xs = common::spec(root_path, &["sleep", "600"], false);
    client
        .create_process("x", "x", &xs, false, false)
        .await
        .unwrap();
    client.start_process("x", "x").await.unwrap();
    let during = agent_cgroup_pids(&client).await;
    assert_eq!(
        during.len(),
        before.len() + 1,
        "the exec server: {during:?}"
    );
    let probe = "echo pid=$$; hostname; cat /proc/self/cgroup /proc/1/cgroup; \
                 echo /proc/[0-9]*; test -e /sbin/vminitd || echo root=container";
    for i in 0..3 {
        let id = format!("e{i}");
        let e = common::spec(root_path, &["sh", "-c", probe], false);
        client
            .create_process("x", &id, &e, false, false)
            .await
            .unwrap();
        let (out, code) = collect_in(&client, "x", &id).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(code, 0, "{out}");
        let pid: u32 = lines[0].strip_prefix("pid=").unwrap().parse().unwrap();
        assert!(pid > 1, "{out}");
        assert_eq!(
            lines[1..],
            [
                "ctr",
                "0::/",
                "0::/",
                &format!("/proc/1 /proc/{pid}"),
                "root=container"
            ],
            "{out}"
        );
        client.delete_process("x", &id).await.unwrap();
    }
    client.signal_process("x", "x", 9).await.unwrap();
    assert_eq!(client.wait_process("x", "x", None).await.unwrap().code, 137);
    let mut after = agent_cgroup_pids(&client).await;
    for _ in 0..100 {
        if after.len() == before.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = agent_cgroup_pids(&client).await;
    }
    assert_eq!(after, before, "the exec server outlived the container");
    client.delete_process("x", "x").await.unwrap();

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

    // Sysctl, read back through CopyOut.
    client
        .sysctl(&[("vm.overcommit_memory".to_string(), "1".to_string())].into())
        .await
        .unwrap();
    let mut value = Vec::new();
    client
        .copy_out(
            "/proc/sys/vm/overcommit_memory",
            vminitd_api::CopyMode::Raw,
            &mut value,
        )
        .await
        .unwrap();
    assert_eq!(value, b"1\n");

    // A binfmt_misc registration appears under /proc/sys/fs/binfmt_misc.
    client
        .setup_emulator(":cztest:E::cztest::/bin/true:")
        .await
        .unwrap();
    client
        .stat("/proc/sys/fs/binfmt_misc/cztest")
        .await
        .unwrap();

    // ProxyVsock: a guest TCP server reached from the host over vsock.
    let s = common::spec(
        root_path,
        &["sh", "-c", "echo proxied | nc -l -p 8080"],
        false,
    );
    client
        .create_process("srv", "srv", &s, false, false)
        .await
        .unwrap();
    let mut srv_io = client.process_io("srv", "srv").await.unwrap();
    client.start_process("srv", "srv").await.unwrap();
    client
        .proxy_vsock("p1", 5000, vminitd_api::ProxyTarget::Tcp(8080))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..200 {
        if let Ok(mut s) = vm.dial(5000) {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_end(&mut got);
            if !got.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, b"proxied\n");
    client.stop_vsock_proxy("p1").await.unwrap();
    let _ = srv_io.collect().await;
    client.wait_process("srv", "srv", None).await.unwrap();
    client.delete_process("srv", "srv").await.unwrap();
    client.sync().await.unwrap();
    client.umount(root, 0).await.unwrap();
    client.shutdown().await.unwrap();
    vm.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(&vm.console).unwrap_or_default();
    assert!(
        log.contains("vminitd: ready on vsock port 1024 (pid 1 since "),
        "boot messages on the console: {log}"
    );
}
