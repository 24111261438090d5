//! `run -it` as a person at a terminal uses it: the CLI runs on a real host
//! PTY (its controlling terminal, in a session of its own) and the test
//! types into the master side. One VM runs a busybox shell for the size,
//! resize, Ctrl-C, job control and exit status checks; a second, short one
//! checks that Ctrl-C ends a foreground program and the CLI with it.
//! Every wait is on a marker the shell prints, with a deadline.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Registry};
use nix::pty::{Winsize, openpty};

/// The longest any one wait on the terminal may take.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The window size the host terminal starts with.
const INITIAL: (u16, u16) = (31, 97);
/// The size it is changed to while the container runs.
const RESIZED: (u16, u16) = (42, 123);

/// The CLI on a host PTY: writes go to its keyboard, its output collects in
/// `seen`, read from `cursor` on.
struct Terminal {
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
    cursor: usize,
    child: Child,
    what: String,
}

fn winsize((rows, cols): (u16, u16)) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn cloexec(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("FD_CLOEXEC");
}

impl Terminal {
    /// Starts `container ARGS` with a new PTY of size `INITIAL` as its
    /// stdin, stdout, stderr and controlling terminal.
    fn spawn(d: &Daemon, args: &[&str]) -> Terminal {
        let pty = openpty(Some(&winsize(INITIAL)), None).expect("openpty");
        cloexec(&pty.master);
        cloexec(&pty.slave);
        let mut cmd = d.cmd(args);
        cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave));
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setsid(2) and ioctl(2), which are async-signal-safe; fd 0 is
        // the PTY slave placed there by Command.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("running container");
        // Only the child holds the slave now: once it (and the runtime
        // helper it passed the descriptors to) closes it, reads end.
        drop(cmd);
        let master = File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // EIO once every slave descriptor is closed.
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Terminal {
            master,
            seen,
            cursor: 0,
            child,
            what: format!("container {}", args.join(" ")),
        }
    }

    /// Everything the CLI printed so far, for messages.
    fn transcript(&self) -> String {
        format!("{:?}", String::from_utf8_lossy(&self.seen.lock().unwrap()))
    }

    /// Types `bytes`.
    fn type_in(&mut self, bytes: &[u8]) {
        self.master
            .write_all(bytes)
            .expect("writing to the PTY master");
    }

    /// Waits for `needle` after the cursor; returns what came before it and
    /// moves the cursor past it.
    fn wait_for(&mut self, needle: &str, why: &str) -> String {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if let Some(at) = seen[self.cursor..]
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                {
                    let before =
                        String::from_utf8_lossy(&seen[self.cursor..self.cursor + at]).into_owned();
                    self.cursor += at + needle.len();
                    return before;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "`{}`: no {needle:?} ({why}) within {} s; the terminal showed: {}",
                    self.what,
                    WAIT_LIMIT.as_secs(),
                    self.transcript()
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the last output arrive, then look once more.
                std::thread::sleep(Duration::from_millis(200));
                let found = self.seen.lock().unwrap()[self.cursor..]
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes());
                if !found {
                    panic!(
                        "`{}` ended ({status}) before {needle:?} ({why}); the terminal showed: {}",
                        self.what,
                        self.transcript()
                    );
                }
                continue;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `command` at the shell prompt and returns its output (the lines
    /// between the echoed command and an end marker), once the next prompt
    /// is shown. `n` makes the marker unique.
    fn shell(&mut self, n: u32, command: &str) -> String {
        // The quotes keep the echoed command line from matching the marker.
        let line = format!("{command}; echo END{n}''MARK\r");
        self.type_in(line.as_bytes());
        let out = self.wait_for(&format!("END{n}MARK"), command);
        self.wait_for("# ", "the prompt after the command");
        // Drop the echoed command line.
        match out.find('\n') {
            Some(nl) => out[nl + 1..].trim().to_string(),
            None => String::new(),
        }
    }

    /// Sets the host window size (the kernel sends SIGWINCH to the CLI).
    fn resize(&self, size: (u16, u16)) {
        let ws = winsize(size);
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the
        // master descriptor is open.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for the CLI to exit; returns its exit code.
    fn exit_code(&mut self, why: &str) -> i32 {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the CLI") {
                return status.code().unwrap_or_else(|| {
                    panic!(
                        "`{}` was killed by a signal ({status}) ({why}); the terminal showed: {}",
                        self.what,
                        self.transcript()
                    )
                });
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "`{}` did not exit within {} s ({why}); the terminal showed: {}",
                    self.what,
                    WAIT_LIMIT.as_secs(),
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// No NUL byte anywhere in what the CLI printed, and none echoed by the
    /// container's terminal as `^@`.
    fn assert_no_nul(&self) {
        let at = {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .position(|b| *b == 0)
                .or_else(|| seen.windows(2).position(|w| w == b"^@"))
        };
        assert!(
            at.is_none(),
            "`{}` printed a NUL byte or its echo ^@ (at offset {at:?}): {}",
            self.what,
            self.transcript()
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn interactive_shell_size_resize_ctrl_c_jobs_and_exit() {
    let t0 = Instant::now();
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());
    d.run(&["image", "pull", &image]).ok();
    let ready = t0.elapsed();

    let mut t = Terminal::spawn(&d, &["run", "-it", "--rm", &image, "sh"]);
    t.wait_for("# ", "the first shell prompt");

    // (a) The container's terminal has the host terminal's size.
    let size = t.shell(1, "stty size");
    assert_eq!(size, format!("{} {}", INITIAL.0, INITIAL.1), "initial size");

    // (b) A change of the host window reaches the container. The CLI
    // forwards it asynchronously, so look a few times.
    t.resize(RESIZED);
    let want = format!("{} {}", RESIZED.0, RESIZED.1);
    let mut n = 100;
    let mut size = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while size != want && Instant::now() < deadline {
        n += 1;
        size = t.shell(n, "stty size");
    }
    assert_eq!(
        size,
        want,
        "size after TIOCSWINSZ on the host: {}",
        t.transcript()
    );

    // (c) Ctrl-C interrupts the foreground job, not the shell.
    t.type_in(b"(echo SLEEP''ING; exec sleep 100)\r");
    t.wait_for("SLEEPING", "the foreground job started");
    t.type_in(b"\x03");
    t.wait_for("# ", "the prompt back after Ctrl-C");
    assert_eq!(
        t.shell(2, "echo $?"),
        "130",
        "status of the interrupted job"
    );

    // (d) Job control: the shell has a controlling terminal.
    let flags = t.shell(3, "echo $-");
    assert!(
        flags.contains('m'),
        "job control (monitor) is on: $- = {flags}"
    );
    t.type_in(b"sleep 100 &\r");
    t.wait_for("# ", "the prompt after starting a background job");
    let jobs = t.shell(4, "jobs");
    assert!(
        jobs.contains("Running") && jobs.contains("sleep 100"),
        "jobs lists the background job: {jobs:?}"
    );
    let killed = t.shell(5, "kill %1; wait; jobs");
    assert!(!killed.contains("Running"), "kill %1 ended it: {killed:?}");
    let transcript = t.transcript();
    assert!(
        !transcript.contains("job control turned off"),
        "{transcript}"
    );

    // (e) The shell's exit status is the CLI's.
    t.type_in(b"exit 7\r");
    assert_eq!(t.exit_code("after `exit 7`"), 7);
    t.assert_no_nul();
    eprintln!(
        "interactive shell: setup {:.1} s, session {:.1} s",
        ready.as_secs_f64(),
        (t0.elapsed() - ready).as_secs_f64()
    );

    // Ctrl-C ends the container's program (the shell execs sleep once it
    // has printed the marker) and the CLI exits with 130. `--init` as in
    // Docker and Apple's container: a namespace's PID 1 is spared every
    // signal it has no handler for, the terminal's SIGINT included, so the
    // program must not be PID 1.
    let mut t = Terminal::spawn(
        &d,
        &[
            "run",
            "-it",
            "--rm",
            "--init",
            &image,
            "sh",
            "-c",
            "echo SLEEP''ING; exec sleep 100",
        ],
    );
    // An end-of-file key while the host terminal is still in line mode
    // (as script(1) sends when its input ends) used to reach the container
    // as a NUL byte, echoed `^@` before anything else: the CLI takes the
    // terminal to raw mode only once the VM is up, seconds from now.
    t.type_in(b"\x04");
    t.wait_for("SLEEPING", "the container started");
    t.type_in(b"\x03");
    assert_eq!(t.exit_code("after Ctrl-C"), 130, "{}", t.transcript());
    t.assert_no_nul();
    eprintln!("total {:.1} s", t0.elapsed().as_secs_f64());
}
