//! Pulling an image from a registry into the store.

use containerization_error::{ContainerizationError, Result};

use super::{ImageStore, PullOptions};
use crate::image::Image;

impl ImageStore {
    /// Pulls `reference`; for an index, fetches the index and the manifest
    /// of the requested (or host) platform. Blobs stream into the content
    /// store, verified; blobs already present are not downloaded.
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let _ = (reference, opts);
        Err(ContainerizationError::unsupported(
            "pull is not implemented yet",
        ))
    }
}
