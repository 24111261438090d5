//! Finding, starting and stopping the apiserver.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use container_api::{ApiClient, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

/// Connects to the running apiserver of `root`.
pub async fn connect(root: &StateRoot) -> Result<ApiClient> {
    ApiClient::connect(&root.apiserver_socket()).await
}

/// Connects and pings; `None` when no daemon answers.
pub async fn running(
    root: &StateRoot,
) -> Option<(ApiClient, container_api::apiserver::SystemInfo)> {
    let client = connect(root).await.ok()?;
    let info = client.ping().await.ok()?;
    Some((client, info))
}

/// The program that runs the apiserver: `container-apiserver` beside this
/// binary, else this binary with the hidden apiserver argument.
fn apiserver_command() -> Result<Command> {
    let me =
        std::env::current_exe().context(Code::InternalError, "locating the container binary")?;
    let sibling = me.with_file_name("container-apiserver");
    if sibling.is_file() {
        return Ok(Command::new(sibling));
    }
    let mut cmd = Command::new(me);
    cmd.arg(crate::APISERVER_ARG);
    Ok(cmd)
}

/// Launches the apiserver detached (own session, stdio to its log) and waits
/// until it answers a ping.
pub async fn start(
    root: &StateRoot,
    timeout: Duration,
) -> Result<container_api::apiserver::SystemInfo> {
    let logs = root.logs_dir();
    std::fs::create_dir_all(&logs)
        .context(Code::InternalError, format!("creating {}", logs.display()))?;
    let log_path = root.apiserver_log();
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
        .context(Code::InternalError, "duplicating the log handle")?;
    let mut cmd = apiserver_command()?;
    cmd.arg("--root")
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent;
    // it detaches the daemon from our session so it outlives this terminal.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context(Code::InternalError, "launching container-apiserver")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((_, info)) = running(root).await {
            return Ok(info);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ContainerizationError::internal(format!(
                "the apiserver exited ({status}) during start-up: {}; see {}",
                last_error_line(&log_path),
                log_path.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(ContainerizationError::timeout(format!(
                "the apiserver did not answer within {}s; see {}",
                timeout.as_secs(),
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last line of the log that reads like an error, for start-up failures.
fn last_error_line(log: &PathBuf) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| l.contains("Error") || l.contains("ERROR"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no error logged".into())
}

/// Asks the apiserver to exit and waits until it has.
pub async fn stop(root: &StateRoot, client: &ApiClient, pid: u32, timeout: Duration) -> Result<()> {
    client.shutdown().await?;
    let deadline = Instant::now() + timeout;
    while process_alive(pid) || root.apiserver_socket().exists() {
        if Instant::now() >= deadline {
            return Err(ContainerizationError::timeout(format!(
                "the apiserver (pid {pid}) did not exit within {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// True while `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
