//! `inspect`: the index, manifests and configs of an image as JSON.

use containerization_error::Result;
use serde_json::json;

use super::ImageStore;
use crate::platform::Platform;

impl ImageStore {
    /// The image's index (if any) and, per local platform, its manifest and
    /// config:
    /// `{reference, descriptor, created, size, index, platforms: [{platform, descriptor, manifest, config}]}`.
    pub fn inspect(&self, reference: &str) -> Result<serde_json::Value> {
        let image = self.get(reference)?;
        let index = image
            .index(&self.content)?
            .map(|_| {
                serde_json::from_slice::<serde_json::Value>(
                    &self.content.read(&image.digest()).unwrap_or_default(),
                )
            })
            .transpose()
            .unwrap_or(None);
        let mut platforms = Vec::new();
        for (descriptor, manifest) in image.local_manifests(&self.content)? {
            let config: serde_json::Value = crate::image::parse_json(
                &self.content,
                manifest.config().digest().as_ref(),
                "image config",
            )?;
            let platform = Platform::of_descriptor(&descriptor)
                .map(|p| p.to_string())
                .unwrap_or_else(|| {
                    let os = config.get("os").and_then(|v| v.as_str()).unwrap_or("");
                    let arch = config
                        .get("architecture")
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    format!("{os}/{arch}")
                });
            platforms.push(json!({
                "platform": platform,
                "descriptor": descriptor,
                "manifest": manifest,
                "config": config,
            }));
        }
        Ok(json!({
            "reference": image.reference,
            "descriptor": image.descriptor,
            "created": image.created.map(|c| c.to_rfc3339()),
            "size": image.size(&self.content)?,
            "index": index,
            "platforms": platforms,
        }))
    }
}
