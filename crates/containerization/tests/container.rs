//! LinuxContainer end to end: real QEMU (TCG here), the real agent, a busybox
//! image unpacked through the snapshot store. `containers_end_to_end` boots
//! two VMs shared across assertions; `restart_files_and_get` boots four, one
//! per life of the same container.

mod common;

use std::time::{Duration, Instant};

use containerization::{Code, ContainerManager, LinuxContainer, Mount, State, Stdio};

async fn exec_output(c: &LinuxContainer, id: &str, script: &str) -> (i32, String, String) {
    let (out, out_buf) = Stdio::buffer();
    let (err, err_buf) = Stdio::buffer();
    let p = c
        .exec(id, |p| {
            p.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
            p.stdout = out;
            p.stderr = err;
            Ok(())
        })
        .await
        .unwrap();
    p.start().await.unwrap();
    let status = p.wait(Some(Duration::from_secs(120))).await.unwrap();
    p.delete().await.unwrap();
    (status.exit_code, out_buf.text(), err_buf.text())
}

fn manager(root: &std::path::Path) -> ContainerManager {
    let kernel = common::kernel();
    let initfs = Mount::block("cpio", common::initfs(), "/", vec![]);
    ContainerManager::with_root(kernel, initfs, Some(root.to_path_buf()), None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let reference = common::load_busybox_image(root.path());
    let manager = manager(root.path());

    // A long-running container that ignores SIGTERM.
    let long = manager
        .create("long", &reference, None, |c| {
            c.process.args = vec![
                "/bin/sh".into(),
                "-c".into(),
                "trap '' TERM; while :; do sleep 1; done".into(),
            ];
            c.memory_in_bytes = 512 << 20;
            c.stop_timeout = Duration::from_secs(2);
            Ok(())
        })
        .await
        .unwrap();
    assert!(
        std::fs::metadata(root.path().join("containers/long/rootfs.qcow2"))
            .unwrap()
            .len()
            < 4 << 20,
        "the rootfs is a thin overlay"
    );
    long.create().await.unwrap();
    long.start().await.unwrap();
    let err = long.start().await.unwrap_err();
    assert!(err.is_code(Code::InvalidState), "starting twice: {err}");

    // Exec into the running container.
    let (code, out, _) = exec_output(&long, "echo", "echo hello from exec; exit 3").await;
    assert_eq!((code, out.as_str()), (3, "hello from exec\n"));

    // A second container at the same time: output, stderr and exit code.
    let (out, out_buf) = Stdio::buffer();
    let (err, err_buf) = Stdio::buffer();
    let short = manager
        .create("short", &reference, None, |c| {
            c.process.args = vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 7".into(),
            ];
            c.process.stdout = out;
            c.process.stderr = err;
            Ok(())
        })
        .await
        .unwrap();
    short.create().await.unwrap();
    short.start().await.unwrap();
    let status = short.wait(Some(Duration::from_secs(120))).await.unwrap();
    assert_eq!(status.exit_code, 7);
    assert_eq!(
        (out_buf.text().as_str(), err_buf.text().as_str()),
        ("out\n", "err\n")
    );
    short.stop().await.unwrap();
    manager.delete("short").await.unwrap();
    assert!(!root.path().join("containers/short").exists());

    // Image contents seen in the guest equal the image.
    let (code, guest_tree, err) = exec_output(
        &long,
        "tree",
        "cd / && find . -xdev ! -path './lost+found*' | sort | while read f; do stat -c '%n %F %a %u %g' \"$f\"; done",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let host_tree = host_tree(root.path());
    // /proc, /sys and /dev are mount points in the guest: their modes are
    // those of the mounted filesystems, not of the image's directories.
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !["./proc ", "./sys ", "./dev "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_string)
            .collect()
    };
    let (g, h) = (strip(&guest_tree), strip(&host_tree));
    let only_guest: Vec<&String> = g.iter().filter(|l| !h.contains(l)).collect();
    let only_image: Vec<&String> = h.iter().filter(|l| !g.contains(l)).collect();
    assert!(
        only_guest.is_empty() && only_image.is_empty() && g.len() > 100,
        "guest rootfs differs from the image: only in guest {only_guest:?}, only in image {only_image:?}"
    );

    // Statistics change under load.
    let before = long.statistics().await.unwrap();
    let (code, _, _) = exec_output(
        &long,
        "load",
        "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done",
    )
    .await;
    assert_eq!(code, 0);
    let after = long.statistics().await.unwrap();
    assert!(
        after.cpu_usage_usec > before.cpu_usage_usec,
        "cpu usage did not grow: {before:?} -> {after:?}"
    );
    assert_eq!(after.memory_limit_bytes, 512 << 20);

    // The memory limit holds: a process hoarding more is OOM-killed.
    let (code, limit, _) = exec_output(&long, "limit", "cat /sys/fs/cgroup/memory.max").await;
    assert_eq!((code, limit.trim()), (0, "536870912"));
    // A string doubling past 512 MiB: the OOM killer must end it (SIGKILL).
    let (code, _, _) = exec_output(
        &long,
        "hog",
        "awk 'BEGIN { s = \"xxxxxxxxxxxxxxxx\"; for (i = 0; i < 26; i++) s = s s; print length(s) }'",
    )
    .await;
    assert_eq!(
        code,
        128 + 9,
        "hoarding 1 GiB under a 512 MiB limit must be OOM-killed"
    );
    let stats = long.statistics().await.unwrap();
    assert!(stats.memory_usage_bytes <= 512 << 20);

    // Pause stops all progress; resume continues.
    let (code, _, _) = exec_output(
        &long,
        "ticker",
        "(while :; do echo x >> /tmp/ticks; sleep 0.05; done) > /dev/null 2>&1 &",
    )
    .await;
    assert_eq!(code, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n1, _) = exec_output(&long, "n1", "wc -l < /tmp/ticks").await;
    // A host connection that closes while the VM is paused (as the stdio
    // connections of a just-finished exec can): the vsock device must
    // still work after the resume.
    let extra = long.dial_vsock(vminitd_api::AGENT_PORT).await.unwrap();
    long.pause().await.unwrap();
    drop(extra);
    assert_eq!(long.state().await, State::Paused);
    let err = long.exec("nope", |p| {
        p.args = vec!["true".into()];
        Ok(())
    });
    assert!(err.await.unwrap_err().is_code(Code::InvalidState));
    tokio::time::sleep(Duration::from_secs(3)).await;
    long.resume().await.unwrap();
    let (_, n2, _) = tokio::time::timeout(
        Duration::from_secs(60),
        exec_output(&long, "n2", "wc -l < /tmp/ticks"),
    )
    .await
    .expect("no answer after resume: the vsock device stopped working");
    let (n1, n2): (u64, u64) = (n1.trim().parse().unwrap(), n2.trim().parse().unwrap());
    // 3 s unpaused would add ~60 ticks; paused it adds only what runs
    // between the reads and the pause/resume.
    assert!(n2 - n1 < 20, "ticks advanced while paused: {n1} -> {n2}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, n3, _) = exec_output(&long, "n3", "wc -l < /tmp/ticks").await;
    assert!(
        n3.trim().parse::<u64>().unwrap() > n2,
        "ticks did not resume"
    );

    // Stop a container that ignores SIGTERM: killed after the timeout.
    let t = Instant::now();
    long.stop().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stop did not wait for SIGTERM"
    );
    let status = long.wait(None).await.unwrap();
    assert_eq!(status.exit_code, 128 + 9);
    assert_eq!(long.state().await, State::Stopped);
    manager.delete("long").await.unwrap();
}

/// `stat` listing of the busybox image's layer, unpacked on the host.
fn host_tree(root: &std::path::Path) -> String {
    let dir = root.join("host-tree");
    std::fs::create_dir_all(&dir).unwrap();
    let layout = root.join("busybox-layout");
    let script = format!(
        "set -e; cd '{layout}'; m=$(sed 's/.*\"digest\":\"sha256:\\([0-9a-f]*\\)\".*/\\1/' index.json); \
         l=$(grep -o '\"layers\":\\[{{[^]]*' blobs/sha256/$m | grep -o 'sha256:[0-9a-f]*' | cut -d: -f2); \
         tar -C '{dir}' -xzf blobs/sha256/$l; cd '{dir}'; \
         find . | sort | while read f; do stat -c '%n %F %a %u %g' \"$f\"; done",
        layout = layout.display(),
        dir = dir.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One life of container `c`: (re)start with a fresh stdout buffer, wait,
/// stop; returns the exit code and the output.
async fn one_life(c: &LinuxContainer) -> (i32, String) {
    let (out, buf) = Stdio::buffer();
    c.reconfigure(|cfg| {
        cfg.files_only = false;
        cfg.process.stdout = out;
        Ok(())
    })
    .await
    .unwrap();
    c.start().await.unwrap();
    let status = c.wait(Some(Duration::from_secs(120))).await.unwrap();
    c.stop().await.unwrap();
    assert_eq!(c.state().await, State::Stopped);
    (status.exit_code, buf.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_files_and_get() {
    let root = tempfile::tempdir().unwrap();
    let reference = common::load_busybox_image(root.path());
    let manager = manager(root.path());
    // Each life appends a line to /runs and prints the count, then the note
    // written into the stopped container (if any).
    let (out, first) = Stdio::buffer();
    let c = manager
        .create("again", &reference, None, |c| {
            c.process.args = vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo run >> /runs; wc -l < /runs; cat /note 2>/dev/null; exit 0".into(),
            ];
            c.process.stdout = out;
            c.memory_in_bytes = 128 << 20;
            Ok(())
        })
        .await
        .unwrap();
    c.create().await.unwrap();
    let err = c.reconfigure(|_| Ok(())).await.unwrap_err();
    assert!(
        err.is_code(Code::InvalidState),
        "reconfigure when created: {err}"
    );
    c.start().await.unwrap();
    c.wait(Some(Duration::from_secs(120))).await.unwrap();
    c.stop().await.unwrap();
    assert_eq!(first.text(), "1\n");

    // Bad input changes nothing.
    let err = c
        .reconfigure(|cfg| {
            cfg.process.args.clear();
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err}");

    // The same object restarted: a new VM on the same overlay.
    assert_eq!(one_life(&c).await, (0, "2\n".into()));

    // Stopped: its files are reachable with no program running.
    c.reconfigure(|cfg| {
        cfg.files_only = true;
        Ok(())
    })
    .await
    .unwrap();
    c.start().await.unwrap();
    let runs = c.stat_path("/runs").await.unwrap().expect("/runs exists");
    assert_eq!((runs.is_dir, runs.size), (false, 8));
    assert_eq!(c.stat_path("/nope").await.unwrap(), None);
    let src = root.path().join("note-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("note"), "written while stopped\n").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf", "-", "note"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    c.copy_in("/", std::io::Cursor::new(tar.stdout))
        .await
        .unwrap();
    let mut out = Vec::new();
    c.copy_out(
        "/runs",
        containerization::container::ArchiveShape::Path,
        false,
        &mut out,
    )
    .await
    .unwrap();
    assert!(
        out.windows(8).any(|w| w == b"run\nrun\n"),
        "copy_out of /runs"
    );
    c.stop().await.unwrap();

    // The holder ran nothing: the count is 3, not 4, and the note is there.
    assert_eq!(one_life(&c).await, (0, "3\nwritten while stopped\n".into()));

    // Another manager on the same root finds it, configured as created.
    drop(c);
    let other = self::manager(root.path());
    let image = other.image_store().await.get(&reference).unwrap();
    let c = other.get("again", &image).await.unwrap();
    assert_eq!(c.state().await, State::Initialized);
    assert_eq!(c.memory_in_bytes(), 128 << 20);
    assert_eq!(one_life(&c).await, (0, "4\nwritten while stopped\n".into()));
    other.delete("again").await.unwrap();
    assert!(!root.path().join("containers/again").exists());
    let err = other.get("again", &image).await.unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err}");
}
