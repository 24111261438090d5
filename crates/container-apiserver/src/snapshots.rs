//! Prepares the ext4 snapshot of every locally present platform of an image
//! after a pull or load, so that the first `run` does not pay for the unpack.

use containerization_error::{Code, ContainerizationError, Result};
use containerization_ext4::{DEFAULT_SNAPSHOT_SIZE, SnapshotStore};
use containerization_oci::Image;

use crate::server::Shared;

/// Unpacks each platform's layers into `<root>/snapshots/` (keyed by the
/// manifest digest, as the library's `ContainerManager` expects). Blocking.
pub(crate) fn prepare(shared: &Shared, image: &Image) -> Result<()> {
    let store = SnapshotStore::open(shared.root.path().join("snapshots"))?;
    let content = shared.images.content();
    for (desc, manifest) in image.local_manifests(content)? {
        let layers: Vec<_> = manifest
            .layers()
            .iter()
            .map(|l| content.blob_path(l.digest().as_ref()))
            .collect();
        // Only platforms whose layers are all here can be unpacked.
        if layers.iter().all(|p| p.exists()) {
            store.get_or_create(desc.digest().as_ref(), &layers, DEFAULT_SNAPSHOT_SIZE)?;
        }
    }
    Ok(())
}

/// `prepare` after a pull or load. An image whose layers cannot be unpacked
/// (a path out of the root, a link that escapes, an oversized header: bad
/// input) is removed again with the blobs only it used, and the error is
/// returned. Other failures (a full disk) are logged only: the image is
/// complete and the snapshot, a cache, is made again by the first `run`.
pub(crate) fn prepare_checked(shared: &Shared, image: &Image) -> Result<()> {
    let Err(e) = prepare(shared, image) else {
        return Ok(());
    };
    if !e.is_code(Code::InvalidArgument) {
        tracing::warn!(reference = %image.reference, "preparing the image snapshot failed: {e}");
        return Ok(());
    }
    tracing::warn!(reference = %image.reference, "refusing an image that cannot be unpacked: {e}");
    if let Err(d) = shared.images.delete_with_blobs(&image.reference) {
        tracing::warn!(reference = %image.reference, "removing the refused image failed: {d}");
    }
    Err(ContainerizationError::invalid_argument(format!(
        "image '{}' was refused and not kept: {}",
        image.reference, e.message
    )))
}

/// Removes the snapshots no remaining image needs (after `image delete` and
/// `image prune`). A running container keeps its VM's open handle on the
/// backing file, so removing the name does not pull the disk from under it.
pub(crate) fn sweep(shared: &Shared) -> Result<usize> {
    let store = SnapshotStore::open(shared.root.path().join("snapshots"))?;
    let content = shared.images.content();
    let mut keep = std::collections::HashSet::new();
    for image in shared.images.list()? {
        for (desc, _) in image.local_manifests(content)? {
            keep.insert(desc.digest().to_string());
        }
    }
    let mut removed = 0;
    for key in store.list()? {
        if !keep.contains(&key) && store.remove(&key)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `sweep`, logging instead of failing: the image operation itself succeeded.
pub(crate) fn sweep_logged(shared: &Shared) {
    match sweep(shared) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} unused image snapshot(s)"),
        Err(e) => tracing::warn!("removing unused image snapshots failed: {e}"),
    }
}
