//! The `Volumes` service, and the rules containers follow when they use
//! volumes: resolved (and created, filled from the image) at container
//! create, never deleted while referenced, never shared read-write.

mod seed;
mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use container_api::apiserver::{
    Empty, VolumeCreateRequest, VolumeList, VolumeName, VolumePruneReply, VolumeReply,
    volumes_server::Volumes,
};
use container_api::config::{MountKind, MountSpec};
use container_api::volume::Volume;
use container_api::{ContainerDb, ContainerSnapshot, ContainerStatus, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tonic::{Request, Response, Status};

use crate::server::Shared;
pub(crate) use store::VolumeStore;

/// Serialises volume creation, deletion and the in-use checks, so a
/// container create cannot slip between "unused" and "deleted".
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes the volumes lock (see [`LOCK`]).
pub(crate) async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
    LOCK.lock().await
}

/// Implements `Volumes`.
pub(crate) struct VolumesService {
    shared: Arc<Shared>,
}

fn reply(v: &Volume) -> Result<VolumeReply> {
    Ok(VolumeReply {
        volume_json: serde_json::to_string(v).context(Code::InternalError, "encoding a volume")?,
    })
}

fn containers(root: &StateRoot) -> Result<Vec<ContainerSnapshot>> {
    ContainerDb::open(&root.containers_db())?.list()
}

fn uses(s: &ContainerSnapshot, name: &str) -> bool {
    s.configuration
        .mounts
        .iter()
        .any(|m| m.kind == MountKind::Volume && m.source == name)
}

/// Ids of the containers that reference volume `name`.
fn users(all: &[ContainerSnapshot], name: &str) -> Vec<String> {
    all.iter()
        .filter(|s| uses(s, name))
        .map(|s| s.configuration.id.clone())
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ContainerizationError::internal("a volume task failed").with_cause(e))?
}

/// Resolves the volume mounts of a container being created: an empty
/// source becomes a new anonymous volume, a missing named volume is
/// created, and a volume's first use gets the image's files at the mount
/// point (`image_rootfs` is the image's unpacked ext4). Returns the mounts
/// with volume names filled in and the volumes this call created (for the
/// caller to remove if the create fails later). The caller holds [`lock`]
/// until the container's record is stored.
pub(crate) async fn prepare_mounts(
    root: &StateRoot,
    mounts: &[MountSpec],
    image_rootfs: &Path,
) -> Result<(Vec<MountSpec>, Vec<String>)> {
    let store = VolumeStore::new(root);
    let mut out = Vec::with_capacity(mounts.len());
    let mut created = Vec::new();
    for m in mounts {
        let mut m = m.clone();
        if m.kind == MountKind::Volume {
            let image = image_rootfs.to_path_buf();
            let dest = m.destination.clone();
            let s = store.clone();
            let result = if m.source.is_empty() {
                let name = store::anonymous_name();
                m.source = name.clone();
                blocking(move || {
                    s.create(
                        &name,
                        BTreeMap::new(),
                        BTreeMap::new(),
                        true,
                        Some((&image, &dest)),
                    )
                    .map(|_| true)
                })
                .await
            } else {
                let name = m.source.clone();
                blocking(move || match s.get(&name) {
                    Ok(_) => s.initialize(&name, Some((&image, &dest))).map(|_| false),
                    Err(e) if e.is_code(Code::NotFound) => s
                        .create(
                            &name,
                            BTreeMap::new(),
                            BTreeMap::new(),
                            false,
                            Some((&image, &dest)),
                        )
                        .map(|_| true),
                    Err(e) => Err(e),
                })
                .await
            };
            match result {
                Ok(true) => created.push(m.source.clone()),
                Ok(false) => {}
                Err(e) => {
                    discard(root, &created);
                    return Err(e);
                }
            }
        }
        out.push(m);
    }
    Ok((out, created))
}

/// Removes volumes a failed container create made.
pub(crate) fn discard(root: &StateRoot, names: &[String]) {
    let store = VolumeStore::new(root);
    for n in names {
        let _ = store.remove(n);
    }
}

/// Refuses to start container `id` while another running container uses
/// one of its volumes, unless both mount it read-only: ext4 is not a
/// cluster filesystem, and two VMs writing one image corrupt it.
pub(crate) fn check_exclusive(root: &StateRoot, id: &str) -> Result<()> {
    let all = containers(root)?;
    let Some(me) = all.iter().find(|s| s.configuration.id == id) else {
        return Ok(());
    };
    for m in me
        .configuration
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Volume)
    {
        // A files-only helper (`cp` of a stopped container) mounts the
        // container's volumes like a running container does.
        for other in all.iter().filter(|s| {
            s.configuration.id != id
                && (matches!(
                    s.status,
                    ContainerStatus::Running | ContainerStatus::Starting
                ) || crate::containers::helper::files_helper(root, &s.configuration.id)
                    .is_some())
        }) {
            for o in other
                .configuration
                .mounts
                .iter()
                .filter(|o| o.kind == MountKind::Volume && o.source == m.source)
            {
                if !(m.read_only && o.read_only) {
                    return Err(ContainerizationError::invalid_state(format!(
                        "volume '{}' is already mounted by container {} (running, or open for cp/export): ext4 is not a cluster filesystem, so a volume can be used by one running container at a time unless every mount of it is read-only",
                        m.source, other.configuration.id
                    )));
                }
            }
        }
    }
    Ok(())
}

impl VolumesService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn root(&self) -> &StateRoot {
        &self.shared.root
    }
}

#[tonic::async_trait]
impl Volumes for VolumesService {
    async fn create(
        &self,
        req: Request<VolumeCreateRequest>,
    ) -> Result<Response<VolumeReply>, Status> {
        let req = req.into_inner();
        let _guard = LOCK.lock().await;
        let store = VolumeStore::new(self.root());
        let v = blocking(move || {
            store.create(
                &req.name,
                req.labels.into_iter().collect(),
                req.options.into_iter().collect(),
                false,
                None,
            )
        })
        .await?;
        Ok(Response::new(reply(&v)?))
    }

    async fn list(&self, _: Request<Empty>) -> Result<Response<VolumeList>, Status> {
        let vols = VolumeStore::new(self.root()).list()?;
        let volume_json = vols
            .iter()
            .map(|v| reply(v).map(|r| r.volume_json))
            .collect::<Result<Vec<_>>>()?;
        Ok(Response::new(VolumeList { volume_json }))
    }

    async fn inspect(&self, req: Request<VolumeName>) -> Result<Response<VolumeReply>, Status> {
        let v = VolumeStore::new(self.root()).get(&req.into_inner().name)?;
        Ok(Response::new(reply(&v)?))
    }

    async fn delete(&self, req: Request<VolumeName>) -> Result<Response<Empty>, Status> {
        let name = req.into_inner().name;
        let _guard = LOCK.lock().await;
        let store = VolumeStore::new(self.root());
        store.get(&name)?;
        let users = users(&containers(self.root())?, &name);
        if !users.is_empty() {
            return Err(ContainerizationError::invalid_state(format!(
                "volume '{name}' is in use by container(s) {}: delete them first",
                users.join(", ")
            ))
            .into());
        }
        blocking(move || store.remove(&name)).await?;
        Ok(Response::new(Empty {}))
    }

    async fn prune(&self, _: Request<Empty>) -> Result<Response<VolumePruneReply>, Status> {
        let _guard = LOCK.lock().await;
        let store = VolumeStore::new(self.root());
        let all = containers(self.root())?;
        let mut out = VolumePruneReply::default();
        for v in store.list()? {
            if users(&all, &v.name).is_empty() {
                out.reclaimed += store.remove(&v.name)?;
                out.deleted.push(v.name);
            }
        }
        Ok(Response::new(out))
    }
}
