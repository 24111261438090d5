//! Container and process lifecycle: create, start (through vmexec), kill,
//! wait, resize, close stdin, delete, statistics.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::runtime::Spec;
use tokio::sync::watch;
use vminitd_api::proto;

use super::Agent;
use crate::container::config::{ExecConfig, REPLY_ERROR, REPLY_PID};
use crate::container::stdio::{self, AgentStdio, ChildStdio, FdWriter};
use crate::container::{cgroup, vmexec};
use crate::reaper::Exit;

/// A process the agent manages.
pub struct ManagedProcess {
    pub(super) id: String,
    spec: Spec,
    terminal: bool,
    pub(super) state: Mutex<ProcState>,
    pub(super) exit: watch::Sender<Option<Exit>>,
    /// stdin writer; `None` once closed (or when stdin was not requested).
    pub(super) stdin: tokio::sync::Mutex<Option<FdWriter>>,
}

/// Mutable part of a process.
pub(super) struct ProcState {
    child: Option<ChildStdio>,
    /// Output ends, taken by the first attach.
    pub(super) output: Option<AgentStdio>,
    master: Option<OwnedFd>,
    pub(super) pid: Option<i32>,
}

/// A container: its init process, its execs and its cgroup.
pub struct Container {
    init_id: String,
    cgroup: Option<PathBuf>,
    /// The agent's end of the container's exec server channel
    /// (`container::zygote`), once the init is started.
    exec_server: Option<Arc<OwnedFd>>,
    processes: std::collections::HashMap<String, Arc<ManagedProcess>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Container {
    /// Pid of the running init process, whose namespaces execs join.
    fn running_init(&self, container_id: &str) -> Result<i32> {
        let init = &self.processes[&self.init_id];
        let pid = lock(&init.state).pid;
        match (pid, init.exited()) {
            (Some(pid), None) => Ok(pid),
            _ => Err(ContainerizationError::invalid_state(format!(
                "container {container_id} is not running"
            ))),
        }
    }
}

impl Agent {
    /// For requests naming a container: the pid whose root and mount
    /// namespace their paths live in (`None` for the VM's own filesystem).
    pub(super) fn container_root(&self, container_id: &str) -> Result<Option<i32>> {
        if container_id.is_empty() {
            return Ok(None);
        }
        let containers = lock(&self.inner.containers);
        let c = containers.get(container_id).ok_or_else(|| {
            ContainerizationError::not_found(format!("container {container_id} not found"))
        })?;
        c.running_init(container_id).map(Some)
    }
}

impl ManagedProcess {
    fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }
}

impl Agent {
    /// Finds a process.
    pub(super) fn process(
        &self,
        container_id: &str,
        process_id: &str,
    ) -> Result<Arc<ManagedProcess>> {
        let containers = lock(&self.inner.containers);
        let c = containers.get(container_id).ok_or_else(|| {
            ContainerizationError::not_found(format!("container {container_id} not found"))
        })?;
        c.processes.get(process_id).cloned().ok_or_else(|| {
            ContainerizationError::not_found(format!(
                "process {process_id} not found in container {container_id}"
            ))
        })
    }

    pub(super) fn create_process_impl(&self, r: proto::CreateProcessRequest) -> Result<()> {
        let spec = check_create_request(&r)?;
        let mut containers = lock(&self.inner.containers);
        let exec = containers.contains_key(&r.container_id);
        if exec {
            if containers[&r.container_id]
                .processes
                .contains_key(&r.process_id)
            {
                return Err(ContainerizationError::exists(format!(
                    "process {} already exists in container {}",
                    r.process_id, r.container_id
                )));
            }
        } else if spec.root().is_none() {
            return Err(ContainerizationError::invalid_argument(
                "the OCI runtime spec has no root.path",
            ));
        }
        let (child, agent) = stdio::create(r.stdin, r.terminal)?;
        let mut agent = agent;
        let stdin = match agent.stdin.take() {
            Some(fd) => Some(FdWriter::new(fd).context(Code::InternalError, "cannot watch stdin")?),
            None => None,
        };
        let master = agent.master.take();
        let proc = Arc::new(ManagedProcess {
            id: r.process_id.clone(),
            spec: spec.clone(),
            terminal: r.terminal,
            state: Mutex::new(ProcState {
                child: Some(child),
                output: Some(agent),
                master,
                pid: None,
            }),
            exit: watch::channel(None).0,
            stdin: tokio::sync::Mutex::new(stdin),
        });
        if exec {
            if let Some(c) = containers.get_mut(&r.container_id) {
                c.processes.insert(r.process_id.clone(), proc);
            }
            return Ok(());
        }
        if self.inner.pid1 {
            crate::boot::prepare_for_containers();
        }
        let cgroup = if cgroup::available(&self.inner.cgroup_root) {
            let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
            Some(cgroup::create(
                &self.inner.cgroup_root,
                &r.container_id,
                resources,
            )?)
        } else {
            None
        };
        let mut processes = std::collections::HashMap::new();
        processes.insert(r.process_id.clone(), proc);
        containers.insert(
            r.container_id.clone(),
            Container {
                init_id: r.process_id,
                cgroup,
                exec_server: None,
                processes,
            },
        );
        Ok(())
    }

    pub(super) async fn start_process_impl(
        &self,
        container_id: &str,
        process_id: &str,
    ) -> Result<i32> {
        let proc = self.process(container_id, process_id)?;
        let (join_pid, cgroup, server) = {
            let containers = lock(&self.inner.containers);
            let c = containers.get(container_id).ok_or_else(|| {
                ContainerizationError::not_found(format!("container {container_id} not found"))
            })?;
            let join_pid = if c.init_id == process_id {
                None
            } else {
                Some(c.running_init(container_id)?)
            };
            (join_pid, c.cgroup.clone(), c.exec_server.clone())
        };
        let child = {
            let mut st = lock(&proc.state);
            if st.pid.is_some() || proc.exited().is_some() {
                return Err(ContainerizationError::invalid_state(format!(
                    "process {process_id} was already started"
                )));
            }
            st.child.take().ok_or_else(|| {
                ContainerizationError::invalid_state(format!(
                    "process {process_id} is being started"
                ))
            })?
        };
        let config = ExecConfig {
            spec: proc.spec.clone(),
            join_pid,
            cgroup,
            terminal: proc.terminal,
        };
        let reaper = self.inner.reaper.clone();
        let start = move || -> Result<_> {
            if let Some(server) = server {
                match exec_through_server(&server, &config, &child) {
                    Ok((None, None)) | Err(_) => {} // gone: a fresh helper
                    Ok(answer) => return Ok((answer, None)),
                }
            }
            if config.join_pid.is_some() {
                return spawn_vmexec(&config, child, None, &reaper).map(|a| (a, None));
            }
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::SeqPacket,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| crate::sys::errno_error(e, "cannot create a socket pair"))?;
            spawn_vmexec(&config, child, Some(theirs), &reaper).map(|a| (a, Some(ours)))
        };
        let ((pid, error), server) = tokio::task::spawn_blocking(start).await.map_err(|e| {
            ContainerizationError::internal("process start task failed").with_cause(e)
        })??;
        if let Some(server) = server
            && pid.is_some()
            && let Some(c) = lock(&self.inner.containers).get_mut(container_id)
        {
            c.exec_server = Some(Arc::new(server));
        }
        if let Some(pid) = pid {
            lock(&proc.state).pid = Some(pid);
            let rx = self.inner.reaper.register(pid);
            let tx = proc.exit.clone();
            tokio::spawn(async move {
                if let Ok(exit) = rx.await {
                    // send_replace stores the value even while nobody is waiting.
                    tx.send_replace(Some(exit));
                }
            });
        }
        match (pid, error) {
            (_, Some(msg)) => Err(ContainerizationError::invalid_argument(format!(
                "cannot start process {process_id}: {msg}"
            ))),
            (Some(pid), None) => Ok(pid),
            (None, None) => Err(ContainerizationError::internal(format!(
                "process {process_id}: the setup helper exited without reporting a pid"
            ))),
        }
    }

    pub(super) fn kill_process_impl(
        &self,
        container_id: &str,
        process_id: &str,
        signal: i32,
    ) -> Result<()> {
        let proc = self.process(container_id, process_id)?;
        let sig = nix::sys::signal::Signal::try_from(signal).map_err(|_| {
            ContainerizationError::invalid_argument(format!("invalid signal {signal}"))
        })?;
        let pid = lock(&proc.state).pid.ok_or_else(|| {
            ContainerizationError::invalid_state(format!("process {process_id} is not started"))
        })?;
        // After exit the pid may belong to someone else: do nothing.
        if proc.exited().is_some() {
            return Ok(());
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| crate::sys::errno_error(e, format!("cannot signal process {process_id}")))
    }

    pub(super) async fn wait_process_impl(
        &self,
        r: proto::WaitProcessRequest,
    ) -> Result<proto::WaitProcessResponse> {
        let proc = self.process(&r.container_id, &r.process_id)?;
        let mut rx = proc.exit.subscribe();
        let wait = async move {
            rx.wait_for(|e| e.is_some()).await.map(|e| {
                e.unwrap_or(Exit {
                    code: -1,
                    at: UNIX_EPOCH,
                })
            })
        };
        let exit = match r.timeout_ms {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), wait)
                .await
                .map_err(|_| {
                    ContainerizationError::timeout(format!(
                        "process {} did not exit within {ms} ms",
                        r.process_id
                    ))
                })?,
            None => wait.await,
        }
        .map_err(|_| ContainerizationError::internal("the process was deleted while waiting"))?;
        let at = exit.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(proto::WaitProcessResponse {
            exit_code: exit.code,
            exited_at_sec: i64::try_from(at.as_secs()).unwrap_or(0),
            exited_at_nsec: i32::try_from(at.subsec_nanos()).unwrap_or(0),
        })
    }

    pub(super) fn resize_process_impl(&self, r: proto::ResizeProcessRequest) -> Result<()> {
        let proc = self.process(&r.container_id, &r.process_id)?;
        let st = lock(&proc.state);
        let master = st.master.as_ref().ok_or_else(|| {
            ContainerizationError::invalid_state(format!(
                "process {} has no terminal",
                r.process_id
            ))
        })?;
        let rows = u16::try_from(r.rows)
            .map_err(|_| ContainerizationError::invalid_argument("rows out of range"))?;
        let cols = u16::try_from(r.columns)
            .map_err(|_| ContainerizationError::invalid_argument("columns out of range"))?;
        stdio::resize(master, rows, cols).context(Code::InternalError, "cannot resize the terminal")
    }

    pub(super) async fn close_stdin_impl(
        &self,
        container_id: &str,
        process_id: &str,
    ) -> Result<()> {
        let proc = self.process(container_id, process_id)?;
        proc.stdin.lock().await.take();
        Ok(())
    }

    pub(super) fn delete_process_impl(&self, container_id: &str, process_id: &str) -> Result<()> {
        let proc = self.process(container_id, process_id)?;
        let started = lock(&proc.state).pid.is_some();
        if started && proc.exited().is_none() {
            return Err(ContainerizationError::invalid_state(format!(
                "process {process_id} is running; signal it and wait before deleting"
            )));
        }
        let mut containers = lock(&self.inner.containers);
        let Some(c) = containers.get_mut(container_id) else {
            return Ok(());
        };
        if c.init_id == process_id {
            let running = c
                .processes
                .values()
                .any(|p| lock(&p.state).pid.is_some() && p.exited().is_none());
            if running {
                return Err(ContainerizationError::invalid_state(format!(
                    "container {container_id} still has running processes"
                )));
            }
            if let Some(c) = containers.remove(container_id)
                && let Some(dir) = &c.cgroup
            {
                cgroup::remove(dir);
            }
        } else {
            c.processes.remove(process_id);
        }
        Ok(())
    }

    pub(super) fn statistics_impl(
        &self,
        r: proto::ContainerStatisticsRequest,
    ) -> proto::ContainerStatisticsResponse {
        let containers = lock(&self.inner.containers);
        let networks = cgroup::network_statistics();
        let mut out = Vec::new();
        let mut ids: Vec<&String> = containers.keys().collect();
        ids.sort();
        for id in ids {
            if !r.container_ids.is_empty() && !r.container_ids.contains(id) {
                continue;
            }
            let mut stats = match &containers[id].cgroup {
                Some(dir) => cgroup::statistics(dir, id),
                None => proto::ContainerStatistics {
                    container_id: id.clone(),
                    ..Default::default()
                },
            };
            stats.networks = networks.clone();
            out.push(stats);
        }
        proto::ContainerStatisticsResponse { containers: out }
    }
}

/// Runs `vminitd __vmexec` and waits until the process has exec'd (or
/// failed). Returns the container process's pid and a setup error, if any.
/// The checks of a CreateProcess request that need no state: the ids name
/// no path, the spec is a runtime spec with a process that has args.
/// Returns the parsed spec.
pub fn check_create_request(r: &proto::CreateProcessRequest) -> Result<Spec> {
    if r.container_id.is_empty() || r.process_id.is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "container id and process id must not be empty",
        ));
    }
    if r.container_id.contains('/') || r.container_id.starts_with('.') {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid container id {:?}",
            r.container_id
        )));
    }
    let spec: Spec = serde_json::from_slice(&r.oci_spec).map_err(|e| {
        ContainerizationError::invalid_argument("the OCI runtime spec is not valid JSON for a spec")
            .with_cause(e)
    })?;
    let process = spec.process().as_ref().ok_or_else(|| {
        ContainerizationError::invalid_argument("the OCI runtime spec has no process")
    })?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(ContainerizationError::invalid_argument(
            "the process has no args",
        ));
    }
    Ok(spec)
}

/// Asks the container's exec server to fork the process (see
/// `container::zygote`). `Ok((None, None))`: the server did not answer.
fn exec_through_server(
    server: &OwnedFd,
    config: &ExecConfig,
    child: &ChildStdio,
) -> Result<(Option<i32>, Option<String>)> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let (mut ours, theirs) =
        UnixStream::pair().context(Code::InternalError, "cannot create a socket pair")?;
    let json = serde_json::to_vec(config)
        .context(Code::InternalError, "cannot encode the setup request")?;
    let fds = [
        child.stdin.as_raw_fd(),
        child.stdout.as_raw_fd(),
        child.stderr.as_raw_fd(),
        theirs.as_raw_fd(),
    ];
    sendmsg::<()>(
        server.as_raw_fd(),
        &[std::io::IoSlice::new(&json)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| crate::sys::errno_error(e, "the exec server is gone"))?;
    drop(theirs);
    read_setup_reply(&mut ours)
}

/// Reads a setup socket to EOF: the pid line and the first error line.
fn read_setup_reply(sock: &mut UnixStream) -> Result<(Option<i32>, Option<String>)> {
    let mut reply = String::new();
    sock.read_to_string(&mut reply)
        .context(Code::InternalError, "cannot read the setup reply")?;
    let mut pid = None;
    let mut error = None;
    for line in reply.lines() {
        if let Some(p) = line.strip_prefix(REPLY_PID) {
            pid = p.trim().parse().ok();
        } else if let Some(e) = line.strip_prefix(REPLY_ERROR) {
            error.get_or_insert_with(|| e.to_string());
        }
    }
    Ok((pid, error))
}

/// Spawns `vminitd __vmexec`; `server` is the exec server's end of its
/// channel, for a container's first process.
fn spawn_vmexec(
    config: &ExecConfig,
    child: ChildStdio,
    server: Option<OwnedFd>,
    reaper: &crate::reaper::Reaper,
) -> Result<(Option<i32>, Option<String>)> {
    let (mut ours, theirs) =
        UnixStream::pair().context(Code::InternalError, "cannot create a socket pair")?;
    let theirs_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(vmexec::ARG).arg(theirs_fd.to_string());
    if let Some(s) = &server {
        cmd.arg(s.as_raw_fd().to_string());
    }
    cmd.env_clear()
        .stdin(Stdio::from(child.stdin))
        .stdout(Stdio::from(child.stdout))
        .stderr(Stdio::from(child.stderr));
    // No pre_exec closure, so std spawns with posix_spawn (a vfork that
    // shares the agent's memory) instead of copying the agent's page tables,
    // which costs tens of ms under TCG. The setup socket is inherited by
    // number: it is the only descriptor made inheritable, and only while
    // this lock is held, so no other spawn can take it along.
    static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let helper = {
        let _spawning = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        for fd in std::iter::once(theirs.as_fd()).chain(server.as_ref().map(|s| s.as_fd())) {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .map_err(|e| crate::sys::errno_error(e, "cannot pass the setup socket"))?;
        }
        let spawned = cmd.spawn();
        drop(cmd);
        drop(theirs);
        drop(server);
        spawned.context(Code::InternalError, "cannot run the process setup helper")?
    };
    // The reaper owns all waiting; the helper's own status is not interesting.
    drop(reaper.register(helper.id() as i32));
    let json = serde_json::to_vec(config)
        .context(Code::InternalError, "cannot encode the setup request")?;
    ours.write_all(&json)
        .and_then(|_| ours.shutdown(std::net::Shutdown::Write))
        .context(Code::InternalError, "cannot send the setup request")?;
    read_setup_reply(&mut ours)
}
