//! Start-up and shut-down of the daemon: state root, log, pid file, socket.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use container_api::StateRoot;
use container_api::apiserver::{
    containers_server::ContainersServer, images_server::ImagesServer,
    registry_server::RegistryServer, system_server::SystemServer,
};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::net::UnixListener;
use tokio::sync::Notify;
use tokio_stream::wrappers::UnixListenerStream;

use crate::containers::ContainersService;
use crate::images::ImagesService;
use crate::registry::RegistryService;
use crate::system::SystemService;
use crate::volumes::VolumesService;
use container_api::apiserver::volumes_server::VolumesServer;

/// What `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The state root every store lives under.
    pub root: StateRoot,
    /// `tracing` filter for the log file.
    pub log_level: String,
}

/// State shared by every service of one daemon.
pub(crate) struct Shared {
    pub root: StateRoot,
    pub images: containerization_oci::ImageStore,
    pub started: String,
    pub shutdown: Notify,
    pub nets: Arc<crate::networks::Nets>,
}

/// Serves until a `Shutdown` RPC, SIGTERM or SIGINT; removes the socket and
/// pid file on the way out.
pub async fn serve(opts: ServerOptions) -> Result<()> {
    let root = opts.root.clone();
    // Everything the daemon creates is private unless made otherwise.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    std::fs::create_dir_all(root.logs_dir()).context(
        Code::InternalError,
        format!("creating {}", root.logs_dir().display()),
    )?;
    init_logging(&root.apiserver_log(), &opts.log_level)?;

    let socket = root.apiserver_socket();
    let listener = bind_socket(&socket).await?;
    write_pid_file(&root.apiserver_pid())?;

    let images = containerization_oci::ImageStore::open(root.path())?;
    remove_leftovers(&root, &images);
    let nets = crate::networks::Nets::start(&root).await?;
    let shared = Arc::new(Shared {
        root: root.clone(),
        images,
        started: chrono::Utc::now().to_rfc3339(),
        shutdown: Notify::new(),
        nets: nets.clone(),
    });
    // Containers whose helper died while we were away are marked stopped;
    // live helpers are found again through containers.db.
    match crate::containers::reconcile(&root) {
        Ok(list) => tracing::info!(
            running = list
                .iter()
                .filter(|s| s.status == container_api::ContainerStatus::Running)
                .count(),
            "containers re-discovered"
        ),
        Err(e) => tracing::warn!("reading containers.db failed: {e}"),
    }
    tracing::info!(root = %root.path().display(), pid = std::process::id(), "apiserver listening on {}", socket.display());

    let stop = {
        let shared = shared.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler cannot fail at start-up");
            tokio::select! {
                _ = shared.shutdown.notified() => tracing::info!("shutdown requested"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
    };
    let result = tonic::transport::Server::builder()
        .add_service(SystemServer::new(SystemService::new(shared.clone())))
        .add_service(
            ImagesServer::new(ImagesService::new(shared.clone()))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(RegistryServer::new(RegistryService::new(shared.clone())))
        .add_service(ContainersServer::new(ContainersService::new(
            shared.clone(),
        )))
        .add_service(VolumesServer::new(VolumesService::new(shared.clone())))
        .add_service(
            container_api::apiserver::networks_server::NetworksServer::new(
                crate::networks::NetworksService::new(nets),
            ),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(root.apiserver_pid());
    tracing::info!("apiserver stopped");
    result.context(Code::InternalError, "serving the API")
}

/// Removes what a killed apiserver (or CLI build) left half-written: partial
/// blobs and `load` staging directories of dead writers, unfinished image
/// snapshots, half-made volumes, containers whose create was cut short,
/// bundles whose delete was cut short.
/// None of it was visible as content or acknowledged to a client.
fn remove_leftovers(root: &StateRoot, images: &containerization_oci::ImageStore) {
    let ingest = images.clean_abandoned().unwrap_or_else(|e| {
        tracing::warn!("cleaning content/ingest failed: {e}");
        0
    });
    let snapshots = containerization_ext4::SnapshotStore::open(root.path().join("snapshots"))
        .and_then(|s| s.remove_partial())
        .unwrap_or_else(|e| {
            tracing::warn!("cleaning unfinished snapshots failed: {e}");
            0
        });
    let volumes = crate::volumes::VolumeStore::new(root).remove_partial();
    let containers = crate::containers::remove_unfinished(root).unwrap_or_else(|e| {
        tracing::warn!("checking containers.db failed: {e}");
        0
    });
    let bundles = crate::containers::remove_orphan_bundles(root).unwrap_or_else(|e| {
        tracing::warn!("checking container bundles failed: {e}");
        0
    });
    if ingest + snapshots + volumes + containers + bundles > 0 {
        tracing::info!(
            ingest,
            snapshots,
            volumes,
            containers,
            bundles,
            "removed leftovers of interrupted operations"
        );
    }
}

fn init_logging(path: &Path, filter: &str) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .context(
            Code::InternalError,
            format!("opening log {}", path.display()),
        )?;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init in the same process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// Binds the API socket: refuses if a live daemon answers on it, replaces a
/// stale one, then restricts it to root and the `container` group.
async fn bind_socket(socket: &Path) -> Result<UnixListener> {
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Err(ContainerizationError::exists(format!(
                "an apiserver is already listening on {}",
                socket.display()
            )));
        }
        std::fs::remove_file(socket).context(
            Code::InternalError,
            format!("removing stale {}", socket.display()),
        )?;
    }
    let listener = UnixListener::bind(socket)
        .context(Code::InternalError, format!("binding {}", socket.display()))?;
    let group = nix::unistd::Group::from_name("container").ok().flatten();
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    if let Some(g) = group {
        nix::unistd::chown(socket, None, Some(g.gid)).context(
            Code::InternalError,
            format!("chgrp container {}", socket.display()),
        )?;
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
        .context(Code::InternalError, format!("chmod {}", socket.display()))?;
    Ok(listener)
}

/// Writes the pid file atomically (temp file, fsync, rename).
fn write_pid_file(path: &Path) -> Result<()> {
    let tmp = path.with_extension("pid.tmp");
    let mut f = std::fs::File::create(&tmp)
        .context(Code::InternalError, format!("writing {}", tmp.display()))?;
    writeln!(f, "{}", std::process::id())
        .and_then(|_| f.sync_all())
        .context(Code::InternalError, format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .context(Code::InternalError, format!("writing {}", path.display()))?;
    Ok(())
}
