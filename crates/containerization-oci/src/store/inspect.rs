//! `inspect`: the index, manifests and configs of an image as JSON.

use containerization_error::{ContainerizationError, Result};

use super::ImageStore;

impl ImageStore {
    /// The image's index (if any) and, per local platform, its manifest and
    /// config.
    pub fn inspect(&self, reference: &str) -> Result<serde_json::Value> {
        let _ = reference;
        Err(ContainerizationError::unsupported(
            "inspect is not implemented yet",
        ))
    }
}
