//! `--init`: a minimal init (as `docker run --init`'s tini) for containers
//! whose program does not reap zombies or handle signals as PID 1. vmexec
//! forks just before exec: the child execs the program, the parent stays PID
//! 1 of the container, forwards every signal to the child, reaps every
//! orphan and exits with the child's status.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::Spec;

use super::rootfs::StepResult;

/// Spec annotation asking for the init (`"true"`).
pub const ANNOTATION: &str = "com.apple.container.init";

/// Whether the spec asks for the init.
pub fn wanted(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Forks: returns in the child (which goes on to exec the program); the
/// parent never returns, it becomes the init and exits with the child's
/// status. The parent closes the setup socket (fd `setup_fd`) so that only
/// the child's exec (or error report) ends the agent's wait.
pub fn fork_init(setup_fd: i32) -> StepResult {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old))
        .map_err(|e| format!("sigprocmask: {e}"))?;
    // SAFETY: vmexec is single-threaded, so the child may run any code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
            .map_err(|e| format!("sigprocmask: {e}")),
        ForkResult::Parent { child } => {
            // SAFETY: closes the init's copy of the setup socket; the init
            // never returns to code that uses it.
            unsafe {
                libc::close(setup_fd);
            }
            let code = supervise(child, &all);
            // SAFETY: _exit ends the init without unwinding or atexit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// The init loop: forwards signals, reaps, returns the child's exit code.
fn supervise(child: Pid, all: &SigSet) -> i32 {
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_annotation_asks_for_the_init() {
        let spec = |a: &str| -> Spec {
            serde_json::from_str(&format!(r#"{{"ociVersion":"1.0.2","annotations":{a}}}"#)).unwrap()
        };
        assert!(wanted(&spec(r#"{"com.apple.container.init":"true"}"#)));
        assert!(!wanted(&spec(r#"{"com.apple.container.init":"false"}"#)));
        assert!(!wanted(&spec("{}")));
    }
}
