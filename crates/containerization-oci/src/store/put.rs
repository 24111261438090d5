//! `put`: records an image whose blobs a caller wrote into the content
//! store itself (used by `container build`).

use containerization_error::{ContainerizationError, Result};
use oci_spec::image::Descriptor;

use super::{ImageStore, normalize_key};
use crate::image::Image;

impl ImageStore {
    /// Names the index or manifest `descriptor` as `reference` (normalized;
    /// an existing reference is replaced). The blob must already be in the
    /// content store, so a reference never points at missing data.
    pub fn put(&self, reference: &str, descriptor: Descriptor) -> Result<Image> {
        let digest = descriptor.digest().to_string();
        if !self.content.contains(&digest) {
            return Err(ContainerizationError::not_found(format!(
                "cannot name {reference}: blob {digest} is not in the content store"
            )));
        }
        let key = normalize_key(reference)?;
        self.record(&key, descriptor)
    }
}
