//! End to end through Debian's containerd and `ctr`: one private containerd
//! is shared by every step; four VMs boot in all.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Containerd, RUNTIME, eventually, mounts_under, processes_matching};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Nothing of task `id` is left: no QEMU, no shim, no mount.
fn assert_gone(d: &Containerd, id: &str) {
    eventually(&format!("the VM of {id} to exit"), || {
        // The VM's runtime directory starts with the id's first 12 characters.
        let prefix: String = id.chars().take(12).collect();
        processes_matching(&["qemu-system", &format!("/{prefix}")]).is_empty()
    });
    eventually(&format!("the shim of {id} to exit"), || {
        processes_matching(&["containerd-shim-container-v2", &d.namespace, id]).is_empty()
    });
    eventually(&format!("the VM runtime directory of {id} to go"), || {
        let prefix: String = id.chars().take(12).collect();
        std::fs::read_dir("/run/container/vm")
            .map(|dir| {
                !dir.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or(true)
    });
    let root = d.dir.path().to_string_lossy().into_owned();
    let left: Vec<_> = mounts_under(&root)
        .into_iter()
        .filter(|m| m.contains(id))
        .collect();
    assert!(left.is_empty(), "mounts left behind for {id}: {left:?}");
}

#[test]
fn ctr_runs_tasks_in_vms() {
    let shim = Path::new(env!("CARGO_BIN_EXE_containerd-shim-container-v2"));
    let d = Containerd::start(shim);
    let image = d.import_busybox();
    let events_log = d.dir.path().join("events.log");
    let mut events = d
        .ctr_command(&["events"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&events_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr events");
    // Short ids, distinct in their first 12 characters (see assert_gone).
    let id = |n: &str| format!("{n}{}", std::process::id());

    // 1. `ctr run --rm ... echo hi` prints hi and exits 0.
    let t1 = id("echo");
    let out = d.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        &image,
        &t1,
        "echo",
        "hi",
    ]);
    assert!(
        out.status.success(),
        "ctr run echo failed ({}): {}\ncontainerd log:\n{}",
        out.status,
        text(&out.stderr),
        d.log()
    );
    assert_eq!(text(&out.stdout), "hi\n");
    assert_gone(&d, &t1);

    // 2. The task's exit code is ctr's exit code.
    let t2 = id("exit3");
    let out = d.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        &image,
        &t2,
        "sh",
        "-c",
        "echo out; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert_gone(&d, &t2);

    // 3. A detached task outlives ctr.
    let t3 = id("detached");
    d.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        &image,
        &t3,
        "sleep",
        "1000",
    ]);
    let tasks = d.ctr_ok(&["task", "ls"]);
    let line = tasks
        .lines()
        .find(|l| l.starts_with(&t3))
        .unwrap_or_else(|| panic!("{t3} not in `ctr task ls`: {tasks}"));
    assert!(line.contains("RUNNING"), "{line}");

    // Pause and resume stop and continue the whole VM; metrics come from
    // the guest's cgroup.
    let status_of = |id: &str| -> String {
        let ls = d.ctr_ok(&["task", "ls"]);
        ls.lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    };
    d.ctr_ok(&["task", "pause", &t3]);
    assert_eq!(status_of(&t3), "PAUSED");
    d.ctr_ok(&["task", "resume", &t3]);
    assert_eq!(status_of(&t3), "RUNNING");
    let metrics = d.ctr_ok(&["task", "metrics", &t3]);
    assert!(metrics.contains("pids.current"), "{metrics}");

    // 4. exec: output and exit code.
    let out = d.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &t3,
        "sh",
        "-c",
        "echo from-exec; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-exec\n");

    // stdin reaches the process, and containerd's CloseIO ends it only
    // after the last byte.
    let out = common::run_with_input(
        &mut d.ctr_command(&["task", "exec", "--exec-id", "e3", &t3, "cat"]),
        Some(b"through stdin\n"),
        std::time::Duration::from_secs(300),
    );
    assert!(out.status.success(), "cat: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "through stdin\n");

    // 5. ps lists the init and a running exec; kill ends the exec.
    let mut long = d.ctr_command(&["task", "exec", "--exec-id", "e2", &t3, "sleep", "1000"]);
    let mut long = long
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctr task exec e2");
    eventually("`ctr task ps` to list the exec", || {
        let ps = d.ctr_ok(&["task", "ps", &t3]);
        ps.lines().skip(1).filter(|l| !l.trim().is_empty()).count() == 2
    });
    d.ctr_ok(&[
        "task",
        "kill",
        "--exec-id",
        "e2",
        "--signal",
        "SIGKILL",
        &t3,
    ]);
    let status = long.wait().expect("wait for ctr exec");
    assert_eq!(status.code(), Some(137), "exec killed by SIGKILL");
    let ps = d.ctr_ok(&["task", "ps", &t3]);
    assert_eq!(
        ps.lines().skip(1).filter(|l| !l.trim().is_empty()).count(),
        1,
        "{ps}"
    );

    // 6. kill the task; it stops; delete leaves no VM, shim or mount.
    d.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &t3]);
    eventually("the task to stop", || {
        let ls = d.ctr_ok(&["task", "ls"]);
        ls.lines()
            .any(|l| l.starts_with(&t3) && l.contains("STOPPED"))
    });
    d.ctr_ok(&["task", "delete", &t3]);
    d.ctr_ok(&["container", "delete", &t3]);
    assert_gone(&d, &t3);
    assert!(d.shim_pids().is_empty(), "shims left: {:?}", d.shim_pids());
    // 7. A shim that dies takes its VM with it, and containerd's cleanup
    // (the shim's `delete` action) leaves nothing behind either.
    let t4 = id("crash");
    d.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        &image,
        &t4,
        "sleep",
        "1000",
    ]);
    let shims = processes_matching(&["containerd-shim-container-v2", &d.namespace, &t4]);
    assert_eq!(shims.len(), 1, "one shim for {t4}: {shims:?}");
    // SAFETY: kill(2) of the shim process our containerd started for t4.
    unsafe { libc::kill(shims[0] as i32, libc::SIGKILL) };
    eventually("containerd to notice the dead shim", || {
        let ls = d.ctr_ok(&["task", "ls"]);
        !ls.lines()
            .any(|l| l.starts_with(&t4) && l.contains("RUNNING"))
    });
    let _ = d.ctr(&["task", "delete", &t4]);
    d.ctr_ok(&["container", "delete", &t4]);
    assert_gone(&d, &t4);

    // The shim's events reached containerd.
    // SAFETY: kill(2) of the `ctr events` child we spawned.
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let _ = events.wait();
    let seen = std::fs::read_to_string(&events_log).unwrap_or_default();
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(seen.contains(topic), "no {topic} event in:\n{seen}");
    }
    let images = d.dir.path().join("state");
    let leftover = Command::new("find")
        .arg(&images)
        .args(["-name", "rootfs.ext4"])
        .output()
        .expect("find");
    assert!(
        text(&leftover.stdout).trim().is_empty(),
        "rootfs images left: {}",
        text(&leftover.stdout)
    );
}
