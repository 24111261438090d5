//! Containers through the real CLI, daemon and runtime helper, with real
//! VMs (QEMU, TCG here). Needs the guest kernel (scripts/build-kernel.sh) and
//! initfs (scripts/build-initfs.sh); scripts/test.sh builds both. Two VMs in
//! all, shared across the assertions.

mod common;

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
        .unwrap_or_else(|_| common::workspace().join("build/initfs.cpio.gz"));
    std::fs::copy(&initfs, boot.path().join("mine.cpio.gz")).unwrap();
    std::fs::write(boot.path().join("notes.txt"), "not an initfs").unwrap();
    let r = d.run_in(
        boot.path(),
        &[
            "run",
            "--rm",
            "--init-image",
            "mine.cpio.gz",
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
