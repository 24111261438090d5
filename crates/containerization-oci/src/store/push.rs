//! Pushing an image from the store to a registry.

use containerization_error::{ContainerizationError, Result};

use super::{ImageStore, PushOptions};

impl ImageStore {
    /// Pushes the image named `reference` to the registry it names.
    pub async fn push(&self, reference: &str, opts: &PushOptions) -> Result<()> {
        let _ = (reference, opts);
        Err(ContainerizationError::unsupported(
            "push is not implemented yet",
        ))
    }
}
