//! Volumes, bind mounts and tmpfs (and the other process flags: --ulimit,
//! --cap-add, --cap-drop) through the real CLI, daemon and runtime
//! helper, with real VMs (QEMU, TCG here). One daemon and three VM boots
//! in all. Needs virtiofsd (scripts/setup.sh), the guest kernel and initfs
//! (scripts/test.sh builds them), e2fsprogs and a registry (docker-registry).
//!
//! The round-trip file is 256 MiB by default to keep CI short;
//! `VOLUME_ROUND_TRIP_MIB=1024` makes it the 1 GiB (and the volume
//! bench, `cargo run -p containerization --example volume_bench`, moves 1 GiB).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Registry};

/// Size of the file carried host -> bind -> volume -> next container -> host.
fn round_trip_mib() -> usize {
    std::env::var("VOLUME_ROUND_TRIP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Writes `len` bytes of incompressible-looking data (xorshift).
fn write_pseudo_random(path: &Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..len >> 20 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

/// `sha256sum` of a host file.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn e2fsck(image: &Path, fix: bool) -> (i32, String) {
    let out = Command::new("e2fsck")
        .arg(if fix { "-fy" } else { "-fn" })
        .arg(image)
        .output()
        .expect("e2fsck (apt-get install e2fsprogs)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn debugfs_cat(image: &Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .output()
        .expect("debugfs (apt-get install e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let text = d.run(&["inspect", id]).ok();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[0].clone()
}

fn wait_status(d: &Daemon, id: &str, status: &str) {
    for _ in 0..600 {
        if inspect(d, id)["status"] == status {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("container {id} never became {status}: {}", inspect(d, id));
}

/// The QEMU process among the children of the runtime helper `helper`.
fn qemu_child(helper: u32) -> i32 {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == helper && comm.contains("qemu-system") {
            return pid;
        }
    }
    panic!("no QEMU child of runtime helper {helper}");
}

fn virtiofsd_installed() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("virtiofsd").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "virtiofsd is not on PATH: run scripts/setup.sh --deps-only (cargo install virtiofsd --locked)"
    );
}

#[test]
fn volumes_binds_and_tmpfs_end_to_end() {
    virtiofsd_installed();
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());
    let host = tempfile::tempdir().unwrap();
    let hp = host.path().to_str().unwrap().to_string();
    std::fs::write(host.path().join("from-host"), "host says hi\n").unwrap();
    std::fs::write(host.path().join("single.conf"), "key=value\n").unwrap();
    write_pseudo_random(&host.path().join("big"), round_trip_mib() << 20);

    // The volume commands, no VM needed.
    let out = d
        .run(&["volume", "create", "--label", "team=a", "-s", "2G", "v1"])
        .ok();
    assert_eq!(out.trim(), "v1");
    let r = d.run(&["volume", "create", "v1"]);
    assert_eq!(r.code, 4, "a second create is refused: {}", r.stderr);
    let r = d.run(&["volume", "create", "bad/name"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = d.run(&["volume", "create", "--opt", "size=1k", "tiny"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&d.run(&["volume", "inspect", "v1"]).ok()).unwrap();
    assert_eq!(v[0]["labels"]["team"], "a");
    assert_eq!(v[0]["size_in_bytes"], 2u64 << 30);
    let v1_image = d.root.path().join("volumes/v1/volume.img");
    assert!(v1_image.is_file());
    let list: serde_json::Value =
        serde_json::from_str(&d.run(&["volume", "ls", "--format", "json"]).ok()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Boot 1: every kind of mount in one container.
    let single = format!("{hp}/single.conf:/single.conf:ro");
    let bind = format!("{hp}:/host");
    let id = d
        .run(&[
            "run",
            "-d",
            "--name",
            "c1",
            "--read-only",
            "--init",
            "--shm-size",
            "32M",
            "-v",
            "v1:/data",
            "-v",
            "/anon",
            "-v",
            &bind,
            "-v",
            &single,
            "--tmpfs",
            "/scratch:size=16m",
            "--mount",
            "type=volume,source=seeded,target=/etc,readonly",
            &image,
            "sleep",
            "3600",
        ])
        .ok();
    assert_eq!(id.trim(), "c1");
    let exec = |script: &str| d.run(&["exec", "c1", "sh", "-c", script]);

    // Host directory bind: both directions, and host changes show at once.
    let r = exec("cat /host/from-host && echo ctr > /host/from-ctr");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "host says hi\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("from-ctr")).unwrap(),
        "ctr\n"
    );
    std::fs::write(host.path().join("later"), "later\n").unwrap();
    let r = exec("cat /host/later");
    assert_eq!(r.stdout, "later\n", "{}", r.stderr);
    // A single file, read-only; the image's /etc copied into the new volume
    // "seeded", mounted read-only; the rootfs read-only.
    let r = exec("cat /single.conf; grep -c '^root:' /etc/passwd");
    assert_eq!(r.stdout, "key=value\n1\n", "{}", r.stderr);
    for (what, script) in [
        (":ro file bind", "echo x > /single.conf"),
        ("readonly volume", "touch /etc/new"),
        ("--read-only rootfs", "touch /rootfile"),
    ] {
        let r = exec(script);
        assert_ne!(r.code, 0, "{what} accepted a write");
        assert!(r.stderr.contains("Read-only"), "{what}: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(host.path().join("single.conf")).unwrap(),
        "key=value\n"
    );
    // The volume takes the big file from the bind mount; tmpfs and shm.
    let r = exec(
        "echo hello > /data/hello && cp /host/big /data/big && sync && \
         echo t > /scratch/t && echo a > /anon/a && \
         grep -E ' /scratch | /dev/shm ' /proc/mounts",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("tmpfs /scratch tmpfs") && r.stdout.contains("size=16384k"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("size=32768k"), "{}", r.stdout);

    // Safety: a volume in use is not deleted; no second writer.
    let r = d.run(&["volume", "rm", "v1"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("in use by container(s) c1"),
        "{}",
        r.stderr
    );
    d.run(&["create", "--name", "c2", "-v", "v1:/data", &image, "true"])
        .ok();
    let r = d.run(&["start", "c2"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("ext4 is not a cluster filesystem"),
        "{}",
        r.stderr
    );
    d.run(&["rm", "c2"]).ok();

    // The daemon dies and comes back: volumes and the running container stay.
    let pid: i32 = std::fs::read_to_string(d.root.path().join("apiserver.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of the daemon this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.run(&["system", "start"]).ok();
    let names = d.run(&["volume", "ls", "-q"]).ok();
    assert_eq!(
        names.lines().count(),
        3,
        "v1, seeded, one anonymous: {names}"
    );
    assert!(names.lines().any(|l| l == "v1") && names.lines().any(|l| l == "seeded"));
    let r = exec("cat /data/hello");
    assert_eq!(r.stdout, "hello\n", "{}", r.stderr);

    // --init: PID 1 is the init, not sleep; stop's SIGTERM is forwarded to
    // sleep, which dies of it (as PID 1 it would ignore it and be killed).
    let r = exec("cat /proc/1/comm");
    assert!(r.code == 0 && r.stdout.trim() != "sleep", "{}", r.stdout);
    // Stop: the volume is clean on the host.
    d.run(&["stop", "c1"]).ok();
    assert_eq!(inspect(&d, "c1")["exit_code"], 128 + 15);
    let (code, out) = e2fsck(&v1_image, false);
    assert_eq!(code, 0, "v1 is not clean after stop: {out}");

    // Boot 2: the same container again. tmpfs is empty, the volume kept
    // its data; the big file goes back to the host through the bind.
    d.run(&["start", "c1"]).ok();
    wait_status(&d, "c1", "running");
    let r = exec(
        "ls -A /scratch | wc -l; cat /data/hello /anon/a && cp /data/big /host/big.back && sync",
    );
    assert_eq!(r.stdout, "0\nhello\na\n", "{}", r.stderr);
    assert_eq!(
        sha256(&host.path().join("big.back")),
        sha256(&host.path().join("big")),
        "the {} MiB file changed on its round trip",
        round_trip_mib()
    );
    // Data synced in the guest survives a SIGKILL of the VM.
    let r = exec("echo survived > /data/after-kill && sync");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let helper = inspect(&d, "c1")["helper_pid"].as_u64().unwrap() as u32;
    let qemu = qemu_child(helper);
    // SAFETY: plain kill(2) of the VM this test started.
    unsafe {
        libc::kill(qemu, libc::SIGKILL);
    }
    wait_status(&d, "c1", "stopped");
    // The journal makes the image recoverable, and recovery keeps the data.
    let copy = d.root.path().join("v1-copy.img");
    std::fs::copy(&v1_image, &copy).unwrap();
    let (code, out) = e2fsck(&copy, true);
    assert!(code <= 1, "v1 is not recoverable after SIGKILL: {out}");
    assert_eq!(debugfs_cat(&copy, "/after-kill"), "survived\n");
    std::fs::remove_file(&copy).unwrap();

    // Boot 3: the next container reads it (the kernel replays the journal);
    // its anonymous volume outlives --rm. (Also the process flags.)
    let r = d.run(&[
        "run",
        "--rm",
        "-v",
        "v1:/data",
        "-v",
        "/anon2",
        "--ulimit",
        "nofile=512:1024",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_admin",
        &image,
        "sh",
        "-c",
        "cat /data/after-kill; ulimit -n; ulimit -Hn; grep CapEff /proc/self/status",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "survived\n512\n1024\nCapEff:\t0000000000001000\n"),
        "{}",
        r.stderr
    );
    let r = d.run(&["run", "--rm", "--cap-add", "CAP_FLY", &image, "true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(d.run(&["volume", "ls", "-q"]).ok().lines().count(), 4);
    let (code, out) = e2fsck(&v1_image, false);
    assert_eq!(code, 0, "v1 is not clean after a clean stop: {out}");

    // Prune removes what no container references; c1 still holds three.
    let out = d.run(&["volume", "prune"]).ok();
    assert_eq!(
        out.lines().count(),
        2,
        "only the --rm container's anonymous volume: {out}"
    );
    d.run(&["rm", "c1"]).ok();
    d.run(&["volume", "rm", "v1"]).ok();
    d.run(&["volume", "prune"]).ok();
    assert_eq!(d.run(&["volume", "ls", "-q"]).ok().trim(), "");
}
