//! Spawning runtime helpers and telling whether one is alive.

use std::os::unix::process::CommandExt;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use container_api::{RuntimeClient, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use super::create::error_from_file;

/// Hidden first argument that makes the `container`/`container-apiserver`
/// binaries act as the runtime helper when `container-runtime-linux` is not
/// installed beside them (e.g. under `cargo test`).
pub const RUNTIME_ARG: &str = "__runtime";

/// How long a VM boot may take before start gives up (TCG on a busy host).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn helper_command() -> Result<Command> {
    let me = std::env::current_exe().context(Code::InternalError, "locating this binary")?;
    let sibling = me.with_file_name("container-runtime-linux");
    if sibling.is_file() {
        return Ok(Command::new(sibling));
    }
    let mut cmd = Command::new(me);
    cmd.arg(RUNTIME_ARG);
    Ok(cmd)
}

/// Starts the helper of `id` detached (own session, so it outlives the
/// apiserver) and waits until its socket answers; returns its pid.
pub(crate) async fn spawn(root: &StateRoot, id: &str) -> Result<u32> {
    let dir = root.container_dir(id);
    let log_path = dir.join("runtime.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .context(
            Code::InternalError,
            format!("opening {}", log_path.display()),
        )?;
    let log2 = log
        .try_clone()
        .context(Code::InternalError, "duplicating a log handle")?;
    let _ = std::fs::remove_file(dir.join("runtime.sock"));
    let _ = std::fs::remove_file(dir.join("start-error"));
    let mut cmd = helper_command()?;
    cmd.arg("--root")
        .arg(root.path())
        .arg("--id")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; it only detaches the child from
    // our session so a SIGKILL of the apiserver's group spares it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context(Code::InternalError, "launching the runtime helper")?;
    let pid = child.id();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let sock = dir.join("runtime.sock");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(dir.join("start-error")).unwrap_or_default();
            if text.is_empty() {
                return Err(ContainerizationError::internal(format!(
                    "the runtime helper exited ({status}); see {}",
                    log_path.display()
                )));
            }
            return Err(error_from_file(&text));
        }
        if sock.exists()
            && let Ok(c) = RuntimeClient::connect(&sock).await
            && c.state().await.is_ok()
        {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(ContainerizationError::timeout(format!(
                "container {id} did not boot within {}s; see {}",
                BOOT_TIMEOUT.as_secs(),
                dir.join("bootlog").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reap the helper when it ends so it does not linger as a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

/// True while `pid` is a live (non-zombie) runtime helper of `id`.
pub(crate) fn alive(pid: u32, id: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    if stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    {
        return false;
    }
    // Guard against pid reuse: the helper's argv names the container.
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == id.as_bytes()))
        .unwrap_or(false)
}

/// Waits until `pid` is gone, up to `timeout`.
pub(crate) async fn wait_gone(pid: u32, id: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid, id) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The runtime socket of `id`.
pub(crate) fn socket(root: &StateRoot, id: &str) -> std::path::PathBuf {
    root.container_dir(id).join("runtime.sock")
}
