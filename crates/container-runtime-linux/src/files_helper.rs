//! The files-only helper (`--files`): a stopped or created container's
//! files for `cp` and `export`. It boots the container's VM on its root
//! filesystem and mounts with no program running (the library's
//! `files_only`), serves `StatPath`/`CopyIn`/`CopyOut` on `files.sock`, and
//! ends once its clients are gone. It never writes `containers.db`: the
//! container's state and exit code stay as they were. It holds the VM lock,
//! so it and the container's runtime helper never run at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use container_api::runtime::runtime_server::RuntimeServer;
use container_api::{ContainerDb, StateRoot};
use containerization::{LinuxContainer, Mount, QemuVirtualMachineManager, default_initfs};
use containerization_error::{Code, Result, ResultExt};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;

use crate::conns::Connections;
use crate::helper::{Helper, init_logging, kernel, lock_vm};
use crate::service::RuntimeService;
use crate::{FILES_PID, FILES_SOCKET};

/// How long the helper stays up after its last client left (a second `cp`
/// right after the first reuses the VM).
const GRACE: Duration = Duration::from_secs(2);

/// How long it waits for a first client after boot before giving up.
const FIRST_CLIENT: Duration = Duration::from_secs(60);

/// Memory of the files VM: the agent's tar streams need little, whatever
/// the container's own limit.
const MEMORY: u64 = 256 << 20;

/// What the service tracks in a files-only helper.
#[derive(Debug, Default)]
pub(crate) struct FilesState {
    /// A client asked for files at least once.
    pub used: AtomicBool,
    /// `Shutdown` was called (a `start` or `delete` wants the VM lock).
    pub closing: AtomicBool,
}

/// The whole life of the files-only helper of container `id`.
pub(crate) async fn run(root: StateRoot, id: String) -> Result<()> {
    let dir = root.container_dir(&id);
    let _ = std::fs::remove_file(dir.join(crate::FILES_ERROR_FILE));
    init_logging(&dir.join("runtime.log"));
    let _vm_lock = lock_vm(&dir, &id)?;
    let db = ContainerDb::open(&root.containers_db())?;
    let config = db.get(&id)?.configuration;
    tracing::info!(id = %id, "files-only helper starting");
    let pid_file = dir.join(FILES_PID);
    containerization::write_atomic(&pid_file, std::process::id().to_string().as_bytes())?;
    let result = serve(&root, &id, db, config).await;
    let _ = std::fs::remove_file(&pid_file);
    result
}

async fn serve(
    root: &StateRoot,
    id: &str,
    db: ContainerDb,
    config: container_api::ContainerConfiguration,
) -> Result<()> {
    let dir = root.container_dir(id);
    let vmm = Arc::new(QemuVirtualMachineManager::new(
        kernel(&config)?,
        default_initfs()?,
    ));
    let rootfs = Mount::block("ext4", dir.join("rootfs.qcow2"), "/", Vec::new());
    let mounts = crate::mounts::library_mounts(root, &config.mounts)?;
    let bootlog = dir.join("files-bootlog");
    let container = LinuxContainer::new(id, rootfs, vmm, |c| {
        // Never run: the holder takes PID 1's place.
        c.process.args = vec!["/.container-files-only".into()];
        c.files_only = true;
        c.memory_in_bytes = MEMORY;
        c.hostname = config.hostname.clone();
        c.bootlog = Some(bootlog);
        c.mounts = mounts;
        c.read_only_rootfs = config.read_only;
        c.shm_size_in_bytes = config.shm_size_in_bytes;
        Ok(())
    })?;
    if let Err(e) = container.start().await {
        let _ = container.stop().await;
        return Err(e);
    }
    let helper = Arc::new(Helper::files_only(id, config, container, db));

    let sock = dir.join(FILES_SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = match tokio::net::UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            let _ = helper.container.stop().await;
            return Err(e).context(Code::InternalError, format!("binding {}", sock.display()));
        }
    };
    tracing::info!("VM booted with no program; serving {}", sock.display());
    let conns = Connections::new();
    let incoming = {
        let conns = conns.clone();
        UnixListenerStream::new(listener).map(move |r| r.map(|io| conns.track(io)))
    };
    let done = {
        let (helper, sock) = (helper.clone(), sock.clone());
        async move {
            until_unused(&helper, &conns).await;
            // New clients fail at once from here on, and ask again.
            let _ = std::fs::remove_file(&sock);
        }
    };
    let served = tonic::transport::Server::builder()
        .add_service(RuntimeServer::new(RuntimeService::new(helper.clone())))
        .serve_with_incoming_shutdown(incoming, done)
        .await;
    let _ = std::fs::remove_file(&sock);
    // The holder ends on SIGTERM; the agent syncs and unmounts, so what was
    // copied in is on the disk images.
    if let Err(e) = helper.container.stop().await {
        tracing::warn!("stopping the VM failed: {e}");
    }
    tracing::info!("files-only helper done");
    served.context(Code::InternalError, "serving files.sock")
}

/// Returns once no client is connected and either `Shutdown` was called,
/// the last client left [`GRACE`] ago, or none came within [`FIRST_CLIENT`].
async fn until_unused(h: &Helper, conns: &Connections) {
    let Some(files) = &h.files else { return };
    let booted = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (open, changed) = conns.snapshot();
        if open > 0 {
            continue;
        }
        let used = files.used.load(Ordering::SeqCst);
        if files.closing.load(Ordering::SeqCst)
            || (used && changed.elapsed() >= GRACE)
            || (!used && booted.elapsed() >= FIRST_CLIENT)
        {
            return;
        }
    }
}
