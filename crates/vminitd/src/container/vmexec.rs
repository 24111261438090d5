//! `vminitd __vmexec`: the minimal runc-like helper (Apple's `vmexec`).
//!
//! The agent spawns it with the process's stdio on fds 0-2 and a setup
//! socket on fd 3 carrying an [`ExecConfig`]. For a new container it
//! creates the namespaces, forks the init as the agent's child (so the pid
//! namespace applies), reports its pid and stays as the container's exec
//! server (`zygote`). For an exec without that server it joins the cgroup
//! and the init's namespaces, forks, reports the pid and exits. The child
//! builds the root, switches identity and execs; if any step fails it
//! writes the error on the socket, which is close-on-exec, so EOF without
//! an error means the exec succeeded. The agent, PID 1 or a subreaper,
//! reaps the child.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{ForkResult, fork};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::config::{ExecConfig, reply_error, reply_pid};
use super::rootfs::{self, StepResult};
use super::{cgroup, init, seccomp, security, zygote};

/// The argument that selects this helper.
pub const ARG: &str = "__vmexec";

/// The fd of the setup socket.
pub const SETUP_FD: i32 = 3;

/// Entry point of `vminitd __vmexec`.
pub fn main() -> ExitCode {
    // The agent passes the setup socket's number after ARG; it moves to
    // SETUP_FD, where the init-holding steps expect it.
    let fd_arg = |n| std::env::args().nth(n).and_then(|a| a.parse::<i32>().ok());
    let passed = fd_arg(2).unwrap_or(SETUP_FD);
    // The exec server's channel, when the agent passed one (a container's
    // first process). Moved off fd 3 first if it sits there.
    let channel = fd_arg(3).map(|fd| {
        let fd = if fd == SETUP_FD {
            // SAFETY: duplicating a descriptor the agent passed us.
            let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
            // SAFETY: closing the original, now duplicated.
            unsafe { libc::close(fd) };
            moved
        } else {
            fd
        };
        // SAFETY: the descriptor the agent passed (or its duplicate); only
        // this helper owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        fd
    });
    if passed != SETUP_FD {
        // SAFETY: dup2/close of the descriptor the agent passed; no other
        // descriptor is open at SETUP_FD in this freshly spawned helper.
        unsafe {
            if libc::dup2(passed, SETUP_FD) < 0 {
                return ExitCode::from(127);
            }
            libc::close(passed);
        }
    }
    // SAFETY: fd 3 is the setup socket the agent placed there; nothing else owns it.
    let mut sock = unsafe { File::from_raw_fd(SETUP_FD) };
    // The exec'd program must not inherit it: its closing signals success.
    let _ = nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut raw = Vec::new();
    let config = sock
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read the setup request: {e}"))
        .and_then(|_| {
            serde_json::from_slice::<ExecConfig>(&raw)
                .map_err(|e| format!("invalid setup request: {e}"))
        });
    let result = config.and_then(|c| run(&c, &sock, channel));
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(server)) => {
            // The agent's EOF on the setup socket must come from the init's
            // exec alone.
            drop(sock);
            server.serve(child)
        }
        Err(msg) => {
            let _ = reply_error(&sock, &msg);
            ExitCode::from(127)
        }
    }
}

/// Namespaces to create for a new container (network is shared with the VM).
/// The namespaces a new container gets (a mount namespace always).
pub fn new_namespaces(spec: &Spec) -> CloneFlags {
    let mut flags = CloneFlags::CLONE_NEWNS;
    let listed = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
    match listed {
        None => {
            flags |= CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC
        }
        Some(list) => {
            for ns in list {
                // A path means "join this namespace": not supported in the VM.
                if ns.path().is_some() {
                    continue;
                }
                flags |= match ns.typ() {
                    LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
                    LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
                    LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
                    LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
                    _ => CloneFlags::empty(),
                };
            }
        }
    }
    flags
}

/// Joins the namespaces of `pid` (except network and user, which the VM shares).
fn join_namespaces(pid: i32) -> StepResult {
    let mut fds = Vec::new();
    for ns in ["ipc", "uts", "cgroup", "pid", "mnt"] {
        let path = format!("/proc/{pid}/ns/{ns}");
        match File::open(&path) {
            Ok(f) => fds.push((ns, OwnedFd::from(f))),
            Err(e) if ns == "cgroup" && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("the container is not running ({path}: {e})")),
        }
    }
    // Open all before entering any: entering mnt changes what /proc shows.
    for (ns, fd) in fds {
        setns(&fd, CloneFlags::empty()).map_err(|e| format!("cannot join {ns} namespace: {e}"))?;
    }
    Ok(())
}

fn run(
    config: &ExecConfig,
    sock: &File,
    channel: Option<OwnedFd>,
) -> StepResult<Option<zygote::Server>> {
    let Some(pid) = config.join_pid else {
        return create(config, sock, channel);
    };
    // An exec without the container's exec server: join what the init is in.
    if let Some(dir) = &config.cgroup {
        cgroup::join(dir, std::process::id()).map_err(|e| e.to_string())?;
    }
    join_namespaces(pid)?;
    // SAFETY: this helper is single-threaded, so the child may run any code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => reply_pid(sock, child.as_raw())
            .map(|()| None)
            .map_err(|e| format!("cannot report the pid: {e}")),
        ForkResult::Child => {
            let err = child(config).unwrap_err();
            let _ = reply_error(sock, &err);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(127) }
        }
    }
}

/// Creates the container: this helper enters its new namespaces (all but
/// the cgroup one), forks the init as the agent's child, and becomes the
/// container's exec server when the agent passed a channel.
fn create(
    config: &ExecConfig,
    sock: &File,
    channel: Option<OwnedFd>,
) -> StepResult<Option<zygote::Server>> {
    // Opened while the cgroup file system is still in view.
    let procs = match &config.cgroup {
        Some(dir) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| format!("cannot open cgroup {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let flags = new_namespaces(&config.spec);
    let cgroup = zygote::CgroupEntry {
        procs,
        namespace: flags.contains(CloneFlags::CLONE_NEWCGROUP),
    };
    // The init's pivot_root moves every process of the mount namespace
    // whose root and cwd are the old root: this one included.
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let agent_root = zygote::root_id();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok();
    unshare(flags - CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("unshare: {e}"))?;
    let init = match zygote::fork_sibling()? {
        Some(pid) => pid,
        None => {
            let err = cgroup.enter().and_then(|()| child(config)).unwrap_err();
            let _ = reply_error(sock, &err);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(127) }
        }
    };
    reply_pid(sock, init).map_err(|e| format!("cannot report the pid: {e}"))?;
    Ok(channel.map(|channel| zygote::Server {
        channel,
        init,
        cgroup,
        agent_root,
        null,
    }))
}

/// Runs in the container's namespaces; only returns on failure.
pub fn child(config: &ExecConfig) -> StepResult<std::convert::Infallible> {
    let spec = &config.spec;
    default_signals()?;
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if config.terminal {
        // SAFETY: ioctl on fd 0 (the PTY slave) with an integer argument.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            return Err(format!(
                "cannot take the terminal: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if config.join_pid.is_none() {
        rootfs::setup(spec)?;
        if let Some(host) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(host).map_err(|e| format!("sethostname: {e}"))?;
        }
        for (key, value) in spec
            .linux()
            .iter()
            .flat_map(|l| l.sysctl().iter().flatten())
        {
            let path = sysctl_path(key)?;
            std::fs::write(&path, value).map_err(|e| format!("sysctl {key}: {e}"))?;
        }
    }
    if config.join_pid.is_none() && annotated(spec, vminitd_api::HOLD_ANNOTATION) {
        return init::hold(SETUP_FD);
    }
    let process = spec.process().as_ref().ok_or("the spec has no process")?;
    let identity = security::resolve_user(process)?;
    security::set_rlimits(process)?;
    if let Some(adj) = process.oom_score_adj() {
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let cwd = if process.cwd().as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        process.cwd().clone()
    };
    std::env::set_current_dir(&cwd).map_err(|e| format!("cwd {}: {e}", cwd.display()))?;
    let env = environment(process, &identity);
    let args = process.args().clone().unwrap_or_default();
    let program = args.first().ok_or("the process has no args")?;
    let path = find_program(program, &env)?;
    // Compiled before any privilege changes so a bad profile is reported
    // as such. Installed as late as possible (runc's order): after
    // no_new_privs when it is set; otherwise before the capabilities are
    // dropped, while CAP_SYS_ADMIN still permits it.
    let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => seccomp::compile_cached(profile)?,
        None => Vec::new(),
    };
    let nnp = process.no_new_privileges().unwrap_or(false);
    if !nnp {
        seccomp::install(&filters)?;
    }
    security::switch_user(&identity, process.capabilities().as_ref())?;
    security::no_new_privs(process)?;
    if nnp {
        seccomp::install(&filters)?;
    }
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("argument {s:?} contains NUL"));
    let argv = args
        .iter()
        .map(|a| cstr(a))
        .collect::<StepResult<Vec<_>>>()?;
    let envp = env
        .iter()
        .map(|a| cstr(a))
        .collect::<StepResult<Vec<_>>>()?;
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| "path contains NUL")?;
    if annotated(spec, vminitd_api::INIT_ANNOTATION) && config.join_pid.is_none() {
        init::become_init(config.terminal, SETUP_FD)?;
    }
    let e = nix::unistd::execve(&cpath, &argv, &envp).unwrap_err();
    Err(format!("exec {program}: {e}"))
}

/// Gives the container process default signal handling, as runc does:
/// ignored dispositions survive execve, and the Rust runtime of this helper
/// ignores SIGPIPE, which would make `yes | head` never end.
fn default_signals() -> StepResult {
    use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
    // The kernel's struct sigaction (handler, flags, restorer, mask): all
    // zero is SIG_DFL with no flags, whatever the architecture's layout.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid struct and no old-action
        // pointer. Raw, because glibc's sigaction refuses its internal
        // signals 32 and 33, which the spawned helper has ignored.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if r != 0 {
            return Err(format!(
                "resetting signal {sig}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| format!("clearing the signal mask: {e}"))
}

/// The /proc/sys file of sysctl `key` (`net.ipv4.ip_forward` or
/// `net/ipv4/ip_forward`). Only names of /proc/sys entries are accepted:
/// a key is written as root before privileges are dropped, so `/etc/x`
/// (which `Path::join` would take as absolute) or `..` must not reach it.
pub fn sysctl_path(key: &str) -> StepResult<PathBuf> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'))
        && !key.starts_with(['.', '/'])
        && key.split(['.', '/']).all(|part| !part.is_empty());
    if !ok {
        return Err(format!("invalid sysctl name {key:?}"));
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// Whether the spec carries annotation `key` set to `true`.
fn annotated(spec: &Spec, key: &str) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "true")
}

/// The process environment, with PATH and HOME defaulted.
pub fn environment(process: &Process, id: &security::Identity) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", vminitd_api::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = id.home.clone().unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Resolves `program` against the process's PATH (not the agent's).
fn find_program(program: &str, env: &[String]) -> StepResult<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(vminitd_api::DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!("exec {program}: not found in PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names_stay_in_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/core/somaxconn").unwrap(),
            Path::new("/proc/sys/net/core/somaxconn")
        );
        for bad in [
            "",
            "/etc/shadow",
            "..",
            "kernel..x",
            ".x",
            "a/../b",
            "a b",
            "x/",
        ] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
    }
}
