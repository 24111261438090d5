//! Faults: SIGKILL of a runtime helper, of its QEMU, and of the apiserver
//! during `image load` and during `run`, of a bind mount's virtiofsd; a state root that runs out of
//! space under `image pull` and `image load`. After each, `ls -a` and
//! `inspect` tell the truth, the next command works, `rm` works, and no
//! process, mount, partial blob or partial snapshot is left behind.
//! Also: SIGKILL of the apiserver during `rm` and `image pull`, of QEMU
//! during volume writes (no synced record lost, the ext4 clean), and TAPs,
//! nftables rules and leases after a killed helper or QEMU.
//! One daemon per test; the network one in a namespace of its own.

mod common;
#[path = "common/oci.rs"]
mod oci;
#[path = "common/procs.rs"]
mod procs;
#[path = "common/soak.rs"]
mod soak;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, Registry, assert_clear_error, busybox_layout};
use procs::Proc;

const BUSYBOX: &str = "localhost/busybox:latest";

fn inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let out = d.run(&["inspect", id]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn kill(pid: u32) {
    // SAFETY: plain kill(2) of a process this test started (directly or
    // through the daemon).
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

fn apiserver(d: &Daemon) -> Proc {
    let pid = std::fs::read_to_string(d.root.path().join("apiserver.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Proc::of(pid).expect("the apiserver runs")
}

/// SIGKILLs the apiserver and waits until it is gone.
fn kill_apiserver(d: &Daemon) {
    let a = apiserver(d);
    kill(a.pid);
    let left = procs::wait_gone(&BTreeSet::from([a]), 10);
    assert!(left.is_empty(), "apiserver survived SIGKILL: {left:?}");
}

/// Polls `f` every few milliseconds for up to `secs`.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The content store holds only complete, correct blobs; nothing partial
/// is left in ingest or among the snapshots; the daemon lists images.
fn assert_store_clean(d: &Daemon) {
    let root = d.root.path();
    let ingest = procs::files_under(&root.join("content/ingest"));
    assert!(ingest.is_empty(), "partial data left in ingest: {ingest:?}");
    for e in std::fs::read_dir(root.join("content/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let digest = oci::digest_of(std::fs::File::open(e.path()).unwrap());
        assert_eq!(
            format!("sha256:{}", e.file_name().to_string_lossy()),
            digest,
            "a blob does not match its name"
        );
    }
    for e in std::fs::read_dir(root.join("snapshots"))
        .into_iter()
        .flatten()
    {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == ".locks" {
            continue;
        }
        let files = procs::files_under(&p);
        assert!(
            files.iter().any(|f| f == "rootfs.ext4")
                && !files.iter().any(|f| f.starts_with(".tmp-")),
            "partial snapshot {}: {files:?}",
            p.display()
        );
    }
    d.run(&["image", "ls"]).ok();
}

/// The helper of `id` and everything it runs (QEMU, vhost-device-vsock,
/// virtiofsd, the reaper); checks QEMU and the vsock backend are among them.
fn vm_family(d: &Daemon, id: &str) -> BTreeSet<Proc> {
    let pid = inspect(d, id)["helper_pid"].as_u64().expect("helper_pid") as u32;
    let family = procs::family(pid);
    let lines: Vec<String> = family.iter().map(|p| p.cmdline()).collect();
    for name in ["qemu-system-x86_64", "vhost-device-vsock"] {
        assert!(
            lines.iter().any(|l| l.contains(name)),
            "{name} runs under the helper of {id}: {lines:?}"
        );
    }
    family
}

/// The VM runtime directory (sockets, QEMU log) named in QEMU's command line.
fn vm_dir(family: &BTreeSet<Proc>) -> PathBuf {
    let qemu = family
        .iter()
        .map(|p| p.cmdline())
        .find(|l| l.contains("qemu-system"))
        .unwrap();
    let sock = qemu
        .split([' ', ','])
        .find_map(|a| {
            a.strip_prefix("path=")
                .filter(|p| p.ends_with("vhost.sock"))
        })
        .expect("the vsock chardev path");
    Path::new(sock).parent().unwrap().to_path_buf()
}

/// Nothing of the daemon but the apiserver runs; no mount remains.
fn assert_nothing_left(d: &Daemon) {
    let root = d.root.path().to_str().unwrap();
    let me = apiserver(d);
    let others: Vec<String> = procs::mentioning(root)
        .into_iter()
        .filter(|p| *p != me)
        .map(|p| format!("{} {}", p.pid, p.cmdline()))
        .collect();
    assert!(others.is_empty(), "processes left: {others:?}");
    let mounts = procs::mounts_under(root);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}

/// Loads the busybox fixture image into `d` as `BUSYBOX`.
fn load_busybox(d: &Daemon) {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("busybox.tar");
    oci::layout_archive(busybox_layout(), BUSYBOX, &archive);
    d.run(&["image", "load", "-i", archive.to_str().unwrap()])
        .ok();
}

/// `e2fsck -fn` finds the ext4 image clean.
fn assert_fsck_clean(image: &Path, when: &str) {
    containerization_ext4::e2fsck_check(image).unwrap_or_else(|e| panic!("{when}: {e}"));
}

#[test]
fn sigkill_of_helper_qemu_and_apiserver_leaves_truthful_state_and_no_orphans() {
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::started();
    load_busybox(&d);

    // 1. SIGKILL of the runtime helper: its VM goes with it.
    d.run(&["run", "-d", "--name", "k-helper", BUSYBOX, "sleep", "1000"])
        .ok();
    let family = vm_family(&d, "k-helper");
    let dir = vm_dir(&family);
    assert!(dir.is_dir(), "{}", dir.display());
    let helper = inspect(&d, "k-helper")["helper_pid"].as_u64().unwrap() as u32;
    kill(helper);
    let left = procs::wait_gone(&family, 15);
    assert!(left.is_empty(), "left after the helper's SIGKILL: {left:?}");
    wait_for(5, "the VM's runtime directory to go", || !dir.exists());
    let ls = d.run(&["ls", "-a"]).ok();
    assert!(ls.contains("k-helper") && ls.contains("stopped"), "{ls}");
    let v = inspect(&d, "k-helper");
    assert_eq!(v["status"], "stopped", "{v}");
    assert!(v["exit_code"].is_null(), "no exit code was observed: {v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or("")
            .contains("runtime helper"),
        "{v}"
    );

    // 2. SIGKILL of QEMU: the helper notices, records why, and ends.
    d.run(&["run", "-d", "--name", "k-qemu", BUSYBOX, "sleep", "1000"])
        .ok();
    let family = vm_family(&d, "k-qemu");
    let dir = vm_dir(&family);
    let qemu = family
        .iter()
        .find(|p| p.cmdline().contains("qemu-system"))
        .unwrap();
    kill(qemu.pid);
    let left = procs::wait_gone(&family, 60);
    assert!(left.is_empty(), "left after QEMU's SIGKILL: {left:?}");
    wait_for(5, "the VM's runtime directory to go", || !dir.exists());
    let v = inspect(&d, "k-qemu");
    assert_eq!(v["status"], "stopped", "{v}");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("VM"),
        "the reason names the VM: {v}"
    );

    // --rm container whose helper dies: removed, as --rm promises.
    d.run(&[
        "run", "-d", "--rm", "--name", "k-rm", BUSYBOX, "sleep", "1000",
    ])
    .ok();
    let family = vm_family(&d, "k-rm");
    kill(inspect(&d, "k-rm")["helper_pid"].as_u64().unwrap() as u32);
    assert!(procs::wait_gone(&family, 15).is_empty());
    let r = d.run(&["inspect", "k-rm"]);
    assert_eq!(r.code, 3, "not found: {} {}", r.stdout, r.stderr);
    assert!(!d.root.path().join("containers/k-rm").exists());

    // The next run works.
    let r = d.run(&["run", "--rm", BUSYBOX, "echo", "next-run"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "next-run"), "{}", r.stderr);

    // 3. SIGKILL of virtiofsd, the daemon of a bind mount: the container
    // keeps running on its own root, `stop` and `rm` work, and nothing of
    // its VM is left.
    let share = work.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("f"), "shared\n").unwrap();
    let bind = format!("{}:/data", share.display());
    d.run(&[
        "run", "-d", "--name", "k-vfs", "-v", &bind, BUSYBOX, "sleep", "1000",
    ])
    .ok();
    let r = d.run(&["exec", "k-vfs", "cat", "/data/f"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "shared\n"), "{}", r.stderr);
    let family = vm_family(&d, "k-vfs");
    let vfs = family
        .iter()
        .find(|p| p.cmdline().contains("virtiofsd"))
        .expect("virtiofsd runs under the helper");
    kill(vfs.pid);
    let r = d.run(&["exec", "k-vfs", "echo", "root-still-works"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "root-still-works"),
        "{}",
        r.stderr
    );
    d.run(&["stop", "-t", "2", "k-vfs"]).ok();
    assert_eq!(inspect(&d, "k-vfs")["status"], "stopped");
    d.run(&["rm", "k-vfs"]).ok();
    let left = procs::wait_gone(&family, 30);
    assert!(left.is_empty(), "left after virtiofsd's SIGKILL: {left:?}");
    assert_eq!(
        std::fs::read_to_string(share.join("f")).unwrap(),
        "shared\n"
    );

    // 4. SIGKILL of the apiserver during `image load`: first while blobs are
    // copied into the store, then while the image's snapshot is unpacked.
    let big = work.path().join("big.tar");
    let layer = oci::tar(&[oci::Member::file("big", &oci::noise(48 << 20, 7))]);
    oci::archive(&big, "localhost/big:1", &[layer]);
    // (what to wait for, the directory, how a partial file's path looks)
    let phases = [
        ("a partial blob in ingest", "content/ingest", "ingest-"),
        ("a partial snapshot", "snapshots", "/.tmp-"),
    ];
    let args = ["image", "load", "-i", big.to_str().unwrap()];
    for (phase, dir, mark) in phases {
        let child = d.spawn(&args);
        let dir = d.root.path().join(dir);
        wait_for(120, phase, || {
            procs::files_under(&dir).iter().any(|f| {
                if mark.starts_with('/') {
                    f.contains(mark)
                } else {
                    f.starts_with(mark)
                }
            })
        });
        kill_apiserver(&d);
        let r = d.finish(child, &args);
        assert_clear_error(&r, "load cut by the apiserver's death");
        assert!(r.stderr.contains("apiserver"), "{}", r.stderr);
        d.run(&["system", "start"]).ok();
        assert_store_clean(&d);
        // Blobs come first, then the name, then the snapshot (a cache): an
        // image listed after the cut is complete.
        let images = d.run(&["image", "ls"]).ok();
        if phase.contains("blob") {
            assert!(!images.contains("localhost/big"), "{phase}: {images}");
        }
    }
    let loaded = d.run(&args).ok();
    assert!(loaded.contains("localhost/big"), "{loaded}");
    d.run(&["image", "rm", "localhost/big:1"]).ok();
    assert_store_clean(&d);

    // 5. SIGKILL of the apiserver during `run`, while the VM boots: the
    // helper carries on alone and the restarted apiserver finds it.
    let args = ["run", "-d", "--name", "k-boot", BUSYBOX, "sleep", "1000"];
    let child = d.spawn(&args);
    let log = d.root.path().join("containers/k-boot/runtime.log");
    wait_for(120, "the helper to start", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("runtime helper starting"))
    });
    kill_apiserver(&d);
    let r = d.finish(child, &args);
    assert_clear_error(&r, "run cut by the apiserver's death");
    d.run(&["system", "start"]).ok();
    // Its VM boots; the init waits for a client, as after `create`.
    let sock = d.root.path().join("containers/k-boot/runtime.sock");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !sock.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("k-boot's VM did not boot; runtime.log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = inspect(&d, "k-boot");
    assert_eq!(v["status"], "starting", "{v}");
    d.run(&["start", "k-boot"]).ok();
    assert_eq!(inspect(&d, "k-boot")["status"], "running");
    let r = d.run(&["exec", "k-boot", "echo", "alive"]);
    assert_eq!(r.stdout.trim(), "alive", "{}", r.stderr);

    // ... and cut while the container is being created: the record either
    // never became visible or is a complete container that starts.
    let args = ["create", "--name", "k-create", BUSYBOX, "true"];
    let child = d.spawn(&args);
    let cfg = d.root.path().join("containers/k-create/config.json");
    wait_for(120, "the bundle to appear", || cfg.exists());
    kill_apiserver(&d);
    let _ = d.finish(child, &args);
    d.run(&["system", "start"]).ok();
    let r = d.run(&["inspect", "k-create"]);
    if r.code == 0 {
        let r = d.run(&["start", "-a", "k-create"]);
        assert_eq!(r.code, 0, "a visible container is complete: {}", r.stderr);
    } else {
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(!d.root.path().join("containers/k-create").exists());
    }

    // 6. SIGKILL of the apiserver during `stop` (the init ignores SIGTERM,
    // so the stop waits out its -t): the CLI says the connection was lost,
    // the restarted apiserver tells the truth (still running, or stopped if
    // the helper finished the stop alone), a second stop ends it with the
    // SIGKILL's 137 recorded, and rm leaves nothing of its VM.
    d.run(&["run", "-d", "--name", "k-stop", BUSYBOX, "sleep", "1000"])
        .ok();
    let stop_family = vm_family(&d, "k-stop");
    let args = ["stop", "-t", "20", "k-stop"];
    let child = d.spawn(&args);
    std::thread::sleep(Duration::from_secs(2));
    kill_apiserver(&d);
    let r = d.finish(child, &args);
    assert_clear_error(&r, "stop cut by the apiserver's death");
    d.run(&["system", "start"]).ok();
    let v = inspect(&d, "k-stop");
    eprintln!("k-stop after the cut stop: {}", v["status"]);
    let helper_runs = stop_family
        .iter()
        .any(|p| p.alive() && p.cmdline().contains("qemu-system"));
    match v["status"].as_str() {
        Some("running") => {
            assert!(helper_runs, "listed running with no VM: {v}");
            let r = d.run(&["exec", "k-stop", "echo", "alive"]);
            assert_eq!(r.stdout.trim(), "alive", "{}", r.stderr);
            let r = d.run(&["stop", "-t", "1", "k-stop"]);
            // The helper may finish the first stop in the meantime.
            assert!(
                r.code == 0 || r.stderr.contains("not running"),
                "second stop: {}",
                r.stderr
            );
        }
        Some("stopped") => {}
        other => panic!("status after a cut stop: {other:?} in {v}"),
    }
    wait_for(60, "k-stop to be stopped", || {
        inspect(&d, "k-stop")["status"] == "stopped"
    });
    assert_eq!(inspect(&d, "k-stop")["exit_code"], 137);
    d.run(&["rm", "k-stop"]).ok();
    let left = procs::wait_gone(&stop_family, 30);
    assert!(left.is_empty(), "left after a cut stop: {left:?}");

    // rm works on all of them; nothing is left.
    let family = vm_family(&d, "k-boot");
    d.run(&["rm", "-f", "k-helper", "k-qemu", "k-boot"]).ok();
    let _ = d.run(&["rm", "k-create"]);
    assert!(procs::wait_gone(&family, 30).is_empty());
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    let bundles = procs::files_under(&d.root.path().join("containers"));
    assert!(bundles.is_empty(), "{bundles:?}");
    assert_nothing_left(&d);
    assert_store_clean(&d);
}

/// Runs `f` with a private mount namespace on this thread, so a tmpfs it
/// mounts is invisible to the host and vanishes with the thread's processes.
fn private_mounts() {
    // SAFETY: unshare and mount with constant, valid arguments; they affect
    // only this thread (CLONE_NEWNS unshares the thread's fs context too).
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare(CLONE_NEWNS)");
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0,
            "making / private"
        );
    }
}

fn mount_tmpfs(at: &Path, size_mib: u32) {
    let target = std::ffi::CString::new(at.to_str().unwrap()).unwrap();
    let opts = std::ffi::CString::new(format!("size={size_mib}m,mode=0700")).unwrap();
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mounting a tmpfs on {}", at.display());
}

#[test]
fn a_full_disk_gives_one_clear_error_and_nothing_half_written() {
    private_mounts();
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::new();
    mount_tmpfs(d.root.path(), 160);
    // 16 MiB stay free: neither 24 MiB image fits.
    let filler = d.root.path().join("filler");
    std::fs::write(&filler, vec![1u8; 144 << 20]).unwrap();
    d.run(&["system", "start"]).ok();

    let pulled = work.path().join("pulled.tar");
    let layer = oci::tar(&[oci::Member::file("data", &oci::noise(24 << 20, 1))]);
    oci::archive(&pulled, "localhost/pulled:1", &[layer]);
    let reg = Registry::start(None);
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", pulled.display()))
        .arg(format!("docker://{}/test/pulled:1", reg.host()))
        .status()
        .expect("skopeo is installed (scripts/setup.sh)");
    assert!(st.success());
    let loaded = work.path().join("loaded.tar");
    let layer = oci::tar(&[oci::Member::file("data", &oci::noise(24 << 20, 2))]);
    oci::archive(&loaded, "localhost/loaded:1", &[layer]);

    let pull = [
        "image".to_string(),
        "pull".into(),
        "--progress".into(),
        "none".into(),
        format!("{}/test/pulled:1", reg.host()),
    ];
    let pull: Vec<&str> = pull.iter().map(String::as_str).collect();
    let load = ["image", "load", "-i", loaded.to_str().unwrap()];
    for args in [&pull[..], &load[..]] {
        let r = d.run(args);
        assert_clear_error(&r, &args.join(" "));
        assert!(
            r.stderr.contains("No space left on device"),
            "{}: {}",
            args.join(" "),
            r.stderr
        );
        assert_store_clean(&d);
        let blobs = procs::files_under(&d.root.path().join("content/blobs/sha256"));
        assert!(
            blobs.is_empty(),
            "{}: blobs kept: {blobs:?}",
            args.join(" ")
        );
        assert_eq!(d.run(&["image", "ls", "-q"]).ok().trim(), "");
    }

    // Space freed: the same commands succeed.
    std::fs::remove_file(&filler).unwrap();
    for args in [&pull[..], &load[..]] {
        let r = d.run(args);
        assert_eq!(r.code, 0, "{}: {}", args.join(" "), r.stderr);
    }
    let images = d.run(&["image", "ls"]).ok();
    assert!(
        images.contains("test/pulled") && images.contains("localhost/loaded"),
        "{images}"
    );
    assert_store_clean(&d);
    d.run(&["system", "stop"]).ok();
    let target = std::ffi::CString::new(d.root.path().to_str().unwrap()).unwrap();
    // SAFETY: umount2(2) of the tmpfs this test mounted in its own namespace.
    unsafe {
        libc::umount2(target.as_ptr(), libc::MNT_DETACH);
    }
}

#[test]
fn soak_of_four_clients_leaves_no_growth() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("busybox.tar");
    oci::layout_archive(busybox_layout(), BUSYBOX, &archive);
    // The harness's daemon fixture only for its clean-up if this fails.
    let d = Daemon::new();
    let plan = soak::Plan {
        cli: env!("CARGO_BIN_EXE_container").into(),
        root: d.root.path().to_path_buf(),
        archive,
        image: BUSYBOX.into(),
        clients: 4,
        duration: None,
        iterations: Some(2),
        network: false,
    };
    let report = plan.run(|line| eprintln!("soak: {line}"));
    eprint!("{}", report.table());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.cycles, 8);
    let growth = report.growth();
    assert!(growth.is_empty(), "{growth:?}\n{}", report.table());
}

/// `ls -a` and `inspect` agree on `id`: either gone from both (and its
/// bundle with it) or listed `stopped`. Returns whether it still exists.
fn gone_or_stopped(d: &Daemon, id: &str) -> bool {
    let ls = d.run(&["ls", "-a"]).ok();
    let r = d.run(&["inspect", id]);
    if r.code == 3 {
        assert!(
            !ls.contains(id),
            "inspect says {id} is gone, ls lists it: {ls}"
        );
        let dir = d.root.path().join("containers").join(id);
        assert!(!dir.exists(), "{id} is gone but its bundle is left");
        return false;
    }
    assert_eq!(r.code, 0, "inspect {id}: {}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["status"], "stopped", "{}", v[0]);
    assert!(ls.contains(id) && ls.contains("stopped"), "{ls}");
    true
}

#[test]
fn sigkill_of_the_apiserver_during_rm_and_pull_leaves_no_half_state() {
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::started();
    load_busybox(&d);

    // 1. `rm -f` of a running container, cut while the apiserver waits for
    // its helper to power the VM off.
    d.run(&["run", "-d", "--name", "r-run", BUSYBOX, "sleep", "1000"])
        .ok();
    let family = vm_family(&d, "r-run");
    let dir = vm_dir(&family);
    let log = d.root.path().join("containers/r-run/runtime.log");
    let before = std::fs::read_to_string(&log).unwrap_or_default().len();
    let args = ["rm", "-f", "r-run"];
    let child = d.spawn(&args);
    // The helper logs the init's end once the shutdown has reached it.
    wait_for(60, "the helper to take the shutdown", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.len() > before)
    });
    kill_apiserver(&d);
    let r = d.finish(child, &args);
    assert_clear_error(&r, "rm -f cut by the apiserver's death");
    assert!(r.stderr.contains("apiserver"), "{}", r.stderr);
    // The helper finishes the shutdown alone.
    let left = procs::wait_gone(&family, 60);
    assert!(left.is_empty(), "left after a cut rm -f: {left:?}");
    wait_for(10, "the VM's runtime directory to go", || !dir.exists());
    d.run(&["system", "start"]).ok();
    let exists = gone_or_stopped(&d, "r-run");
    eprintln!("r-run after the cut rm -f: exists={exists}");
    if exists {
        d.run(&["rm", "-f", "r-run"]).ok();
    }
    assert_eq!(d.run(&["inspect", "r-run"]).code, 3);

    // 2. `rm` of a stopped container, cut as soon as it is asked (its
    // delete takes milliseconds: the cut may come before or after it).
    d.run(&["run", "--name", "r-stopped", BUSYBOX, "true"]).ok();
    assert_eq!(inspect(&d, "r-stopped")["status"], "stopped");
    let args = ["rm", "r-stopped"];
    let child = d.spawn(&args);
    std::thread::sleep(Duration::from_millis(40));
    kill_apiserver(&d);
    let r = d.finish(child, &args);
    eprintln!("rm of r-stopped cut: code {} {}", r.code, r.stderr.trim());
    if r.code != 0 {
        assert_clear_error(&r, "rm cut by the apiserver's death");
    }
    d.run(&["system", "start"]).ok();
    if gone_or_stopped(&d, "r-stopped") {
        d.run(&["rm", "r-stopped"]).ok();
    }
    let bundles = procs::files_under(&d.root.path().join("containers"));
    assert!(bundles.is_empty(), "{bundles:?}");
    // The next run works.
    let r = d.run(&["run", "--rm", BUSYBOX, "echo", "next-run"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "next-run"), "{}", r.stderr);

    // 3. `image pull` from a real registry, cut while a layer is written.
    let big = work.path().join("pulled.tar");
    let layer = oci::tar(&[oci::Member::file("big", &oci::noise(48 << 20, 9))]);
    oci::archive(&big, "localhost/pulled:1", &[layer]);
    let reg = Registry::start(None);
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", big.display()))
        .arg(format!("docker://{}/test/pulled:1", reg.host()))
        .status()
        .expect("skopeo is installed (scripts/setup.sh)");
    assert!(st.success());
    let reference = format!("{}/test/pulled:1", reg.host());
    let args = ["image", "pull", "--progress", "none", reference.as_str()];
    let child = d.spawn(&args);
    let ingest = d.root.path().join("content/ingest");
    wait_for(120, "a partial blob in ingest", || {
        procs::files_under(&ingest)
            .iter()
            .any(|f| f.starts_with("ingest-"))
    });
    kill_apiserver(&d);
    let r = d.finish(child, &args);
    assert_clear_error(&r, "pull cut by the apiserver's death");
    assert!(r.stderr.contains("apiserver"), "{}", r.stderr);
    d.run(&["system", "start"]).ok();
    assert_store_clean(&d);
    let images = d.run(&["image", "ls"]).ok();
    assert!(!images.contains("test/pulled"), "{images}");
    let r = d.run(&args);
    assert_eq!(r.code, 0, "the same pull after the cut: {}", r.stderr);
    let images = d.run(&["image", "ls"]).ok();
    assert!(images.contains("test/pulled"), "{images}");
    d.run(&["image", "rm", &reference]).ok();
    assert_store_clean(&d);

    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    assert_nothing_left(&d);
}

/// The records a writer made durable (`sync`) before it said so, checked
/// from inside a container: prints `ok N bad B last L`.
const VERIFY_RECORDS: &str = r#"n=0; bad=0; last=0
while read -r k; do
  case "$k" in ''|*[!0-9]*) continue;; esac
  want=$( { echo "record $k"; head -c 65536 /dev/zero | tr '\0' x; echo "end $k"; } | md5sum)
  got=$(md5sum < /data/rec.$k 2>/dev/null)
  if [ "$want" = "$got" ]; then n=$((n+1)); else bad=$((bad+1)); echo "bad $k"; fi
  last=$k
done < /data/ack
echo "ok $n bad $bad last $last""#;

#[test]
fn sigkill_of_qemu_during_volume_writes_loses_no_synced_record() {
    let d = Daemon::started();
    load_busybox(&d);
    d.run(&["volume", "create", "kvol"]).ok();
    let image = d.root.path().join("volumes/kvol/volume.img");
    assert!(image.is_file(), "{}", image.display());

    // Each record is written and synced, then its number is appended to
    // the acknowledged file and synced, then said on stdout.
    let writer = r#"i=0
while :; do
  i=$((i+1))
  { echo "record $i"; head -c 65536 /dev/zero | tr '\0' x; echo "end $i"; } > /data/rec.$i
  sync
  echo $i >> /data/ack
  sync
  echo "acked $i"
done"#;
    d.run(&[
        "run",
        "-d",
        "--name",
        "v-writer",
        "-v",
        "kvol:/data",
        BUSYBOX,
        "sh",
        "-c",
        writer,
    ])
    .ok();
    let family = vm_family(&d, "v-writer");
    let dir = vm_dir(&family);
    let acked = |d: &Daemon| -> u64 {
        let logs = d.run(&["logs", "v-writer"]).stdout;
        logs.lines()
            .filter_map(|l| l.trim().strip_prefix("acked ")?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    wait_for(180, "20 acknowledged records", || acked(&d) >= 20);
    let qemu = family
        .iter()
        .find(|p| p.cmdline().contains("qemu-system"))
        .unwrap();
    // What the host saw acknowledged before the kill (more may follow).
    let seen = acked(&d);
    kill(qemu.pid);
    let left = procs::wait_gone(&family, 60);
    assert!(left.is_empty(), "left after QEMU's SIGKILL: {left:?}");
    wait_for(10, "the VM's runtime directory to go", || !dir.exists());
    let v = inspect(&d, "v-writer");
    assert_eq!(v["status"], "stopped", "{v}");

    // A new container on the volume (its mount replays the journal) finds
    // every acknowledged record whole.
    let r = d.run(&[
        "run",
        "--rm",
        "-v",
        "kvol:/data",
        BUSYBOX,
        "sh",
        "-c",
        VERIFY_RECORDS,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.stdout.trim().to_string();
    eprintln!("volume after QEMU's SIGKILL (host saw {seen} acked): {out}");
    let f: Vec<u64> = out
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [ok, bad, last] = f[..] else {
        panic!("verifier output: {out}")
    };
    assert_eq!(bad, 0, "damaged acknowledged records: {out}");
    assert!(last >= seen, "acknowledged records missing: {out}");
    assert_eq!(ok, last, "the acknowledged file has gaps: {out}");

    // Unmounted by that container's stop: the ext4 image is clean.
    assert_fsck_clean(&image, "after the kill");

    d.run(&["rm", "v-writer"]).ok();
    d.run(&["volume", "rm", "kvol"]).ok();
    assert!(!image.exists());
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    assert_nothing_left(&d);
}

/// Moves this thread, and everything it spawns from now on, into a fresh
/// network namespace with loopback up (as `network_cli.rs` does); panics
/// rather than ever running in the host's namespace.
fn private_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) failed: network tests need root");
    let ok = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2) is installed");
    assert!(ok.success());
}

/// Output of a command run in this thread's namespaces.
fn output_of(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The TAP and bare address of `id`'s interface.
fn tap_and_ip(d: &Daemon, id: &str) -> (String, String) {
    let n = &inspect(d, id)["configuration"]["networks"][0];
    let tap = n["tap"].as_str().expect("a TAP").to_string();
    let ip = n["address"].as_str().unwrap().split('/').next().unwrap();
    (tap, ip.to_string())
}

/// No link, nftables rule or set names `tap` or `ip`.
fn assert_no_network_left(tap: &str, ip: &str) {
    let links = output_of("ip", &["-br", "link"]);
    assert!(!links.contains(tap), "TAP {tap} left: {links}");
    let rules = output_of("nft", &["list", "ruleset"]);
    assert!(
        !rules.contains(tap)
            && !rules.contains(&format!("{ip} "))
            && !rules.contains(&format!("{ip},")),
        "nftables still names {tap} or {ip}: {rules}"
    );
}

#[test]
fn taps_rules_and_leases_go_after_a_killed_helper_or_qemu() {
    private_netns();
    let d = Daemon::started();
    load_busybox(&d);
    d.run(&["network", "create", "--subnet", "10.77.0.0/24", "knet"])
        .ok();
    let leases = d.root.path().join("networks/knet.json");

    // SIGKILL of the helper, then of QEMU: each container takes the first
    // free address, the second the address the first held.
    let mut first_ip = None;
    for (id, victim) in [("n-helper", "helper"), ("n-qemu", "qemu-system")] {
        d.run(&[
            "run",
            "-d",
            "--name",
            id,
            "--network",
            "knet",
            BUSYBOX,
            "sleep",
            "1000",
        ])
        .ok();
        let (tap, ip) = tap_and_ip(&d, id);
        if let Some(prev) = &first_ip {
            assert_eq!(&ip, prev, "{id} takes the address released by rm");
        }
        first_ip = Some(ip.clone());
        let links = output_of("ip", &["-br", "link"]);
        assert!(
            links.contains(&tap),
            "{tap} exists while {id} runs: {links}"
        );
        let family = vm_family(&d, id);
        let dir = vm_dir(&family);
        let pid = if victim == "helper" {
            inspect(&d, id)["helper_pid"].as_u64().unwrap() as u32
        } else {
            family
                .iter()
                .find(|p| p.cmdline().contains(victim))
                .unwrap()
                .pid
        };
        kill(pid);
        let left = procs::wait_gone(&family, 60);
        assert!(
            left.is_empty(),
            "left after the {victim}'s SIGKILL: {left:?}"
        );
        wait_for(10, "the VM's runtime directory to go", || !dir.exists());
        // The next look at it finds it stopped, and its TAP gone.
        assert_eq!(inspect(&d, id)["status"], "stopped");
        assert_no_network_left(&tap, &ip);
        // The stopped container keeps its address until rm.
        let held = std::fs::read_to_string(&leases).unwrap();
        assert!(held.contains(id), "{held}");
        d.run(&["rm", id]).ok();
        let held = std::fs::read_to_string(&leases).unwrap();
        assert!(
            !held.contains(id) && !held.contains(&format!("\"{ip}/")),
            "{held}"
        );
        assert_no_network_left(&tap, &ip);
    }
    d.run(&["network", "rm", "knet"]).ok();
    let links = output_of("ip", &["-br", "link"]);
    assert!(!links.contains("ctap"), "{links}");
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");
    assert_nothing_left(&d);
}

/// Runs the CLI and fails the test if it has not finished within `secs`
/// (a VM paused on a full disk would hang it for good).
fn run_within(d: &Daemon, args: &[&str], secs: u64) -> common::Run {
    let mut child = d.spawn(args);
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} hung for {secs} s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    d.finish(child, args)
}

/// Free bytes of the file system holding `p`.
fn free_bytes(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: statvfs(2) with a NUL-terminated path and a zeroed struct it fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are valid for the call.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// The sha256 of `path` in container `id`, as `sha256sum` prints it.
fn sha_in(d: &Daemon, id: &str, path: &str) -> String {
    let out = run_within(d, &["exec", id, "sha256sum", path], 120).ok();
    out.split_whitespace().next().unwrap_or("").to_string()
}

#[test]
fn a_full_disk_under_volume_writes_fails_the_writer_and_keeps_the_volume() {
    private_mounts();
    let d = Daemon::new();
    mount_tmpfs(d.root.path(), 256);
    d.run(&["system", "start"]).ok();
    load_busybox(&d);
    d.run(&["volume", "create", "-s", "192M", "fullvol"]).ok();
    let image = d.root.path().join("volumes/fullvol/volume.img");
    assert!(image.is_file(), "{}", image.display());
    let vol = "fullvol:/data";
    d.run(&[
        "run", "-d", "--name", "vw", "-v", vol, BUSYBOX, "sleep", "1000",
    ])
    .ok();
    d.run(&["run", "-d", "--name", "bystander", BUSYBOX, "sleep", "1000"])
        .ok();
    // Acknowledged before the disk fills: written and fsynced.
    run_within(
        &d,
        &[
            "exec",
            "vw",
            "dd",
            "if=/dev/urandom",
            "of=/data/kept",
            "bs=1M",
            "count=4",
            "conv=fsync",
        ],
        120,
    )
    .ok();
    let kept = sha_in(&d, "vw", "/data/kept");

    // Fill the host file system but for 8 MiB; the volume has ~180 MiB free.
    let filler = d.root.path().join("filler");
    let fill = free_bytes(d.root.path()).saturating_sub(8 << 20);
    std::fs::write(&filler, vec![7u8; fill as usize]).unwrap();
    let started = Instant::now();
    let w = run_within(
        &d,
        &[
            "exec",
            "vw",
            "dd",
            "if=/dev/urandom",
            "of=/data/big",
            "bs=1M",
            "count=64",
            "conv=fsync",
        ],
        180,
    );
    eprintln!(
        "writer: exit {} after {:?}: {}",
        w.code,
        started.elapsed(),
        w.stderr.trim()
    );
    assert_ne!(w.code, 0, "the writer failed: {}", w.stdout);
    assert!(
        ["Input/output error", "I/O error", "Read-only file system"]
            .iter()
            .any(|m| w.stderr.contains(m)),
        "the writer was told why: {}",
        w.stderr
    );

    // Everything still answers, on the full disk.
    assert_eq!(sha_in(&d, "vw", "/data/kept"), kept, "fsynced data intact");
    let ls = d.run(&["ls"]).ok();
    assert!(ls.contains("vw") && ls.contains("bystander"), "{ls}");
    run_within(&d, &["exec", "bystander", "echo", "still here"], 120).ok();
    run_within(&d, &["exec", "vw", "ls", "/data"], 120).ok();

    // Space freed (the daemon's own database shares the full file system:
    // its writes fail until then): stop and rm work, and a new container
    // writes and reads the same volume.
    std::fs::remove_file(&filler).unwrap();
    run_within(&d, &["stop", "-t", "2", "vw"], 120).ok();
    assert_eq!(inspect(&d, "vw")["status"], "stopped");
    run_within(&d, &["rm", "vw"], 60).ok();
    let out = run_within(
        &d,
        &[
            "run", "--rm", "-v", vol, BUSYBOX, "sh", "-c",
            "sha256sum /data/kept && dd if=/dev/urandom of=/data/new bs=1M count=8 conv=fsync 2>/dev/null && cat /data/new > /data/copy && sync && cmp /data/new /data/copy && echo written",
        ],
        180,
    )
    .ok();
    assert!(out.contains(&kept), "kept survives a new container: {out}");
    assert!(out.trim_end().ends_with("written"), "{out}");
    run_within(&d, &["stop", "-t", "2", "bystander"], 120).ok();
    run_within(&d, &["rm", "bystander"], 60).ok();
    assert_fsck_clean(&image, "after the full disk");
    // Nothing of either VM is left (the state root itself is our tmpfs).
    let me = apiserver(&d);
    let others: Vec<String> = procs::mentioning(d.root.path().to_str().unwrap())
        .into_iter()
        .filter(|p| *p != me)
        .map(|p| format!("{} {}", p.pid, p.cmdline()))
        .collect();
    assert!(others.is_empty(), "processes left: {others:?}");
    d.run(&["system", "stop"]).ok();
    let target = std::ffi::CString::new(d.root.path().to_str().unwrap()).unwrap();
    // SAFETY: umount2(2) of the tmpfs this test mounted in its own namespace.
    unsafe {
        libc::umount2(target.as_ptr(), libc::MNT_DETACH);
    }
}
