//! The one waitpid(-1) loop of the agent. As PID 1 (or a child subreaper on
//! the host) the agent inherits every orphan; statuses of processes the
//! agent manages go to their waiters, the rest are dropped after reaping.
//! Nothing else in the agent may call wait on a child.
//!
//! SIGCHLD arrives through a signalfd, not tokio's signal driver: the agent
//! is built without tokio's `signal` and `process` features, whose driver
//! (a socket pair, a handler table, a process-wide handler) was part of
//! every boot's runtime build under TCG. [`block_sigchld`] must run before
//! any thread exists, so that no thread takes the signal instead of the
//! signalfd; children start with an empty mask (std's spawn resets it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use containerization_error::{Code, Result, ResultExt};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{Interest, unix::AsyncFd};
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// When it was reaped.
    pub at: SystemTime,
}

/// Statuses of unregistered pids kept for a late `register` (a process can
/// exit before its starter learns its pid); bounded so orphans cannot grow it.
const UNCLAIMED_MAX: usize = 4096;

#[derive(Default)]
struct State {
    waiters: HashMap<i32, oneshot::Sender<Exit>>,
    unclaimed: HashMap<i32, Exit>,
    unclaimed_order: VecDeque<i32>,
}

/// Dispatches child exit statuses to whoever registered the pid.
pub struct Reaper {
    state: Mutex<State>,
}

impl Reaper {
    /// Becomes a child subreaper and starts the SIGCHLD loop, in a tokio
    /// runtime, after [`block_sigchld`].
    pub fn start() -> Result<Arc<Reaper>> {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let sigchld =
            SignalFd::with_flags(&sigchld(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .context(Code::InternalError, "cannot watch SIGCHLD")?;
        // SAFETY: the SignalFd owns its descriptor and keeps it, unchanged,
        // until the AsyncFd is dropped.
        let sigchld = unsafe { AsyncFd::register_with_interest(sigchld, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context(Code::InternalError, "cannot watch SIGCHLD")?;
        let reaper = Arc::new(Reaper {
            state: Mutex::new(State::default()),
        });
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                let Ok(mut ready) = sigchld.readable().await else {
                    return;
                };
                // Drain the queued notifications (SIGCHLDs coalesce; each
                // round reaps every exited child anyway).
                while let Ok(Some(_)) = ready.get_inner().read_signal() {}
                ready.clear_ready();
            }
        });
        Ok(reaper)
    }

    /// Blocks SIGCHLD in the calling thread and every thread it creates
    /// later: call it first, while the process has one thread.
    pub fn block_sigchld() -> Result<()> {
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&sigchld()), None)
            .context(Code::InternalError, "cannot block SIGCHLD")
    }

    /// Returns a receiver that yields `pid`'s exit (at once if already reaped).
    pub fn register(&self, pid: i32) -> oneshot::Receiver<Exit> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(exit) = st.unclaimed.remove(&pid) {
            st.unclaimed_order.retain(|p| *p != pid);
            let _ = tx.send(exit);
        } else {
            st.waiters.insert(pid, tx);
        }
        rx
    }

    fn reap_all(&self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            self.dispatch(
                pid,
                Exit {
                    code,
                    at: SystemTime::now(),
                },
            );
        }
    }

    fn dispatch(&self, pid: i32, exit: Exit) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = st.waiters.remove(&pid) {
            let _ = tx.send(exit);
            return;
        }
        st.unclaimed.insert(pid, exit);
        st.unclaimed_order.push_back(pid);
        while st.unclaimed_order.len() > UNCLAIMED_MAX {
            if let Some(old) = st.unclaimed_order.pop_front() {
                st.unclaimed.remove(&old);
            }
        }
    }
}

fn sigchld() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_registration_gets_the_status() {
        let r = Reaper {
            state: Mutex::new(State::default()),
        };
        let exit = Exit {
            code: 3,
            at: SystemTime::now(),
        };
        r.dispatch(42, exit);
        let mut rx = r.register(42);
        assert_eq!(rx.try_recv().ok(), Some(exit));
    }

    #[test]
    fn early_registration_gets_the_status() {
        let r = Reaper {
            state: Mutex::new(State::default()),
        };
        let mut rx = r.register(7);
        let exit = Exit {
            code: 137,
            at: SystemTime::now(),
        };
        r.dispatch(7, exit);
        assert_eq!(rx.try_recv().ok(), Some(exit));
    }
}
