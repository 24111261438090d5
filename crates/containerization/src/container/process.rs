//! `LinuxProcess`: one process in a container, driven through the agent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use containerization_error::{ContainerizationError, Result};
use vminitd_api::{TerminalSize, Vminitd};

use super::config::ProcessConfiguration;
use super::stdio::{Stdio, start_pumps};
use crate::exit_status::ExitStatus;
use crate::terminal::Size;

/// A process in a container (seed `LinuxProcess`).
#[derive(Debug)]
pub struct LinuxProcess {
    /// Process identifier (unique within the container).
    pub id: String,
    /// The container it runs in.
    pub owning_container: Option<String>,
    pid: AtomicI32,
    agent: Vminitd,
    stdio: Mutex<Option<(Stdio, Stdio, Stdio)>>,
    pumps: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<()>>>>,
}

fn to_exit_status(s: vminitd_api::ExitStatus) -> ExitStatus {
    ExitStatus::with_time(s.code, DateTime::<Utc>::from(s.exited_at))
}

impl LinuxProcess {
    /// Creates the process in the guest (not started yet); takes the
    /// config's stdio handles.
    pub(crate) async fn create(
        agent: Vminitd,
        container_id: &str,
        id: &str,
        config: &mut ProcessConfiguration,
        spec: serde_json::Value,
    ) -> Result<LinuxProcess> {
        let json = serde_json::to_vec(&spec).map_err(|e| {
            ContainerizationError::internal("cannot encode runtime spec").with_cause(e)
        })?;
        let stdin = std::mem::replace(&mut config.stdin, Stdio::Null);
        let stdout = std::mem::replace(&mut config.stdout, Stdio::Null);
        let stderr = std::mem::replace(&mut config.stderr, Stdio::Null);
        agent
            .create_process_raw(container_id, id, json, stdin.is_input(), config.terminal)
            .await?;
        Ok(LinuxProcess {
            id: id.to_string(),
            owning_container: Some(container_id.to_string()),
            pid: AtomicI32::new(-1),
            agent,
            stdio: Mutex::new(Some((stdin, stdout, stderr))),
            pumps: tokio::sync::Mutex::new(None),
        })
    }

    fn container(&self) -> &str {
        self.owning_container.as_deref().unwrap_or("")
    }

    /// Guest pid, or -1 before `start`.
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Attaches stdio and starts the process.
    pub async fn start(&self) -> Result<()> {
        let stdio = self
            .stdio
            .lock()
            .map_err(|_| ContainerizationError::internal("process state poisoned"))?
            .take()
            .ok_or_else(|| {
                ContainerizationError::invalid_state(format!(
                    "process {} was already started",
                    self.id
                ))
            })?;
        // Attach and start at once (one round trip, not two): the agent
        // leaves the output pipes unread until someone attaches, so the
        // first bytes wait for the attachment whichever request runs first.
        let (io, pid) = tokio::try_join!(
            self.agent.process_io(self.container(), &self.id),
            self.agent.start_process(self.container(), &self.id)
        )?;
        *self.pumps.lock().await = Some(start_pumps(io, stdio.0, stdio.1, stdio.2));
        self.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// Sends `signal` to the process.
    pub async fn kill(&self, signal: i32) -> Result<()> {
        self.agent
            .signal_process(self.container(), &self.id, signal)
            .await
    }

    /// Waits for the process to exit (and its output to be written);
    /// `Timeout` error when `timeout` passes first.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<ExitStatus> {
        let status = self
            .agent
            .wait_process(self.container(), &self.id, timeout)
            .await?;
        if let Some(pumps) = self.pumps.lock().await.take() {
            // Output ends right after the exit; a stuck sink cannot hold us forever.
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), pumps).await {
                r?;
            }
        }
        Ok(to_exit_status(status))
    }

    /// Forgets the exited process in the guest.
    pub async fn delete(&self) -> Result<()> {
        self.agent.delete_process(self.container(), &self.id).await
    }

    /// Closes the process's stdin.
    pub async fn close_stdin(&self) -> Result<()> {
        self.agent
            .close_process_stdin(self.container(), &self.id)
            .await
    }

    /// Resizes the process's PTY.
    pub async fn resize(&self, size: Size) -> Result<()> {
        self.agent
            .resize_process(
                self.container(),
                &self.id,
                TerminalSize {
                    rows: size.height,
                    columns: size.width,
                },
            )
            .await
    }
}
