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
    spawn_with(root, id, false).await
}

/// Starts the files-only helper of `id` (`cp`/`export` of a container that
/// is not running) and waits until `files.sock` answers; returns its pid.
pub(crate) async fn spawn_files(root: &StateRoot, id: &str) -> Result<u32> {
    spawn_with(root, id, true).await
}

async fn spawn_with(root: &StateRoot, id: &str, files: bool) -> Result<u32> {
    let (sock_name, error_name) = if files {
        (
            container_runtime_linux::FILES_SOCKET,
            container_runtime_linux::FILES_ERROR_FILE,
        )
    } else {
        ("runtime.sock", container_runtime_linux::START_ERROR_FILE)
    };
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
    let _ = std::fs::remove_file(dir.join(sock_name));
    let _ = std::fs::remove_file(dir.join(error_name));
    let mut cmd = helper_command()?;
    cmd.arg("--root").arg(root.path()).arg("--id").arg(id);
    if files {
        cmd.arg("--files");
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
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
    let sock = dir.join(sock_name);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(dir.join(error_name)).unwrap_or_default();
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
        tokio::time::sleep(Duration::from_millis(10)).await;
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

/// The pid of the live files-only helper of `id`, if one runs.
pub(crate) fn files_helper(root: &StateRoot, id: &str) -> Option<u32> {
    let pid_file = root
        .container_dir(id)
        .join(container_runtime_linux::FILES_PID);
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let files_mode = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == b"--files"))
        .unwrap_or(false);
    (files_mode && alive(pid, id)).then_some(pid)
}

/// Asks the files-only helper of `id`, if any, to end once its clients are
/// done, and waits up to `timeout` for it; false if it is still there.
pub(crate) async fn end_files_helper(root: &StateRoot, id: &str, timeout: Duration) -> bool {
    let Some(pid) = files_helper(root, id) else {
        return true;
    };
    let sock = root
        .container_dir(id)
        .join(container_runtime_linux::FILES_SOCKET);
    if let Ok(c) = RuntimeClient::connect(&sock).await {
        let _ = c.shutdown().await;
    }
    wait_gone(pid, id, timeout).await
}

/// Waits until no helper holds `id`'s VM lock (a helper whose container
/// just exited is still powering its VM off), up to `timeout`.
pub(crate) async fn wait_vm_free(root: &StateRoot, id: &str, timeout: Duration) -> bool {
    let path = root
        .container_dir(id)
        .join(container_runtime_linux::VM_LOCK);
    let deadline = Instant::now() + timeout;
    loop {
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            // No container directory: nothing can hold it.
            return true;
        };
        // Taken and released at once: only the helper spawned next (under
        // the container's lock in this process) competes for it.
        if nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
