//! The small init of `--init` (what tini is to Docker): PID 1 of the
//! container forks the real process, forwards every catchable signal to it,
//! reaps orphans re-parented to it, and exits with the process's status.
//!
//! Without it the user's program is PID 1: signals it installs no handler
//! for are ignored by the kernel (so SIGTERM may do nothing) and zombies it
//! does not wait for accumulate.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setpgid, tcsetpgrp};

use super::rootfs::StepResult;

/// Forks; returns in the child (which goes on to exec the program) and never
/// returns in the parent, which becomes the init. `setup_fd` is closed in
/// the parent so the agent sees EOF once the child has exec'd.
pub fn become_init(terminal: bool, setup_fd: i32) -> StepResult<()> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    // Block first so no signal is lost between fork and the wait loop.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .map_err(|e| format!("init: sigprocmask: {e}"))?;
    // SAFETY: vmexec is single-threaded; the child only execs (or reports
    // an error and exits).
    match unsafe { fork() }.map_err(|e| format!("init: fork: {e}"))? {
        ForkResult::Child => {
            // Its own process group in the foreground of the terminal, so
            // Ctrl-C reaches it (and not the init a second time).
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if terminal {
                let _ = tcsetpgrp(std::io::stdin(), nix::unistd::getpid());
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
                .map_err(|e| format!("init: sigprocmask: {e}"))?;
            Ok(())
        }
        ForkResult::Parent { child } => {
            // SAFETY: closing our copy of the setup socket; the child keeps its own.
            unsafe { libc::close(setup_fd) };
            let code = supervise(child, &all);
            // SAFETY: _exit ends PID 1 (and with it the container) with the
            // child's status; no destructors need to run.
            unsafe { libc::_exit(code) }
        }
    }
}

/// PID 1 of a container that runs no program (`HOLD_ANNOTATION`): it keeps
/// the container's mount namespace alive for the agent's file RPCs and ends
/// on SIGTERM, SIGINT or SIGHUP. Returns only on failure; `setup_fd` is
/// closed (the agent's EOF meaning "set up") once nothing can fail.
pub fn hold(setup_fd: i32) -> StepResult<std::convert::Infallible> {
    let all = SigSet::all();
    // Blocked signals are queued even for a namespace's PID 1, which the
    // kernel would otherwise spare from every signal it has no handler for.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)
        .map_err(|e| format!("hold: sigprocmask: {e}"))?;
    // SAFETY: closing this process's copy of the setup socket, which nothing
    // else in it uses.
    unsafe { libc::close(setup_fd) };
    loop {
        match all.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                // SAFETY: _exit ends PID 1 (and the container) at once.
                unsafe { libc::_exit(0) }
            }
            Ok(Signal::SIGCHLD) => {
                while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    if s == WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Waits for signals: SIGCHLD reaps, anything else is forwarded to `child`.
/// Returns the exit status to use once `child` is gone.
fn supervise(child: Pid, set: &SigSet) -> i32 {
    loop {
        let sig = set.wait().unwrap_or(Signal::SIGCHLD);
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
