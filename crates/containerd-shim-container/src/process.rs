//! What the shim remembers about one process (a task's init or an exec):
//! its stdio paths, pid and lifecycle, with a watch channel so any number of
//! `Wait` calls (even before `Start`) see the exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use containerization::LinuxProcess;
use tokio::sync::watch;

use crate::stdio::{StdinCloser, StdioPaths};

/// Lifecycle of a process as containerd sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    Created,
    /// Started and not exited.
    Running,
    /// The whole VM is paused (init only).
    Paused,
    /// Exited with this code at this time.
    Stopped {
        /// Exit code (128 + N for death by signal N).
        code: u32,
        /// When it exited.
        at: SystemTime,
    },
}

/// One process of a task.
#[derive(Debug)]
pub struct ProcessState {
    /// `""` for the init process, else the exec id.
    pub exec_id: String,
    /// Stdio paths as containerd gave them.
    pub stdio: StdioPaths,
    /// The guest process, for execs (the init is driven through the container).
    pub process: Option<Arc<LinuxProcess>>,
    /// Ends stdin on `CloseIO` (`None`: the process has no stdin).
    pub stdin_closer: Option<StdinCloser>,
    pid: AtomicU32,
    status: watch::Sender<Status>,
}

impl ProcessState {
    /// A created process.
    pub fn new(
        exec_id: &str,
        stdio: StdioPaths,
        process: Option<Arc<LinuxProcess>>,
        stdin_closer: Option<StdinCloser>,
    ) -> Self {
        ProcessState {
            exec_id: exec_id.to_string(),
            stdio,
            process,
            stdin_closer,
            pid: AtomicU32::new(0),
            status: watch::Sender::new(Status::Created),
        }
    }

    /// The pid reported to containerd (0 before start).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Records the pid.
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// Current status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Moves to `status`; an exit is final (a late pause/resume cannot undo it).
    pub fn set_status(&self, status: Status) {
        self.status.send_if_modified(|s| {
            if matches!(s, Status::Stopped { .. }) {
                return false;
            }
            *s = status;
            true
        });
    }

    /// Waits until the process has exited; returns its code and time.
    pub async fn wait(&self) -> (u32, SystemTime) {
        let mut rx = self.status.subscribe();
        let stopped = rx
            .wait_for(|s| matches!(s, Status::Stopped { .. }))
            .await
            .map(|s| *s);
        match stopped {
            Ok(Status::Stopped { code, at }) => (code, at),
            // The sender lives as long as `self`; unreachable in practice.
            _ => (255, SystemTime::now()),
        }
    }

    /// Whether the process has exited.
    pub fn exited(&self) -> bool {
        matches!(self.status(), Status::Stopped { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_sees_the_exit_and_exit_is_final() {
        let p = Arc::new(ProcessState::new("", StdioPaths::default(), None, None));
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.wait().await.0 })
        };
        p.set_status(Status::Running);
        let at = SystemTime::now();
        p.set_status(Status::Stopped { code: 3, at });
        p.set_status(Status::Running);
        assert_eq!(waiter.await.unwrap(), 3);
        assert_eq!(p.status(), Status::Stopped { code: 3, at });
        assert!(p.exited());
        assert_eq!(p.wait().await, (3, at));
    }
}
