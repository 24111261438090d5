//! Test harness: a daemon per test on its own state root, a real local
//! registry, and the busybox fixture image.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root (for scripts/).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a prerequisite script; its stdout, or a failure naming the script.
pub fn script(name: &str, args: &[&str]) -> String {
    let path = workspace().join("scripts").join(name);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} failed (it provides this test's prerequisite): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The busybox OCI layout made by scripts/build-busybox-image.sh, built once
/// under cargo's test tmpdir and shared by the test binaries (keyed by the
/// script and the host's busybox, so a change of either builds a new one).
pub fn busybox_layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut key = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(workspace().join("scripts/build-busybox-image.sh"))
            .unwrap_or_default()
            .hash(&mut key);
        std::fs::metadata("/bin/busybox")
            .and_then(|m| m.modified())
            .ok()
            .hash(&mut key);
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("busybox-oci-{:016x}", key.finish()));
        if dir.join("index.json").is_file() {
            return dir;
        }
        // Built beside, then renamed: a concurrent builder's result wins whole.
        let staging = tempfile::Builder::new()
            .prefix(".busybox-oci-")
            .tempdir_in(tmp)
            .expect("tempdir");
        script(
            "build-busybox-image.sh",
            &[staging.path().to_str().unwrap()],
        );
        let staged = staging.keep();
        if std::fs::rename(&staged, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        dir
    })
}

/// A running `docker-registry` on 127.0.0.1, stopped on drop.
pub struct Registry {
    pub port: u16,
    pid: i32,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry, optionally with an htpasswd file.
    pub fn start(htpasswd: Option<&Path>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec![dir.path().to_str().unwrap().to_string()];
        if let Some(h) = htpasswd {
            args.push(h.to_str().unwrap().to_string());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = script("start-registry.sh", &argv);
        let mut parts = line.split_whitespace();
        let port = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port from start-registry.sh");
        let pid = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("pid from start-registry.sh");
        Registry {
            port,
            pid,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes the busybox fixture as `repo:tag` with skopeo.
    pub fn push_busybox(&self, repo_tag: &str, creds: Option<&str>) {
        let layout = busybox_layout();
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .expect("skopeo is installed (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy to the registry failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the registry process this test started.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
    }
}

/// A state root with its own apiserver (started on demand, stopped on drop).
pub struct Daemon {
    pub root: tempfile::TempDir,
    started: bool,
}

/// The outcome of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A failed command printed one clear error line, not a panic or a trace.
pub fn assert_clear_error(r: &Run, what: &str) {
    assert_ne!(r.code, 0, "{what} should fail: {}", r.stdout);
    let err = r.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    assert!(err.starts_with("Error: "), "{what}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: {err}"
    );
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

impl Daemon {
    /// A fresh state root; no daemon yet.
    pub fn new() -> Daemon {
        Daemon {
            root: tempfile::Builder::new()
                .prefix("container-root-")
                .tempdir()
                .expect("tempdir"),
            started: false,
        }
    }

    /// A fresh state root with a running daemon.
    pub fn started() -> Daemon {
        let mut d = Daemon::new();
        d.run(&["system", "start"]).ok();
        d.started = true;
        d
    }

    /// The CLI command with this root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_container"));
        c.args(args).env("CONTAINER_ROOT", self.root.path());
        // No default network (no bridge in the host's network namespace):
        // network tests start their daemon in a namespace of their own with
        // this overridden.
        c.env("CONTAINER_DEFAULT_SUBNET", "none");
        c
    }

    /// Runs the CLI with no stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(Path::new("."), args)
    }

    /// Runs the CLI with no stdin from the working directory `dir`.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let child = self
            .cmd(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running container");
        finish_within(child, args)
    }

    /// Starts the CLI in the background (for commands a test interrupts);
    /// collect it with [`Daemon::finish`].
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running container")
    }

    /// Waits for a CLI run started by [`Daemon::spawn`], within the limit.
    pub fn finish(&self, child: Child, args: &[&str]) -> Run {
        finish_within(child, args)
    }

    /// Runs the CLI feeding `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running container");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        finish_within(child, args)
    }
}

/// The longest any one CLI command may take in a test: a hang becomes a
/// failure naming the command and what it printed, not a stuck CI run.
const COMMAND_LIMIT: Duration = Duration::from_secs(600);

/// Waits for a CLI run started with piped stdout and stderr; past
/// [`COMMAND_LIMIT`] it is killed and the test fails.
fn finish_within(mut child: Child, args: &[&str]) -> Run {
    drop(child.stdin.take());
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let reader = std::thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        (buf, reader)
    };
    let (out, out_reader) = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let (err, err_reader) = collect(child.stderr.take().map(|p| Box::new(p) as _));
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for container") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`container {}` did not finish within {} s\nstdout: {}\nstderr: {}",
                args.join(" "),
                COMMAND_LIMIT.as_secs(),
                text(&out),
                text(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Output ends with the command, unless something it started (a daemon)
    // still holds the pipe: then take what arrived.
    let until = Instant::now() + Duration::from_secs(5);
    while !(out_reader.is_finished() && err_reader.is_finished()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    Run {
        code: status.code().unwrap_or(-1),
        stdout: text(&out),
        stderr: text(&err),
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers outlive the daemon by design: remove them explicitly.
        if self.root.path().join("containers.db").exists() {
            let _ = self.run(&["rm", "--all", "--force"]);
        }
        let _ = self.run(&["system", "stop"]);
        // Belt and braces: never leave a daemon behind a failed test.
        if let Some(pid) = std::fs::read_to_string(self.root.path().join("apiserver.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: plain kill(2) of the daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
