//! Prepares the ext4 snapshot of every locally present platform of an image
//! after a pull or load, so that the first `run` does not pay for the unpack.

use containerization_error::Result;
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

/// `prepare`, logging instead of failing: the pull itself succeeded.
pub(crate) fn prepare_logged(shared: &Shared, image: &Image) {
    if let Err(e) = prepare(shared, image) {
        tracing::warn!(reference = %image.reference, "preparing the image snapshot failed: {e}");
    }
}
