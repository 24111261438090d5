//! The `Containers` service: records in `containers.db`, bundles under
//! `containers/<id>/`, and one runtime helper per started container.

mod create;
pub mod helper;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use container_api::apiserver::{
    ContainerId, ContainerList, ContainerReply, CreateRequest, DeleteRequest, Empty, FilesReply,
    KillRequest, ListRequest, StopRequest, containers_server::Containers,
};
use container_api::config::CreateOptions;
use container_api::{ContainerDb, ContainerSnapshot, ContainerStatus, RuntimeClient, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_oci::{Image, Platform, PullOptions};
use tonic::{Request, Response, Status};

use crate::server::Shared;

/// Implements `Containers`.
pub(crate) struct ContainersService {
    shared: Arc<Shared>,
    /// One lock per container, held while its VM changes hands (start,
    /// opening its files, delete), so those never race each other.
    vm_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// How long `start` and `delete` wait for a `cp` or `export` of a stopped
/// container to finish.
const FILES_WAIT: Duration = Duration::from_secs(60);

fn db(root: &StateRoot) -> Result<ContainerDb> {
    ContainerDb::open(&root.containers_db())
}

fn reply(s: &ContainerSnapshot) -> Result<ContainerReply> {
    Ok(ContainerReply {
        snapshot_json: serde_json::to_string(s)
            .context(Code::InternalError, "encoding a snapshot")?,
    })
}

/// Marks containers whose helper died without recording an exit as stopped
/// (exit code unknown, with the reason); `--rm` containers whose helper died
/// are removed, as the helper would have done. Used at start-up and before
/// every read.
pub(crate) fn reconcile(root: &StateRoot) -> Result<Vec<ContainerSnapshot>> {
    let db = db(root)?;
    let mut out = Vec::new();
    for mut s in db.list()? {
        let live = matches!(
            s.status,
            ContainerStatus::Running | ContainerStatus::Starting
        );
        if live {
            let id = &s.configuration.id;
            let alive = s.helper_pid.is_some_and(|p| helper::alive(p, id));
            if !alive {
                let pid = s.helper_pid.map(|p| p.to_string()).unwrap_or_default();
                tracing::warn!(id = %id, pid = %pid, "runtime helper is gone; marking the container stopped");
                if s.configuration.auto_remove {
                    remove_orphan(root, &db, &s);
                    continue;
                }
                let reason = format!(
                    "its runtime helper (pid {pid}) died without recording an exit; the VM died with it"
                );
                db.set_stopped_because(id, None, Some(&reason))?;
                // Its persistent TAPs outlived it: removed now, unless a new
                // helper (a `start` right after) already owns the VM.
                if !s.configuration.networks.is_empty()
                    && let Some(_vm) = vm_unowned(root, id)
                {
                    delete_taps_now(&s.configuration);
                }
                s = db.get(id)?;
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Removes records whose create never finished (the apiserver died between
/// inserting the record and making the root disk, so the client was never
/// told it exists). Only at start-up, when no create is in progress.
pub(crate) fn remove_unfinished(root: &StateRoot) -> Result<usize> {
    let db = db(root)?;
    let mut removed = 0;
    for s in db.list()? {
        let id = &s.configuration.id;
        let dir = root.container_dir(id);
        if s.status == ContainerStatus::Created && !dir.join("rootfs.qcow2").is_file() {
            tracing::warn!(id = %id, "removing a container whose create was interrupted");
            db.remove(id)?;
            let _ = std::fs::remove_dir_all(&dir);
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes the bundles of containers that have no record: a `delete` (or
/// an `--rm` helper) removes the record first and was killed before it
/// removed the directory. Their TAPs go too. Only at start-up, when no
/// create is in progress (create inserts the record before the directory).
pub(crate) fn remove_orphan_bundles(root: &StateRoot) -> Result<usize> {
    let db = db(root)?;
    let dir = root.path().join("containers");
    let mut removed = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let Some(id) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !e.path().is_dir() || db.find(&id)?.is_some() {
            continue;
        }
        // A helper still holding the VM is ending; its bundle is left to
        // the next start-up.
        let Some(_vm) = vm_unowned(root, &id) else {
            tracing::warn!(id = %id, "a bundle without a record is still in use; left");
            continue;
        };
        if let Ok(text) = std::fs::read(e.path().join("config.json"))
            && let Ok(config) =
                serde_json::from_slice::<container_api::ContainerConfiguration>(&text)
        {
            delete_taps_now(&config);
        }
        tracing::warn!(id = %id, "removing the bundle of a container whose delete was interrupted");
        std::fs::remove_dir_all(e.path()).context(
            Code::InternalError,
            format!("removing {}", e.path().display()),
        )?;
        removed += 1;
    }
    Ok(removed)
}

/// The VM lock of `id` when no helper holds it (held until dropped, so no
/// helper can start meanwhile); `None` while a helper owns the VM.
fn vm_unowned(root: &StateRoot, id: &str) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let path = root
        .container_dir(id)
        .join(container_runtime_linux::VM_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

/// Deletes the TAPs of `config` and waits for it, from async or blocking
/// code alike (a thread of its own with its own small runtime).
fn delete_taps_now(config: &container_api::ContainerConfiguration) {
    std::thread::scope(|s| {
        s.spawn(|| {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(crate::networks::delete_taps(config)),
                Err(e) => tracing::warn!("deleting TAPs: no runtime: {e}"),
            }
        });
    });
}

/// Removes a `--rm` container whose helper died before it could remove it.
fn remove_orphan(root: &StateRoot, db: &ContainerDb, s: &ContainerSnapshot) {
    let id = &s.configuration.id;
    if let Err(e) = db.remove(id) {
        tracing::warn!(id = %id, "removing the record failed: {e}");
        return;
    }
    let _ = std::fs::remove_dir_all(root.container_dir(id));
    if !s.configuration.networks.is_empty() {
        // Its TAPs outlived it; the address is freed by the networks' gc,
        // which drops holders missing from containers.db.
        delete_taps_now(&s.configuration);
    }
    tracing::info!(id = %id, "removed --rm container whose helper died");
}

/// The image references existing containers use (kept by `image prune`).
pub(crate) fn images_in_use(root: &StateRoot) -> Result<std::collections::HashSet<String>> {
    Ok(db(root)?
        .list()?
        .into_iter()
        .flat_map(|s| [s.configuration.image, s.configuration.image_digest])
        .collect())
}

impl ContainersService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            vm_locks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes container `id`'s VM lock.
    async fn vm_lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .vm_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Ends the files-only helper of `id`, if one runs (after its clients
    /// are done), and waits for the VM lock to be free (a runtime helper
    /// whose container just exited is still powering off); `InvalidState`
    /// if either takes longer than [`FILES_WAIT`].
    async fn free_vm(&self, id: &str) -> Result<()> {
        if !helper::end_files_helper(self.root(), id, FILES_WAIT).await {
            return Err(ContainerizationError::invalid_state(format!(
                "container {id} is busy: a cp or export of it is still running; try again when it ends"
            )));
        }
        if !helper::wait_vm_free(self.root(), id, FILES_WAIT).await {
            return Err(ContainerizationError::invalid_state(format!(
                "container {id} is busy: its previous VM is still shutting down"
            )));
        }
        Ok(())
    }

    /// Where the files of `id` are served (see `OpenFiles`).
    async fn open_files(&self, id: &str) -> Result<std::path::PathBuf> {
        let _vm = self.vm_lock(id).await;
        let s = self.get(id)?;
        let id = &s.configuration.id;
        if matches!(
            s.status,
            ContainerStatus::Running | ContainerStatus::Starting
        ) {
            return Ok(helper::socket(self.root(), id));
        }
        let sock = self
            .root()
            .container_dir(id)
            .join(container_runtime_linux::FILES_SOCKET);
        // A helper that is ending (its last client just left) is waited
        // for, then a new one is started.
        for _ in 0..3 {
            match helper::files_helper(self.root(), id) {
                Some(pid) => {
                    if let Ok(c) = RuntimeClient::connect(&sock).await
                        && c.state().await.is_ok()
                    {
                        return Ok(sock);
                    }
                    helper::wait_gone(pid, id, FILES_WAIT).await;
                }
                None => {
                    crate::volumes::check_exclusive(self.root(), id)?;
                    if !helper::wait_vm_free(self.root(), id, FILES_WAIT).await {
                        return Err(ContainerizationError::invalid_state(format!(
                            "container {id} is busy: its previous VM is still shutting down"
                        )));
                    }
                    tracing::info!(id = %id, "starting a files-only helper");
                    helper::spawn_files(self.root(), id).await?;
                    return Ok(sock);
                }
            }
        }
        Err(ContainerizationError::invalid_state(format!(
            "container {id} is busy: its files-only helper does not answer"
        )))
    }

    fn root(&self) -> &StateRoot {
        &self.shared.root
    }

    fn get(&self, id: &str) -> Result<ContainerSnapshot> {
        reconcile(self.root())?
            .into_iter()
            .find(|s| s.configuration.id == id)
            .ok_or_else(|| ContainerizationError::not_found(format!("container '{id}' not found")))
    }

    async fn runtime(&self, s: &ContainerSnapshot) -> Result<RuntimeClient> {
        let id = &s.configuration.id;
        if s.status != ContainerStatus::Running && s.status != ContainerStatus::Starting {
            return Err(ContainerizationError::invalid_state(format!(
                "container {id} is not running"
            )));
        }
        RuntimeClient::connect(&helper::socket(self.root(), id)).await
    }

    /// The image of a new container and the platform it runs as, pulling
    /// the image, or its manifest for that platform, when not present.
    async fn image_for(
        &self,
        opts: &CreateOptions,
        requested: Option<&Platform>,
    ) -> Result<(Image, Platform)> {
        let store = &self.shared.images;
        let pull = |platform: Platform| PullOptions {
            platform: Some(platform),
            scheme: opts.scheme.parse().unwrap_or_default(),
            ..Default::default()
        };
        let image = match store.get(&opts.image) {
            Ok(i) => i,
            Err(e) if e.is_code(Code::NotFound) => {
                tracing::info!(image = %opts.image, "image not present; pulling");
                let platform = requested.cloned().unwrap_or_else(Platform::host);
                store.pull(&opts.image, &pull(platform)).await?
            }
            Err(e) => return Err(e),
        };
        let platform = image.run_platform(store.content(), requested)?;
        match image.resolve_manifest(store.content(), &platform) {
            Ok(_) => return Ok((image, platform)),
            // An index listing the platform, whose manifest is not here.
            Err(e) if e.is_code(Code::NotFound) => match image.index(store.content())? {
                Some(index) if platform.select(&index).is_ok() => {}
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        }
        tracing::info!(image = %opts.image, %platform, "platform not present; pulling");
        let image = store.pull(&opts.image, &pull(platform.clone())).await?;
        Ok((image, platform))
    }

    async fn create(&self, opts: CreateOptions) -> Result<ContainerSnapshot> {
        let requested = match opts.platform.as_str() {
            "" => None,
            p => {
                let p = Platform::parse(p)?;
                // An unknown architecture or a missing emulator fails
                // before anything is pulled.
                containerization::Emulator::interpreter_for(&p)?;
                Some(p)
            }
        };
        let (image, platform) = self.image_for(&opts, requested.as_ref()).await?;
        // A single-platform image of another architecture runs emulated
        // even without --arch: check the emulator is there.
        containerization::Emulator::interpreter_for(&platform)?;
        let store = &self.shared.images;
        let content = store.content();
        let image_config = image.config(content, &platform)?;
        let mut config = create::merge(&opts, &image_config, &image.reference, &image.digest())?;
        config.platform = platform.to_string();
        let id = config.id.clone();
        let db = db(self.root())?;
        if db.find(&id)?.is_some() {
            return Err(ContainerizationError::exists(format!(
                "container name '{id}' is already in use"
            )));
        }
        let (desc, manifest) = image.resolve_manifest(content, &platform)?;
        let layers: Vec<_> = manifest
            .layers()
            .iter()
            .map(|l| content.blob_path(l.digest().as_ref()))
            .collect();
        let key = desc.digest().to_string();
        let snapshots = self.root().path().join("snapshots");
        let base = tokio::task::spawn_blocking(move || {
            containerization_ext4::SnapshotStore::open(snapshots)?.get_or_create(
                &key,
                &layers,
                containerization_ext4::DEFAULT_SNAPSHOT_SIZE,
            )
        })
        .await
        .map_err(|e| ContainerizationError::internal("unpack task failed").with_cause(e))??;
        // Volumes are resolved (and made) under the volumes lock, held until
        // the record that references them exists, so no prune slips between.
        let (snap, new_volumes) = {
            let _guard = crate::volumes::lock().await;
            let (mounts, new_volumes) =
                crate::volumes::prepare_mounts(self.root(), &opts.mounts, &base).await?;
            config.mounts = mounts;
            // Addresses are allocated under the lock that also guards
            // releasing those of vanished containers.
            let nets = &self.shared.nets;
            let _net_lock = nets.create_lock.lock().await;
            nets.gc();
            let (networks, dns) = match nets.attach(&id, &opts) {
                Ok(n) => n,
                Err(e) => {
                    crate::volumes::discard(self.root(), &new_volumes);
                    return Err(e);
                }
            };
            config.networks = networks;
            config.publish = opts.publish.clone();
            config.publish_sockets = opts.publish_sockets.clone();
            config.dns = dns;
            match db.insert(&config) {
                Ok(snap) => (snap, new_volumes),
                Err(e) => {
                    if !config.networks.is_empty() {
                        nets.release(&id);
                    }
                    crate::volumes::discard(self.root(), &new_volumes);
                    return Err(e);
                }
            }
        };
        let dir = self.root().container_dir(&id);
        let result = async {
            std::fs::create_dir_all(&dir)
                .context(Code::InternalError, format!("creating {}", dir.display()))?;
            let cfg_json = serde_json::to_vec_pretty(&config)
                .context(Code::InternalError, "encoding config.json")?;
            containerization::write_atomic(&dir.join("config.json"), &cfg_json)?;
            containerization::rootfs::create_overlay(
                &base,
                &dir.join("rootfs.qcow2"),
                containerization::rootfs::DEFAULT_ROOTFS_SIZE,
            )
            .await?;
            Ok::<_, ContainerizationError>(())
        }
        .await;
        if let Err(e) = result {
            // Bad input changes nothing.
            let _ = db.remove(&id);
            self.shared.nets.release(&id);
            let _ = std::fs::remove_dir_all(&dir);
            crate::volumes::discard(self.root(), &new_volumes);
            return Err(e);
        }
        tracing::info!(id = %id, image = %config.image, "container created");
        Ok(snap)
    }
}

#[tonic::async_trait]
impl Containers for ContainersService {
    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<ContainerReply>, Status> {
        let opts: CreateOptions = serde_json::from_str(&req.into_inner().config_json)
            .map_err(|e| Status::invalid_argument(format!("bad create request: {e}")))?;
        let snap = ContainersService::create(self, opts).await?;
        Ok(Response::new(reply(&snap)?))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ContainerList>, Status> {
        let all = req.into_inner().all;
        // Addresses of containers removed by their own helper (`--rm`) are
        // released here too, not only at the next create.
        {
            let nets = &self.shared.nets;
            let _net_lock = nets.create_lock.lock().await;
            nets.gc();
        }
        let mut out = Vec::new();
        for s in reconcile(self.root())? {
            if all
                || matches!(
                    s.status,
                    ContainerStatus::Running | ContainerStatus::Starting
                )
            {
                out.push(reply(&s)?.snapshot_json);
            }
        }
        Ok(Response::new(ContainerList { snapshot_json: out }))
    }

    async fn get(&self, req: Request<ContainerId>) -> Result<Response<ContainerReply>, Status> {
        let s = ContainersService::get(self, &req.into_inner().id)?;
        Ok(Response::new(reply(&s)?))
    }

    async fn start(&self, req: Request<ContainerId>) -> Result<Response<ContainerReply>, Status> {
        let id = req.into_inner().id;
        let _vm = self.vm_lock(&id).await;
        let s = ContainersService::get(self, &id)?;
        if s.status == ContainerStatus::Starting {
            // A helper whose VM is up but whose init never started (the
            // client or the apiserver died midway): the client starts it.
            if let Ok(rt) = self.runtime(&s).await
                && rt.state().await.is_ok_and(|st| st.status == "created")
            {
                return Ok(Response::new(reply(&s)?));
            }
            return Err(ContainerizationError::invalid_state(format!(
                "container {id} is still starting"
            ))
            .into());
        }
        if s.status == ContainerStatus::Running {
            return Err(ContainerizationError::invalid_state(format!(
                "container {id} is already running"
            ))
            .into());
        }
        // A `cp` or `export` of the stopped container holds its VM: let it
        // finish first.
        self.free_vm(&id).await?;
        crate::volumes::check_exclusive(self.root(), &id)?;
        tracing::info!(id = %id, "starting the runtime helper");
        helper::spawn(self.root(), &id).await?;
        let s = ContainersService::get(self, &id)?;
        Ok(Response::new(reply(&s)?))
    }

    async fn stop(&self, req: Request<StopRequest>) -> Result<Response<ContainerReply>, Status> {
        let req = req.into_inner();
        let s = ContainersService::get(self, &req.id)?;
        let rt = self.runtime(&s).await?;
        let signal = if req.signal > 0 {
            req.signal
        } else {
            s.configuration.stop_signal
        };
        rt.stop(signal, req.timeout_secs).await?;
        // The helper records the exit; give it the moment it needs.
        if let Some(pid) = s.helper_pid {
            helper::wait_gone(pid, &req.id, Duration::from_secs(30)).await;
        }
        let s = db(self.root())?.find(&req.id)?;
        match s {
            Some(s) => Ok(Response::new(reply(&s)?)),
            None => Ok(Response::new(ContainerReply::default())),
        }
    }

    async fn kill(&self, req: Request<KillRequest>) -> Result<Response<ContainerReply>, Status> {
        let req = req.into_inner();
        let s = ContainersService::get(self, &req.id)?;
        let rt = self.runtime(&s).await?;
        rt.kill(
            &req.id,
            if req.signal > 0 {
                req.signal
            } else {
                libc::SIGKILL
            },
        )
        .await?;
        Ok(Response::new(reply(&s)?))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        let _vm = self.vm_lock(&req.id).await;
        let s = ContainersService::get(self, &req.id)?;
        if let Some(pid) = helper::files_helper(self.root(), &req.id)
            && !helper::end_files_helper(self.root(), &req.id, FILES_WAIT).await
        {
            // SIGKILL of the helper: its VM goes with it (PDEATHSIG).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            helper::wait_gone(pid, &req.id, Duration::from_secs(10)).await;
        }
        if matches!(
            s.status,
            ContainerStatus::Running | ContainerStatus::Starting
        ) {
            if !req.force {
                return Err(ContainerizationError::invalid_state(format!(
                    "container {} is running: stop it first or use --force",
                    req.id
                ))
                .into());
            }
            if let Ok(rt) = self.runtime(&s).await {
                let _ = rt.shutdown().await;
            }
            if let Some(pid) = s.helper_pid
                && !helper::wait_gone(pid, &req.id, Duration::from_secs(30)).await
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        db(self.root())?.remove(&req.id)?;
        // A helper killed outright cannot have removed its TAPs.
        crate::networks::delete_taps(&s.configuration).await;
        self.shared.nets.release(&req.id);
        let dir = self.root().container_dir(&req.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .context(Code::InternalError, format!("removing {}", dir.display()))?;
        }
        self.vm_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.id);
        tracing::info!(id = %req.id, "container deleted");
        Ok(Response::new(Empty {}))
    }

    async fn open_files(&self, req: Request<ContainerId>) -> Result<Response<FilesReply>, Status> {
        let sock = ContainersService::open_files(self, &req.into_inner().id).await?;
        Ok(Response::new(FilesReply {
            socket: sock.to_string_lossy().into_owned(),
        }))
    }
}
