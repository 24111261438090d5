//! Containers through the real CLI, daemon and runtime helper, with real
//! VMs (QEMU, TCG here). Needs the guest kernel (scripts/build-kernel.sh) and
//! initfs (scripts/build-initfs.sh); scripts/test.sh builds both.
//! `run_exec_logs_stop_rm_and_apiserver_restart`: two VMs, shared across the
//! assertions; `ten_containers_at_once`: ten small ones; `files_of_stopped_containers`:
//! one container's lives and its files-only helpers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Registry};

#[test]
fn run_exec_logs_stop_rm_and_apiserver_restart() {
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());

    // Foreground run: output on our stdout/stderr, exit code propagated,
    // image pulled on demand, --rm leaves nothing.
    let r = d.run(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "echo out-line; echo err-line >&2; exit 7",
    ]);
    assert_eq!(
        r.code, 7,
        "exit code propagates (stdout={} stderr={}); the guest kernel and initfs come from scripts/build-kernel.sh and scripts/build-initfs.sh",
        r.stdout, r.stderr
    );
    assert_eq!(r.stdout.trim(), "out-line");
    assert_eq!(r.stderr.trim(), "err-line");
    assert_eq!(
        d.run(&["ls", "-a", "-q"]).ok().trim(),
        "",
        "--rm removed the record"
    );
    let left = std::fs::read_dir(d.root.path().join("containers"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "--rm removed the bundle");

    // Detached container: exec, logs, list.
    let script = "echo started; trap 'echo bye; exit 3' TERM; while :; do sleep 1; done";
    let id = d
        .run(&["run", "-d", "--name", "web", &image, "sh", "-c", script])
        .ok();
    assert_eq!(id.trim(), "web");
    let r = d.run(&["exec", "web", "sh", "-c", "echo exec-out; exit 4"]);
    assert_eq!((r.code, r.stdout.trim()), (4, "exec-out"), "{}", r.stderr);
    let logs = d.run(&["logs", "web"]).ok();
    assert!(logs.contains("started"), "{logs}");
    let ls = d.run(&["ls"]).ok();
    assert!(ls.contains("web") && ls.contains("running"), "{ls}");

    // A name in use is refused.
    let r = d.run(&["run", "-d", "--name", "web", &image, "true"]);
    assert_eq!(r.code, 4, "exists: {}", r.stderr);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);

    // SIGKILL the apiserver: the container keeps running and is found again.
    let pid: i32 = std::fs::read_to_string(d.root.path().join("apiserver.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of the daemon this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.run(&["system", "start"]).ok();
    let ls = d.run(&["ls"]).ok();
    assert!(
        ls.contains("web") && ls.contains("running"),
        "re-discovered: {ls}"
    );
    let r = d.run(&["exec", "web", "echo", "after-restart"]);
    assert_eq!(r.stdout.trim(), "after-restart", "{}", r.stderr);

    // Stop: TERM reaches the trap, the exit code is recorded.
    d.run(&["stop", "web"]).ok();
    let inspect = d.run(&["inspect", "web"]).ok();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["status"], "stopped", "{inspect}");
    assert_eq!(v[0]["exit_code"], 3, "{inspect}");
    let logs = d.run(&["logs", "web"]).ok();
    assert!(logs.contains("bye"), "{logs}");
    let r = d.run(&["stop", "web"]);
    assert_eq!(r.code, 5, "stop of a stopped container: {}", r.stderr);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    d.run(&["rm", "web"]).ok();
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");

    // An image that exists nowhere: not found, after trying to pull.
    let r = d.run(&["run", "--rm", &format!("{}/test/nosuch:latest", reg.host())]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);

    // --init-image boots another initfs (here a copy of the default one,
    // from a relative path); a missing or non-initfs file is refused
    // before anything is created.
    let boot = tempfile::tempdir().unwrap();
    let initfs = std::env::var("CONTAINER_INITFS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| common::workspace().join("build/initfs.cpio.lz4"));
    std::fs::copy(&initfs, boot.path().join("mine.cpio.lz4")).unwrap();
    std::fs::write(boot.path().join("notes.txt"), "not an initfs").unwrap();
    let r = d.run_in(
        boot.path(),
        &[
            "run",
            "--rm",
            "--init-image",
            "mine.cpio.lz4",
            &image,
            "echo",
            "own-init",
        ],
    );
    assert_eq!((r.code, r.stdout.trim()), (0, "own-init"), "{}", r.stderr);
    let r = d.run_in(
        boot.path(),
        &["run", "--init-image", "nosuch.cpio.gz", &image],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("--init-image nosuch.cpio.gz"),
        "{}",
        r.stderr
    );
    let r = d.run_in(boot.path(), &["run", "--init-image", "notes.txt", &image]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not an initfs"), "{}", r.stderr);
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
}

/// Pids of the QEMU, vhost-device-vsock and virtiofsd processes whose
/// command line mentions any of `needles`.
fn vm_processes(needles: &[String]) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let vm_part = ["qemu-system", "vhost-device-vsock", "virtiofsd"]
            .iter()
            .any(|p| cmd.contains(p));
        if vm_part && needles.iter().any(|n| cmd.contains(n.as_str())) {
            found.push((pid, cmd));
        }
    }
    found
}

/// The VM runtime directories (sockets) the library makes, per user.
fn vm_runtime_dirs() -> Vec<std::path::PathBuf> {
    vec![
        "/run/container/vm".into(),
        std::env::temp_dir().join("container-vm"),
    ]
}

#[test]
fn ten_containers_at_once() {
    const N: usize = 10;
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());
    d.run(&["image", "pull", &image]).ok();
    let names: Vec<String> = (0..N).map(|i| format!("many-{i}")).collect();

    let t = Instant::now();
    let ids: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = names
            .iter()
            .map(|name| {
                let (d, image) = (&d, &image);
                s.spawn(move || {
                    d.run(&[
                        "run",
                        "-d",
                        "--name",
                        name,
                        "-m",
                        "128M",
                        image,
                        "sh",
                        "-c",
                        "while :; do sleep 1; done",
                    ])
                    .ok()
                    .trim()
                    .to_string()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let started = t.elapsed();
    assert_eq!(ids, names, "run -d prints each id");
    let ls = d.run(&["ls", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let running: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "running")
        .map(|c| c["configuration"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(running.len(), N, "all running: {ls}");

    // Each answers from its own VM, concurrently.
    let answers: Vec<String> = std::thread::scope(|s| {
        let execs: Vec<_> = names
            .iter()
            .map(|name| {
                let d = &d;
                s.spawn(move || d.run(&["exec", name, "hostname"]).ok().trim().to_string())
            })
            .collect();
        execs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(answers, names, "each exec reaches its own container");
    let t_rm = Instant::now();
    d.run(&["rm", "-f", "--all"]).ok();
    println!(
        "{N} x `run -d -m 128M` concurrently: {:.2} s wall; `rm -f --all`: {:.2} s",
        started.as_secs_f64(),
        t_rm.elapsed().as_secs_f64()
    );

    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    let left: Vec<_> = std::fs::read_dir(d.root.path().join("containers"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container state dirs left: {left:?}");
    let mut needles: Vec<String> = vec![d.root.path().display().to_string()];
    needles.extend(names.iter().map(|n| format!("/{n}-")));
    // The helpers power their VMs off on the way out; give the last ones a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut procs = vm_processes(&needles);
    while !procs.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        procs = vm_processes(&needles);
    }
    assert!(procs.is_empty(), "VM processes left: {procs:?}");
    for dir in vm_runtime_dirs() {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| names.iter().any(|m| n.starts_with(&format!("{m}-"))))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "VM runtime dirs left in {}: {left:?}",
            dir.display()
        );
    }
}

/// The pid in `<container dir>/files.pid`, if the files-only helper runs.
fn files_helper(d: &Daemon, id: &str) -> Option<u32> {
    let dir = d.root.path().join("containers").join(id);
    let pid: u32 = std::fs::read_to_string(dir.join("files.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&d.run(&["inspect", id]).ok()).unwrap();
    v[0].clone()
}

#[test]
fn files_of_stopped_containers() {
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path();
    let h = |p: &str| host.join(p).display().to_string();
    std::fs::write(host.join("greeting"), "hello\n").unwrap();
    std::fs::write(host.join("greeting2"), "bye\n").unwrap();
    std::fs::write(host.join("in-volume"), "kept in the volume\n").unwrap();
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/deep.txt"), "deep\n").unwrap();

    // Each life prints the greeting, the volume's file and how many lives
    // there were.
    let script = "cat /greeting /data/in-volume 2>/dev/null; echo run >> /runs; wc -l < /runs";
    d.run(&[
        "create",
        "--name",
        "box",
        "-v",
        "boxvol:/data",
        "-m",
        "128M",
        &image,
        "sh",
        "-c",
        script,
    ])
    .ok();

    // Created, never started: files go in; the record stays `created`.
    d.run(&["cp", &h("greeting"), "box:/greeting"]).ok();
    assert_eq!(inspect(&d, "box")["status"], "created");
    let r = d.run(&["start", "-a", "box"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello\n1\n"),
        "{}",
        r.stderr
    );
    let before = inspect(&d, "box");
    assert_eq!(before["status"], "stopped", "{before}");
    assert_eq!(before["exit_code"], 0, "{before}");

    // Stopped: in and out both ways, into a volume too, two clients at once.
    d.run(&["cp", &h("greeting2"), "box:/greeting"]).ok();
    d.run(&["cp", &h("in-volume"), "box:/data/in-volume"]).ok();
    d.run(&["cp", &h("tree"), "box:/srv"]).ok();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| d.run(&["cp", "box:/runs", &h("runs.out")]));
        let b = s.spawn(|| d.run(&["cp", "box:/srv", &h("srv.out")]));
        (a.join().unwrap(), b.join().unwrap())
    });
    a.ok();
    b.ok();
    assert_eq!(
        std::fs::read_to_string(host.join("runs.out")).unwrap(),
        "run\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("srv.out/sub/deep.txt")).unwrap(),
        "deep\n"
    );
    let r = d.run(&["cp", "box:/no/such", &h("x")]);
    assert_eq!(r.code, 3, "missing path: {}", r.stderr);
    let tar = host.join("box.tar");
    d.run(&["export", "-o", &tar.display().to_string(), "box"])
        .ok();
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in archive.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    for want in ["bin/busybox", "greeting", "runs", "srv/sub/deep.txt"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} in export: {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("proc/") || n.starts_with("data/")),
        "export stays on the root filesystem: {names:?}"
    );
    // The record did not move: same state, exit code and finish time.
    let after = inspect(&d, "box");
    for k in ["status", "exit_code", "finished_at", "started_at"] {
        assert_eq!(after[k], before[k], "{k} changed by cp/export");
    }
    // Other commands see a stopped container.
    let r = d.run(&["exec", "box", "true"]);
    assert_eq!(r.code, 5, "exec into a stopped container: {}", r.stderr);

    // Start right away: it waits for the files-only helper (which lingers a
    // moment for further copies), then sees what was written while stopped.
    let r = d.run(&["start", "-a", "box"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "bye\nkept in the volume\n2\n"),
        "{}",
        r.stderr
    );
    assert_eq!(files_helper(&d, "box"), None, "the files-only helper ended");
    // The volume's image is clean after the files VM wrote it.
    let img = d.root.path().join("volumes/boxvol/volume.img");
    containerization_ext4::e2fsck_check(&img).unwrap_or_else(|e| panic!("{e}"));

    // Left alone, a files-only helper ends shortly after its last client.
    d.run(&["cp", "box:/greeting", &h("greeting.out")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("greeting.out")).unwrap(),
        "bye\n"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_helper(&d, "box").is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        files_helper(&d, "box"),
        None,
        "the files-only helper ends by itself"
    );

    // rm of a stopped container whose files are open ends the helper.
    d.run(&["cp", &h("greeting"), "box:/greeting"]).ok();
    let pid = files_helper(&d, "box");
    d.run(&["rm", "box"]).ok();
    if let Some(pid) = pid {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "helper {pid} left"
        );
    }
    assert!(!d.root.path().join("containers/box").exists());
    let procs = vm_processes(&[d.root.path().display().to_string()]);
    assert!(procs.is_empty(), "VM processes left: {procs:?}");
}
