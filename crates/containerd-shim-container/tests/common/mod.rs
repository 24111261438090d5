//! Harness shared by the tests and the bench: a private containerd (its own
//! root, state, sockets and config) with our shim on its PATH, `ctr` against
//! it, and the busybox fixture image imported.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The runtime type of our shim.
pub const RUNTIME: &str = "io.containerd.container.v2";

/// The workspace's top directory (for scripts/).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails, naming the script or package that provides a missing prerequisite.
pub fn check_prerequisites() {
    for (tool, hint) in [
        (
            "containerd",
            "apt-get install containerd (scripts/setup.sh --deps-only)",
        ),
        (
            "ctr",
            "apt-get install containerd (scripts/setup.sh --deps-only)",
        ),
        (
            "runc",
            "apt-get install runc (comes with containerd; scripts/setup.sh)",
        ),
        (
            "qemu-system-x86_64",
            "apt-get install qemu-system-x86 (scripts/setup.sh)",
        ),
        (
            "vhost-device-vsock",
            "scripts/install-vhost-device-vsock.sh (run by scripts/setup.sh)",
        ),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "{tool} is not on PATH: {hint}");
    }
    if let Err(e) = containerization::Kernel::default_path() {
        panic!(
            "{} (scripts/build-kernel.sh builds the guest kernel)",
            e.message
        );
    }
    if let Err(e) = containerization::default_initfs() {
        panic!("{} (scripts/build-initfs.sh builds the initfs)", e.message);
    }
}

/// Runs `cmd`, killing it after `limit` (a hung daemon must not hang CI;
/// this is a guard, not an assertion on time).
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    run_with_input(cmd, None, limit)
}

/// [`run_with_limit`] with `input` written to the command's stdin (then closed).
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let (Some(data), Some(mut w)) = (input, child.stdin.take()) {
        use std::io::Write;
        w.write_all(data).expect("write the command's stdin");
    }
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) with a pid we spawned and a valid signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait for command");
    let _ = tx.send(());
    out
}

/// A private containerd, stopped (and its leftovers removed) on drop.
pub struct Containerd {
    /// Everything of this daemon lives under here.
    pub dir: tempfile::TempDir,
    /// gRPC socket.
    pub socket: PathBuf,
    /// Namespace the tests use.
    pub namespace: String,
    child: Child,
}

impl Containerd {
    /// Starts containerd with the shim binary's directory first on its PATH.
    pub fn start(shim_binary: &Path) -> Containerd {
        check_prerequisites();
        let dir = tempfile::Builder::new()
            .prefix("ctrd-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let socket = dir.path().join("c.sock");
        let config = dir.path().join("config.toml");
        // No CRI (no host network, no CNI); only the overlayfs and native
        // snapshotters are needed.
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{sock}.debug"
  level = "debug"
[metrics]
  address = ""
"#,
                root = dir.path().join("root").display(),
                state = dir.path().join("state").display(),
                sock = socket.display(),
            ),
        )
        .unwrap();
        let shim_dir = shim_binary.parent().expect("shim dir").to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![shim_dir];
        dirs.extend(std::env::split_paths(&path));
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let namespace = format!("shimtest{}", std::process::id());
        let c = Containerd {
            dir,
            socket,
            namespace,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = c.ctr(&["version"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A `ctr` command against this daemon and namespace.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        cmd
    }

    /// Runs `ctr ARGS` (guarded by a generous limit).
    pub fn ctr(&self, args: &[&str]) -> Output {
        run_with_limit(&mut self.ctr_command(args), Duration::from_secs(300))
    }

    /// Runs `ctr ARGS` and fails unless it succeeds; returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds the busybox OCI image (scripts/build-busybox-image.sh) and
    /// imports it; returns its reference.
    pub fn import_busybox(&self) -> String {
        let layout = self.dir.path().join("busybox-oci");
        let script = workspace().join("scripts/build-busybox-image.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&layout)
            .output()
            .expect("run scripts/build-busybox-image.sh");
        assert!(
            out.status.success(),
            "scripts/build-busybox-image.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let archive = self.dir.path().join("busybox.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .expect("tar");
        assert!(tar.success(), "tar of the busybox layout failed");
        let base = "localhost/busybox";
        self.ctr_ok(&[
            "image",
            "import",
            "--base-name",
            base,
            archive.to_str().unwrap(),
        ]);
        let reference = format!("{base}:latest");
        let list = self.ctr_ok(&["image", "ls", "-q"]);
        assert!(
            list.lines().any(|l| l.trim() == reference),
            "imported image {reference} not listed: {list}"
        );
        reference
    }

    /// Shim processes serving this daemon's namespace.
    pub fn shim_pids(&self) -> Vec<u32> {
        processes_matching(&["containerd-shim-container-v2", &self.namespace])
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        for pid in self.shim_pids() {
            // SAFETY: kill(2) of a shim this test's containerd started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // Snapshot mounts under the root would keep the temp dir busy.
        let root = self.dir.path().to_string_lossy().into_owned();
        for m in mounts_under(&root).into_iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Pids of processes whose command line contains every one of `needles`.
pub fn processes_matching(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            continue;
        }
        if needles.iter().all(|n| cmdline.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// Mount points below `prefix`.
pub fn mounts_under(prefix: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(prefix))
        .collect()
}

/// Polls `f` until it returns true (a guard limit of 120 s fails the test).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
