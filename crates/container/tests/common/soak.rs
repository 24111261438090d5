//! The soak: clients that start and stop containers in a loop against one
//! daemon, and the daemon's footprint before and after. Shared by
//! `examples/soak.rs` (the long run) and the short CI run in `tests/faults.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::procs;

/// The longest one CLI command may take (as in the test harness);
/// `SOAK_COMMAND_LIMIT` (seconds) overrides it.
fn command_limit() -> Duration {
    std::env::var("SOAK_COMMAND_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(600))
}

/// How long and how hard to soak.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `container` binary.
    pub cli: PathBuf,
    /// The state root (its daemon is started and stopped here).
    pub root: PathBuf,
    /// An OCI archive of the image the clients run, named `image`.
    pub archive: PathBuf,
    pub image: String,
    pub clients: usize,
    /// Stop after this long...
    pub duration: Option<Duration>,
    /// ... or after this many cycles per client.
    pub iterations: Option<u64>,
    /// Containers get a network interface (the default network).
    pub network: bool,
}

/// The daemon's footprint at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub apiserver_fds: usize,
    pub apiserver_rss_kib: u64,
    /// Bytes on disk under the state root, without `logs/`.
    pub state_bytes: u64,
    pub log_bytes: u64,
    /// Processes naming the state root (the apiserver, helpers, QEMUs).
    pub processes: usize,
    /// VM runtime directories of the soak's containers (named `soak-*`).
    pub vm_dirs: usize,
    /// Addresses held in the networks' IPAM.
    pub leases: usize,
    /// TAP devices of containers.
    pub taps: usize,
    /// Container records.
    pub containers: usize,
}

/// What a soak did and measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub before: Footprint,
    pub after: Footprint,
    pub cycles: u64,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl Plan {
    /// Runs the CLI; a run past `COMMAND_LIMIT` is killed and is an error.
    fn ok(&self, args: &[&str]) -> Result<String, String> {
        use std::io::Read;
        let mut c = Command::new(&self.cli);
        c.args(args)
            .env("CONTAINER_ROOT", &self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.network {
            c.env("CONTAINER_DEFAULT_SUBNET", "none");
        }
        let mut child = c.spawn().expect("running the container CLI");
        let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let err_reader = std::thread::spawn(move || {
            let mut e = String::new();
            let _ = pipes.1.read_to_string(&mut e);
            e
        });
        let out_reader = std::thread::spawn(move || {
            let mut o = String::new();
            let _ = pipes.0.read_to_string(&mut o);
            o
        });
        let limit = command_limit();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for the CLI") {
                break Some(st);
            }
            if Instant::now() > deadline {
                // What the stuck container's VM and helper last said.
                let name = args
                    .iter()
                    .position(|a| *a == "--name")
                    .and_then(|i| args.get(i + 1))
                    .or(args.last());
                if let Some(name) = name {
                    eprintln!("{}", self.diagnose(name));
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = |h: std::thread::JoinHandle<String>| {
            // A daemon the CLI started keeps the pipes open: do not wait on it.
            let until = Instant::now() + Duration::from_secs(5);
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                h.join().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let (out, err) = (text(out_reader), text(err_reader));
        match status {
            Some(st) if st.success() => Ok(out),
            Some(st) => Err(format!(
                "`container {}` failed ({st}): {}",
                args.join(" "),
                err.trim()
            )),
            None => Err(format!(
                "`container {}` did not finish within {} s (stderr: {:?})",
                args.join(" "),
                limit.as_secs(),
                err.trim()
            )),
        }
    }

    /// The tails of a container's boot log and helper log, and the
    /// processes naming it: printed when a command about it hangs.
    fn diagnose(&self, name: &str) -> String {
        let tail = |p: PathBuf| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            format!("--- {}:\n{}", p.display(), lines[from..].join("\n"))
        };
        let dir = self.root.join("containers").join(name);
        let ps = procs::mentioning(name)
            .iter()
            .map(|p| format!("{} {}", p.pid, p.cmdline()))
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "soak: `{name}` hangs\n{}\n{}\n--- processes:\n{ps}",
            tail(dir.join("bootlog")),
            tail(dir.join("runtime.log"))
        )
    }

    fn apiserver_pid(&self) -> u32 {
        std::fs::read_to_string(self.root.join("apiserver.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Measures the footprint once the daemon is idle.
    pub fn footprint(&self) -> Footprint {
        let pid = self.apiserver_pid();
        let logs = self.root.join("logs");
        let root = self.root.to_string_lossy().into_owned();
        let vm_runtime = if nix_is_root() {
            PathBuf::from("/run/container/vm")
        } else {
            std::env::temp_dir().join("container-vm")
        };
        let containers = self
            .ok(&["ls", "-a", "-q"])
            .map(|o| o.lines().count())
            .unwrap_or(usize::MAX);
        Footprint {
            apiserver_fds: procs::fd_count(pid),
            apiserver_rss_kib: procs::rss_kib(pid),
            state_bytes: procs::disk_use(&self.root) - procs::disk_use(&logs),
            log_bytes: procs::disk_use(&logs),
            processes: procs::mentioning(&root).len(),
            vm_dirs: std::fs::read_dir(vm_runtime)
                .map(|r| {
                    r.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("soak-"))
                        .count()
                })
                .unwrap_or(0),
            leases: leases(&self.root.join("networks")),
            // With --network the soak has a network namespace of its own;
            // without, containers get no TAP (and others' are not ours).
            taps: std::fs::read_dir("/sys/class/net")
                .ok()
                .filter(|_| self.network)
                .map(|r| {
                    r.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("ctap"))
                        .count()
                })
                .unwrap_or(0),
            containers,
        }
    }

    /// One client's cycle (one VM): odd cycles run a detached container,
    /// exec into it, stop and remove it; even ones a foreground `run --rm`.
    fn cycle(&self, client: &str, n: u64) -> Result<(), String> {
        // Named, so their VM runtime directories can be told from others'.
        let name = format!("soak-{client}-{n}");
        if n.is_multiple_of(2) {
            let out = self.ok(&["run", "--rm", "--name", &name, &self.image, "echo", "ok"])?;
            if out.trim() != "ok" {
                return Err(format!("run --rm printed {out:?}"));
            }
            return Ok(());
        }
        self.ok(&["run", "-d", "--name", &name, &self.image, "sleep", "600"])?;
        let out = self.ok(&["exec", &name, "echo", "alive"])?;
        if out.trim() != "alive" {
            return Err(format!("exec into {name} printed {out:?}"));
        }
        self.ok(&["stop", "-t", "2", &name])?;
        self.ok(&["rm", &name])?;
        Ok(())
    }

    /// Starts the daemon, loads the image, warms up, measures, soaks,
    /// measures again, and stops the daemon.
    pub fn run(&self, progress: impl Fn(&str) + Sync) -> Report {
        self.ok(&["system", "start"]).expect("starting the daemon");
        self.ok(&["image", "load", "-i", self.archive.to_str().unwrap()])
            .expect("loading the image");
        // Warm up (both kinds of cycle): the image's snapshot, the daemon's
        // pools and caches.
        for n in [1, 2] {
            if let Err(e) = self.cycle("w", n) {
                panic!("the warm-up cycle failed: {e}");
            }
        }
        settle();
        let before = self.footprint();
        progress(&format!("before: {before:?}"));
        let started = Instant::now();
        let cycles = AtomicU64::new(0);
        let failures = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for client in 0..self.clients {
                let (cycles, failures, progress) = (&cycles, failures.clone(), &progress);
                s.spawn(move || {
                    let mut n = 0;
                    loop {
                        let time_up = self.duration.is_some_and(|d| started.elapsed() >= d);
                        let done = self.iterations.is_some_and(|i| n >= i);
                        if time_up || done {
                            break;
                        }
                        n += 1;
                        if let Err(e) = self.cycle(&client.to_string(), n) {
                            progress(&format!("client {client}: {e}"));
                            failures.lock().unwrap().push(e);
                            // Leave nothing behind that the next cycle trips on.
                            let _ = self.ok(&["rm", "-f", &format!("soak-{client}-{n}")]);
                        }
                        let total = cycles.fetch_add(1, Ordering::SeqCst) + 1;
                        if total.is_multiple_of(20) {
                            progress(&format!(
                                "{total} cycles in {:.0} s",
                                started.elapsed().as_secs_f64()
                            ));
                        }
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        settle();
        let after = self.footprint();
        progress(&format!("after: {after:?}"));
        let _ = self.ok(&["rm", "--all", "--force"]);
        let _ = self.ok(&["system", "stop"]);
        let failures = failures.lock().unwrap().clone();
        Report {
            before,
            after,
            cycles: cycles.into_inner(),
            failures,
            elapsed,
        }
    }
}

/// Helpers of removed containers exit and reapers clean up within moments.
fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Addresses held in `networks/*.json` (their IPAM `allocations`).
fn leases(dir: &Path) -> usize {
    fn count(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("allocations", serde_json::Value::Object(a)) => a.len(),
                    _ => count(v),
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(count).sum(),
            _ => 0,
        }
    }
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| count(&v))
        .sum()
}

impl Report {
    /// Growth that is not noise: one line per problem, empty when sound.
    pub fn growth(&self) -> Vec<String> {
        let (b, a) = (&self.before, &self.after);
        let mut out = Vec::new();
        let mut check = |what: &str, before: u64, after: u64, slack: u64| {
            if after > before + slack {
                out.push(format!("{what} grew from {before} to {after}"));
            }
        };
        check(
            "apiserver descriptors",
            b.apiserver_fds as u64,
            a.apiserver_fds as u64,
            2,
        );
        // The allocator keeps some pages; a leak grows with every cycle.
        check(
            "apiserver RSS (KiB)",
            b.apiserver_rss_kib,
            a.apiserver_rss_kib,
            16 << 10,
        );
        // SQLite's WAL and the image's snapshot may settle a little.
        check("state root bytes", b.state_bytes, a.state_bytes, 8 << 20);
        check("processes", b.processes as u64, a.processes as u64, 0);
        check(
            "VM runtime directories",
            b.vm_dirs as u64,
            a.vm_dirs as u64,
            0,
        );
        check("IP leases", b.leases as u64, a.leases as u64, 0);
        check("TAP devices", b.taps as u64, a.taps as u64, 0);
        check("containers", b.containers as u64, a.containers as u64, 0);
        out
    }

    /// The before/after table.
    pub fn table(&self) -> String {
        let (b, a) = (&self.before, &self.after);
        let rows = [
            (
                "apiserver fds",
                b.apiserver_fds as u64,
                a.apiserver_fds as u64,
            ),
            (
                "apiserver RSS KiB",
                b.apiserver_rss_kib,
                a.apiserver_rss_kib,
            ),
            (
                "state root KiB (no logs)",
                b.state_bytes >> 10,
                a.state_bytes >> 10,
            ),
            ("logs KiB", b.log_bytes >> 10, a.log_bytes >> 10),
            ("processes", b.processes as u64, a.processes as u64),
            ("VM runtime dirs", b.vm_dirs as u64, a.vm_dirs as u64),
            ("IP leases", b.leases as u64, a.leases as u64),
            ("TAP devices", b.taps as u64, a.taps as u64),
            ("containers", b.containers as u64, a.containers as u64),
        ];
        let mut s = format!(
            "{} cycles (one container each) in {:.0} s, {} failures\n{:<26} {:>10} {:>10}\n",
            self.cycles,
            self.elapsed.as_secs_f64(),
            self.failures.len(),
            "",
            "before",
            "after"
        );
        for (name, before, after) in rows {
            s.push_str(&format!("{name:<26} {before:>10} {after:>10}\n"));
        }
        s
    }
}
