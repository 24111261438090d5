//! One containerd task = one `LinuxContainer` = one VM: create from the
//! bundle, start, exec, signal, wait, delete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::topics;
use containerization::terminal::Size;
use containerization::{
    ContainerStatistics, LinuxContainer, Mount, ProcessConfiguration, QemuVirtualMachineManager,
};
use containerization_error::{ContainerizationError, Result};

use crate::events::{Events, timestamp};
use crate::process::{ProcessState, Status};
use crate::rootfs::{self, RootfsMount};
use crate::spec::{Process, Spec};
use crate::stdio::{OpenStdio, StdioPaths};

/// Name of the ext4 image written into the bundle.
pub const ROOTFS_IMAGE: &str = "rootfs.ext4";

/// A task and its VM.
#[derive(Debug)]
pub struct VmTask {
    /// Task (container) id.
    pub id: String,
    /// OCI bundle directory.
    pub bundle: PathBuf,
    /// The container in its VM.
    pub container: Arc<LinuxContainer>,
    /// The init process.
    pub init: Arc<ProcessState>,
    execs: Mutex<HashMap<String, Arc<ProcessState>>>,
    events: Events,
}

/// What `create` needs from containerd's request.
#[derive(Debug, Clone)]
pub struct CreateParams {
    /// Task id.
    pub id: String,
    /// Bundle directory (holds `config.json`).
    pub bundle: PathBuf,
    /// Snapshot mounts for the rootfs (empty: `bundle/rootfs` is ready).
    pub rootfs: Vec<RootfsMount>,
    /// Init stdio.
    pub stdio: StdioPaths,
}

/// Removes whatever `create` may have left in a bundle: the image and any
/// mount on `rootfs` (used by `delete` and by the shim's cleanup action).
pub fn cleanup_bundle(bundle: &Path) {
    if let Err(e) = rootfs::unmount_all(&bundle.join("rootfs")) {
        log::warn!("{}", e.report());
    }
    let _ = std::fs::remove_file(bundle.join(ROOTFS_IMAGE));
}

/// Mounts the snapshot, copies it into `bundle/rootfs.ext4`, unmounts it.
async fn prepare_rootfs(bundle: &Path, mounts: Vec<RootfsMount>) -> Result<PathBuf> {
    let dir = bundle.join("rootfs");
    let image = bundle.join(ROOTFS_IMAGE);
    let out = image.clone();
    let started = Instant::now();
    let stats = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| {
            ContainerizationError::internal(format!("cannot create {}", dir.display()))
                .with_cause(e)
        })?;
        rootfs::mount_all(&mounts, &dir)?;
        let result = rootfs::directory_to_ext4(&dir, &out);
        // The copy is all the VM needs; leave no host mount behind.
        let unmounted = rootfs::unmount_all(&dir);
        let stats = result?;
        unmounted?;
        Ok::<_, ContainerizationError>(stats)
    })
    .await
    .map_err(|e| ContainerizationError::internal("rootfs copy task failed").with_cause(e))?;
    let stats = match stats {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&image);
            return Err(e);
        }
    };
    log::info!(
        "rootfs: {} entries, {} bytes copied into {} in {:.3}s",
        stats.entries,
        stats.bytes,
        image.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(image)
}

impl VmTask {
    /// Prepares the rootfs, boots the VM and creates the init process.
    pub async fn create(p: CreateParams, events: Events) -> Result<VmTask> {
        let spec = Spec::load(&p.bundle)?;
        let process = spec.process.clone().ok_or_else(|| {
            ContainerizationError::invalid_argument("the runtime spec has no process")
        })?;
        let vmm = Arc::new(QemuVirtualMachineManager::with_defaults()?);
        let stdio = p.stdio.open()?;
        let closer = stdio.closer.clone();
        let image = prepare_rootfs(&p.bundle, p.rootfs.clone()).await?;
        let result = Self::boot(&p, &spec, process, stdio, &image, vmm).await;
        let container = match result {
            Ok(c) => c,
            Err(e) => {
                cleanup_bundle(&p.bundle);
                return Err(e);
            }
        };
        let init = Arc::new(ProcessState::new("", p.stdio.clone(), None, closer));
        init.set_pid(container.vm_pids().await.first().copied().unwrap_or(0));
        Ok(VmTask {
            id: p.id,
            bundle: p.bundle,
            container: Arc::new(container),
            init,
            execs: Mutex::new(HashMap::new()),
            events,
        })
    }

    async fn boot(
        p: &CreateParams,
        spec: &Spec,
        process: Process,
        stdio: OpenStdio,
        image: &Path,
        vmm: Arc<QemuVirtualMachineManager>,
    ) -> Result<LinuxContainer> {
        let OpenStdio {
            stdin,
            stdout,
            stderr,
            ..
        } = stdio;
        let (cpus, memory) = (spec.cpus(), spec.memory_in_bytes());
        let hostname = spec.hostname.clone().unwrap_or_default();
        let bootlog = p.bundle.join("console.log");
        let rootfs = Mount::block("ext4", image, "/", vec![]);
        let container = LinuxContainer::new(&p.id, rootfs, vmm, move |c| {
            process.apply(&mut c.process)?;
            c.process.stdin = stdin;
            c.process.stdout = stdout;
            c.process.stderr = stderr;
            c.cpus = cpus;
            c.memory_in_bytes = memory;
            c.hostname = hostname;
            c.bootlog = Some(bootlog);
            Ok(())
        })?;
        let started = Instant::now();
        container.create().await?;
        log::info!(
            "VM of {} booted and init created in {:.3}s",
            p.id,
            started.elapsed().as_secs_f64()
        );
        Ok(container)
    }

    /// The process `exec_id` (`""` = init).
    pub fn process(&self, exec_id: &str) -> Result<Arc<ProcessState>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .map_err(|_| ContainerizationError::internal("exec table poisoned"))?
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                ContainerizationError::not_found(format!(
                    "exec {exec_id} does not exist in task {}",
                    self.id
                ))
            })
    }

    /// Starts the init or an exec; returns its pid.
    pub async fn start(self: &Arc<Self>, exec_id: &str) -> Result<u32> {
        let state = self.process(exec_id)?;
        if state.status() != Status::Created {
            return Err(ContainerizationError::invalid_state(format!(
                "process {} of task {} was already started",
                if exec_id.is_empty() { "init" } else { exec_id },
                self.id
            )));
        }
        match &state.process {
            None => {
                self.container.start().await?;
                state.set_status(Status::Running);
                self.events
                    .publish(
                        topics::TASK_START_EVENT_TOPIC,
                        Box::new(ev::TaskStart {
                            container_id: self.id.clone(),
                            pid: state.pid(),
                            ..Default::default()
                        }),
                    )
                    .await;
            }
            Some(process) => {
                process.start().await?;
                state.set_pid(process.pid().max(0) as u32);
                state.set_status(Status::Running);
                self.events
                    .publish(
                        topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                        Box::new(ev::TaskExecStarted {
                            container_id: self.id.clone(),
                            exec_id: exec_id.to_string(),
                            pid: state.pid(),
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        }
        self.monitor(state.clone());
        Ok(state.pid())
    }

    /// Waits for the process in the background; records and publishes its exit.
    fn monitor(self: &Arc<Self>, state: Arc<ProcessState>) {
        let task = self.clone();
        tokio::spawn(async move {
            let result = match &state.process {
                None => task.container.wait(None).await,
                Some(p) => p.wait(None).await,
            };
            let (code, at) = match result {
                Ok(s) => (s.exit_code as u32, SystemTime::from(s.exited_at)),
                Err(e) => {
                    log::warn!("lost process {:?}: {}", state.exec_id, e.report());
                    (255, SystemTime::now())
                }
            };
            state.set_status(Status::Stopped { code, at });
            task.publish_exit(&state, code, at).await;
        });
    }

    async fn publish_exit(&self, state: &ProcessState, code: u32, at: SystemTime) {
        let id = if state.exec_id.is_empty() {
            self.id.clone()
        } else {
            state.exec_id.clone()
        };
        self.events
            .publish(
                topics::TASK_EXIT_EVENT_TOPIC,
                Box::new(ev::TaskExit {
                    container_id: self.id.clone(),
                    id,
                    pid: state.pid(),
                    exit_status: code,
                    exited_at: Some(timestamp(at)).into(),
                    ..Default::default()
                }),
            )
            .await;
    }

    /// Creates an exec process (not started).
    pub async fn exec(&self, exec_id: &str, stdio: StdioPaths, spec: &Process) -> Result<()> {
        if exec_id.is_empty() || self.process(exec_id).is_ok() {
            return Err(ContainerizationError::exists(format!(
                "exec id {exec_id:?} is empty or already used in task {}",
                self.id
            )));
        }
        let mut config = ProcessConfiguration::default();
        spec.apply(&mut config)?;
        config.terminal = stdio.terminal || config.terminal;
        let open = stdio.open()?;
        config.stdin = open.stdin;
        config.stdout = open.stdout;
        config.stderr = open.stderr;
        let process = self.container.exec_with(exec_id, config).await?;
        let state = ProcessState::new(exec_id, stdio, Some(Arc::new(process)), open.closer);
        self.execs
            .lock()
            .map_err(|_| ContainerizationError::internal("exec table poisoned"))?
            .insert(exec_id.to_string(), Arc::new(state));
        self.events
            .publish(
                topics::TASK_EXEC_ADDED_EVENT_TOPIC,
                Box::new(ev::TaskExecAdded {
                    container_id: self.id.clone(),
                    exec_id: exec_id.to_string(),
                    ..Default::default()
                }),
            )
            .await;
        Ok(())
    }

    /// Sends `signal` to a process.
    pub async fn kill(&self, exec_id: &str, signal: u32) -> Result<()> {
        let state = self.process(exec_id)?;
        if state.exited() {
            return Err(ContainerizationError::not_found(format!(
                "process {exec_id:?} of task {} has already exited",
                self.id
            )));
        }
        let signal = i32::try_from(signal).map_err(|_| {
            ContainerizationError::invalid_argument(format!("signal {signal} is out of range"))
        })?;
        match &state.process {
            // Never started (e.g. `ctr task delete --force` of a created
            // task): nothing runs yet, so the signal ends it, as runc's
            // waiting init would die of it.
            None if state.status() == Status::Created => {
                let (code, at) = (128 + signal as u32, SystemTime::now());
                state.set_status(Status::Stopped { code, at });
                self.publish_exit(&state, code, at).await;
                Ok(())
            }
            None => self.container.kill(signal).await,
            Some(p) => p.kill(signal).await,
        }
    }

    /// Deletes an exited exec, or the task itself (powering the VM off and
    /// removing the rootfs image). Returns pid, exit code and time.
    pub async fn delete(&self, exec_id: &str) -> Result<(u32, u32, SystemTime)> {
        let state = self.process(exec_id)?;
        let (code, at) = match state.status() {
            Status::Stopped { code, at } => (code, at),
            Status::Created if exec_id.is_empty() => (0, SystemTime::now()),
            _ => {
                return Err(ContainerizationError::invalid_state(format!(
                    "process {exec_id:?} of task {} is still running; kill it first",
                    self.id
                )));
            }
        };
        if let Some(p) = &state.process {
            if let Err(e) = p.delete().await {
                log::warn!("deleting exec {exec_id}: {}", e.report());
            }
            if let Ok(mut execs) = self.execs.lock() {
                execs.remove(exec_id);
            }
            return Ok((state.pid(), code, at));
        }
        state.set_status(Status::Stopped { code, at });
        let started = Instant::now();
        if let Err(e) = self.container.stop().await {
            log::warn!("stopping the VM of {}: {}", self.id, e.report());
        }
        log::info!(
            "VM of {} stopped in {:.3}s",
            self.id,
            started.elapsed().as_secs_f64()
        );
        cleanup_bundle(&self.bundle);
        self.events
            .publish(
                topics::TASK_DELETE_EVENT_TOPIC,
                Box::new(ev::TaskDelete {
                    container_id: self.id.clone(),
                    pid: state.pid(),
                    exit_status: code,
                    exited_at: Some(timestamp(at)).into(),
                    ..Default::default()
                }),
            )
            .await;
        Ok((state.pid(), code, at))
    }

    /// Pauses the whole VM.
    pub async fn pause(&self) -> Result<()> {
        self.container.pause().await?;
        self.init.set_status(Status::Paused);
        self.events
            .publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                Box::new(ev::TaskPaused {
                    container_id: self.id.clone(),
                    ..Default::default()
                }),
            )
            .await;
        Ok(())
    }

    /// Resumes a paused VM.
    pub async fn resume(&self) -> Result<()> {
        self.container.resume().await?;
        self.init.set_status(Status::Running);
        self.events
            .publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                Box::new(ev::TaskResumed {
                    container_id: self.id.clone(),
                    ..Default::default()
                }),
            )
            .await;
        Ok(())
    }

    /// Resizes a process's terminal.
    pub async fn resize(&self, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let size = Size {
            width: width.min(u16::MAX as u32) as u16,
            height: height.min(u16::MAX as u32) as u16,
        };
        match &self.process(exec_id)?.process {
            None => self.container.resize(size).await,
            Some(p) => p.resize(size).await,
        }
    }

    /// Closes a process's stdin once what containerd's client wrote before
    /// has reached the process (the pump drains the FIFO, then closes).
    pub fn close_stdin(&self, exec_id: &str) -> Result<()> {
        if let Some(closer) = &self.process(exec_id)?.stdin_closer {
            closer.close();
        }
        Ok(())
    }

    /// The live processes: the init (reported with the VM's host pid, as
    /// everywhere) and each running exec (its pid in the guest).
    pub fn pids(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        if !self.init.exited() {
            out.push((self.init.pid(), String::new()));
        }
        if let Ok(execs) = self.execs.lock() {
            for (id, p) in execs.iter() {
                if p.status() == Status::Running {
                    out.push((p.pid(), id.clone()));
                }
            }
        }
        out.sort();
        out
    }

    /// Resource usage from the guest's cgroup.
    pub async fn statistics(&self) -> Result<ContainerStatistics> {
        self.container.statistics().await
    }

    /// Whether no process of the task is live (the shim may exit).
    pub fn finished(&self) -> bool {
        self.init.exited()
    }
}
