//! `load`: OCI archives and `docker save` archives into the store.

use std::path::Path;

use containerization_error::{ContainerizationError, Result};

use super::ImageStore;
use crate::image::Image;

impl ImageStore {
    /// Imports the images of an OCI or `docker save` archive (optionally
    /// gzip/zstd compressed).
    pub fn load(&self, input: &Path) -> Result<Vec<Image>> {
        let _ = input;
        Err(ContainerizationError::unsupported(
            "load is not implemented yet",
        ))
    }
}
