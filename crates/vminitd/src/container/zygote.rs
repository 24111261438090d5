//! The exec server of a container: the `vmexec` that created the container
//! stays behind in its mount, pid, uts and ipc namespaces (but not in its
//! cgroup) and forks the container's later processes on request, so an exec
//! costs one fork of a small process instead of spawning and starting a
//! helper that joins the namespaces one by one (under TCG the spawn and the
//! start of a fresh helper were most of an exec's time).
//!
//! The agent keeps one end of a `SOCK_SEQPACKET` pair per container. A
//! request is one message: an [`ExecConfig`] as JSON, with four descriptors
//! (stdin, stdout, stderr, a reply socket). The server forks a child with
//! `CLONE_PARENT`, so the agent (PID 1) is its parent and reaps it; the
//! server writes `pid N` on the reply socket and the child writes an error
//! there if its setup fails, exactly as a freshly spawned helper would. The
//! server lives until the agent closes its end or the container's init
//! exits (it must not keep the container's mounts alive after that). If it
//! answers without a pid, the agent falls back to a fresh helper.

use std::fs::File;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use super::config::{ExecConfig, reply_error, reply_pid};
use super::rootfs::StepResult;

/// Largest request accepted (a spec with its environment).
pub const MAX_REQUEST: usize = 256 * 1024;

/// Where a child of the server goes before it runs its setup: the
/// container's cgroup (entered by writing 0 to its `cgroup.procs`) and,
/// when the spec asks for one, a cgroup namespace rooted there.
pub struct CgroupEntry {
    /// `cgroup.procs` of the container's cgroup, opened before the server
    /// left the agent's mount namespace.
    pub procs: Option<File>,
    /// Unshare the cgroup namespace after moving.
    pub namespace: bool,
}

impl CgroupEntry {
    /// Moves the calling process into the container's cgroup.
    pub fn enter(&self) -> StepResult {
        if let Some(mut procs) = self.procs.as_ref() {
            procs
                .write_all(b"0")
                .map_err(|e| format!("cannot join the container's cgroup: {e}"))?;
        }
        if self.namespace {
            unshare(CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| format!("unshare cgroup namespace: {e}"))?;
        }
        Ok(())
    }
}

/// fork(2), except that the child's parent is this process's parent (the
/// agent), which reaps it and learns its exit status directly. Returns
/// `None` in the child.
pub fn fork_sibling() -> StepResult<Option<i32>> {
    // SAFETY: clone without CLONE_VM or a new stack behaves like fork: the
    // child continues on a copy of this process's memory. This helper is
    // single-threaded, so no lock is held by a thread that the child lacks.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match r {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => Ok(None),
        pid => Ok(Some(pid as i32)),
    }
}

/// The server's state, once the container's init is started.
pub struct Server {
    /// The agent's requests.
    pub channel: OwnedFd,
    /// The container's init (a pid in the agent's namespace).
    pub init: i32,
    /// How children enter the container's cgroup.
    pub cgroup: CgroupEntry,
    /// Device and inode of the agent's root: a server whose root is still
    /// that one was not moved by the init's pivot_root and must not serve.
    pub agent_root: (u64, u64),
    /// /dev/null, opened before the init changed the root.
    pub null: Option<File>,
}

/// Runs `child` (which only returns on failure) in a forked child whose
/// setup socket is fd 3: reports its pid on `reply` or the fork error.
fn spawn(
    config: &ExecConfig,
    cgroup: &CgroupEntry,
    fds: [OwnedFd; 4],
    child: fn(&ExecConfig) -> StepResult<std::convert::Infallible>,
) {
    match fork_sibling() {
        Ok(Some(pid)) => {
            let _ = reply_pid(&fds[3], pid);
        }
        Ok(None) => {
            let err = place_stdio(&fds)
                .and_then(|()| cgroup.enter())
                .and_then(|()| child(config))
                .unwrap_err();
            let _ = reply_error(&fds[3], &err);
            // SAFETY: _exit ends the child without running this process's
            // atexit handlers or destructors.
            unsafe { libc::_exit(127) }
        }
        Err(e) => {
            let _ = reply_error(&fds[3], &e);
        }
    }
}

/// Moves the received stdio to fds 0-2 and the reply socket to fd 3 (close
/// on exec, so its EOF tells the agent that the exec happened).
fn place_stdio(fds: &[OwnedFd; 4]) -> StepResult {
    // Out of the way first: a received descriptor may sit on 0-3.
    let mut high = Vec::with_capacity(4);
    for fd in fds {
        let h = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .map_err(|e| format!("dup: {e}"))?;
        high.push(h);
    }
    for (target, fd) in high.iter().enumerate() {
        // SAFETY: dup2 onto 0-3, which this child owns; the sources are
        // the duplicates just made.
        if unsafe { libc::dup2(*fd, target as RawFd) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: closing the temporary duplicate made above.
        unsafe { libc::close(*fd) };
    }
    // SAFETY: fcntl on fd 3, the reply socket placed above.
    unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(())
}

/// The device and inode of `/`.
pub fn root_id() -> (u64, u64) {
    std::fs::metadata("/")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or((0, 0))
}

impl Server {
    /// Serves until the agent hangs up or the init exits; never returns.
    pub fn serve(self, child: fn(&ExecConfig) -> StepResult<std::convert::Infallible>) -> ExitCode {
        // The init's stdio was inherited; holding it would keep the
        // container's output open after the init exits.
        if let Some(null) = &self.null {
            for fd in 0..3 {
                // SAFETY: dup2 of a descriptor this process owns onto 0-2.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        // SAFETY: pidfd_open with a pid and no flags; the result is checked.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.init, 0) };
        // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        let mut buf = vec![0u8; MAX_REQUEST];
        loop {
            let mut polled = vec![PollFd::new(self.channel.as_fd(), PollFlags::POLLIN)];
            if let Some(p) = &pidfd {
                polled.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut polled, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return ExitCode::FAILURE,
            }
            let init_gone = polled
                .get(1)
                .and_then(|p| p.revents())
                .is_some_and(|r| !r.is_empty());
            if init_gone {
                return ExitCode::SUCCESS;
            }
            let Some((config, fds)) = receive(&self.channel, &mut buf) else {
                return ExitCode::SUCCESS;
            };
            let Some(fds) = fds else { continue };
            // Not pivoted with the init (its no-pivot fallback): dropping
            // the request unanswered sends the agent to a fresh helper.
            if root_id() == self.agent_root {
                return ExitCode::FAILURE;
            }
            match config {
                Ok(config) => {
                    // Compiled here, once per profile, not in every child.
                    if let Some(profile) = config
                        .spec
                        .linux()
                        .as_ref()
                        .and_then(|l| l.seccomp().as_ref())
                    {
                        let _ = super::seccomp::compile_cached(profile);
                    }
                    spawn(&config, &self.cgroup, fds, child)
                }
                Err(msg) => {
                    let _ = reply_error(&fds[3], &msg);
                }
            }
        }
    }
}

/// One request: `None` when the agent hung up; the descriptors are `None`
/// when the message did not carry exactly four.
#[allow(clippy::type_complexity)]
fn receive(
    channel: &OwnedFd,
    buf: &mut [u8],
) -> Option<(Result<ExecConfig, String>, Option<[OwnedFd; 4]>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            channel.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(m) => break m,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors in this
            // process; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let (n, truncated) = (
        msg.bytes,
        msg.flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC),
    );
    if n == 0 && fds.is_empty() {
        return None;
    }
    let fds: Option<[OwnedFd; 4]> = fds.try_into().ok();
    let config = if truncated {
        Err("the exec request is too large".to_string())
    } else {
        serde_json::from_slice::<ExecConfig>(&iov[0][..n])
            .map_err(|e| format!("invalid exec request: {e}"))
    };
    Some((config, fds))
}
