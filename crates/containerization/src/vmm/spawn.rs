//! Spawning helper processes (QEMU, vhost-device-vsock) that must die with
//! their owner, and a reaper that removes a VM's files when the owner dies.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not the process. Tokio runs our code on worker threads that come and go,
//! so every child is forked from one thread that lives as long as the
//! process.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use containerization_error::{ContainerizationError, Result};

type Request = (
    tokio::process::Command,
    tokio::runtime::Handle,
    mpsc::Sender<std::io::Result<tokio::process::Child>>,
);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("vmm-spawner".into())
            .spawn(move || {
                for (mut cmd, handle, reply) in rx {
                    // Tokio's child reaping needs the runtime's context.
                    let _guard = handle.enter();
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the vmm-spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it gets SIGKILL when this process dies and runs in
/// its own process group (a terminal's ^C goes to us, and we stop it cleanly).
pub(crate) fn spawn_tied(mut cmd: tokio::process::Command) -> Result<tokio::process::Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid, setpgid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The owner may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    cmd.kill_on_drop(true);
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        ContainerizationError::internal("the VMM must be used inside a tokio runtime")
    })?;
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| ContainerizationError::internal("vmm spawner lock poisoned"))?
        .send((cmd, handle, tx))
        .map_err(|_| ContainerizationError::internal("vmm spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| ContainerizationError::internal("vmm spawner thread is gone"))?
        .map_err(|e| ContainerizationError::internal("cannot start helper process").with_cause(e))
}

/// Removes paths when the owning process dies, however it dies: a shell
/// blocked reading a pipe whose only writer is us. Dropping the `Reaper`
/// (or our death) closes the pipe and the shell removes the paths.
#[derive(Debug)]
pub(crate) struct Reaper {
    stdin: Option<std::process::ChildStdin>,
    child: Option<std::process::Child>,
}

impl Reaper {
    /// Starts a reaper for `paths`.
    pub(crate) fn start(paths: &[PathBuf]) -> Result<Reaper> {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("read _; sleep 0.2; rm -rf -- \"$@\"")
            .arg("container-reaper")
            .args(paths)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe; a new session keeps the reaper
        // out of the terminal's process group, so ^C does not kill it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ContainerizationError::internal("cannot start reaper").with_cause(e))?;
        let stdin = child.stdin.take();
        Ok(Reaper {
            stdin,
            child: Some(child),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"\n");
        }
        if let Some(mut c) = self.child.take() {
            // The reaper exits within a moment; reap it so no zombie stays.
            std::thread::spawn(move || {
                let _ = c.wait();
            });
        }
    }
}
