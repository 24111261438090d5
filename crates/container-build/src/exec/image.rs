//! The finished stage as an OCI image: config and manifest blobs in the
//! content store, references in the image store, optional exports.

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_oci::media_types::{OCI_CONFIG, OCI_MANIFEST};
use containerization_oci::oci_spec::image::Descriptor;
use containerization_oci::{ContentStore, ImageStore};
use serde_json::{Value, json};

use super::config::ImageConfig;
use super::layer::LayerRef;

/// A stored image: its manifest descriptor and config digest.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Descriptor of the manifest (what references point at).
    pub descriptor: Descriptor,
    /// Digest of the manifest.
    pub digest: String,
    /// Digest of the config (the image id, as Docker shows it).
    pub config_digest: String,
    /// The layers, lowest first.
    pub layers: Vec<LayerRef>,
}

/// Writes the config and manifest of `layers` + `config` into `content`.
pub fn write_image(
    content: &ContentStore,
    layers: &[LayerRef],
    config: &ImageConfig,
    history: &[Value],
    created: &str,
) -> Result<BuiltImage> {
    let mut cfg = config.clone();
    cfg.set_created(created);
    let v = cfg.value_mut();
    v["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
    });
    v["history"] = Value::Array(history.to_vec());
    let config_bytes = serde_json::to_vec(cfg.value())
        .context(Code::InternalError, "encoding the image config")?;
    let config_digest = content.write_bytes(&config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type,
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest).context(Code::InternalError, "encoding the manifest")?;
    let digest = content.write_bytes(&manifest_bytes)?;
    let arch = cfg.value()["architecture"]
        .as_str()
        .unwrap_or("amd64")
        .to_string();
    let descriptor: Descriptor = serde_json::from_value(json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": manifest_bytes.len(),
        "platform": {"architecture": arch, "os": "linux"},
    }))
    .context(Code::InternalError, "building the manifest descriptor")?;
    Ok(BuiltImage {
        descriptor,
        digest,
        config_digest,
        layers: layers.to_vec(),
    })
}

/// Names `image` as each of `tags` in `store`.
pub fn tag_image(store: &ImageStore, image: &BuiltImage, tags: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in tags {
        let img = store.put(t, image.descriptor.clone()).map_err(|e| {
            ContainerizationError::invalid_argument(format!(
                "cannot tag the image as {t}: {}",
                e.message
            ))
        })?;
        out.push(img.reference);
    }
    Ok(out)
}
