//! `save`: images to an OCI archive (tar of an OCI image layout).

use std::path::Path;

use containerization_error::{ContainerizationError, Result};

use super::ImageStore;
use crate::platform::Platform;

impl ImageStore {
    /// Writes `references` into an OCI archive at `out`.
    pub fn save(
        &self,
        references: &[String],
        platform: Option<&Platform>,
        out: &Path,
    ) -> Result<()> {
        let _ = (references, platform, out);
        Err(ContainerizationError::unsupported(
            "save is not implemented yet",
        ))
    }
}
