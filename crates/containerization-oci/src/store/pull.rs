//! Pulling an image from a registry into the store.

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::{ImageStore, PullOptions};
use crate::digest::sha256_digest;
use crate::image::Image;
use crate::media_types::{is_index, is_manifest};
use crate::platform::Platform;
use crate::progress::{ProgressEvent, ProgressFn, emit};
use crate::reference::Reference;
use crate::registry::{auth_for, client_for, http_client, map_error};

/// Bytes between two `BlobBytes` events of one download.
const PROGRESS_STEP: u64 = 512 * 1024;

/// Most layers an image may have. Real images stay far below (overlay-based
/// engines stop at about 128); a hostile manifest listing thousands would
/// otherwise cost one request each.
pub const MAX_LAYERS: usize = 1000;

/// Largest image config accepted (configs are read into memory to be checked).
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// One registry conversation: the client, the repository and names for
/// error messages.
pub(super) struct Remote {
    pub client: oci_client::Client,
    pub auth: oci_client::secrets::RegistryAuth,
    pub reference: Reference,
    pub host: String,
    pub display: String,
    pub scheme: crate::registry::Scheme,
    pub http: reqwest::Client,
}

impl Remote {
    pub(super) fn new(
        store: &ImageStore,
        reference: &Reference,
        scheme: crate::registry::Scheme,
    ) -> Result<Remote> {
        let host = reference.resolved_domain();
        Ok(Remote {
            client: client_for(&host, scheme),
            auth: auth_for(&store.credentials()?, &host)?,
            display: reference.to_string(),
            reference: reference.clone(),
            host,
            scheme,
            http: http_client()?,
        })
    }

    pub(super) fn err(&self, e: oci_client::errors::OciDistributionError) -> ContainerizationError {
        map_error(e, &self.display, &self.host)
    }

    /// The repository addressed by `digest`, as oci-client wants it.
    pub(super) fn by_digest(&self, digest: &str) -> oci_client::Reference {
        let c = self.reference.to_client();
        oci_client::Reference::with_digest(
            c.registry().to_string(),
            c.repository().to_string(),
            digest.to_string(),
        )
    }
}

impl ImageStore {
    /// Pulls `reference`; for an index, fetches the index and the manifest
    /// of the requested (or host) platform. Blobs stream into the content
    /// store, verified; blobs already present are not downloaded.
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let parsed = Reference::parse(reference)?.normalize();
        let key = parsed.to_string();
        let remote = Remote::new(self, &parsed, opts.scheme)?;
        emit(
            &opts.progress,
            ProgressEvent::Resolving {
                reference: key.clone(),
            },
        );

        let (top_bytes, top_digest, top_type) = remote
            .fetch_manifest(&parsed.to_client(), parsed.digest())
            .await?;
        let top = descriptor(&top_type, top_bytes.len() as u64, &top_digest)?;
        // Manifests are stored last, once everything they name is here, so a
        // refused image leaves no manifest behind.
        let mut manifests = vec![(top_digest.clone(), top_bytes.clone())];

        let manifest_bytes = if is_index(&top_type) {
            let index: ImageIndex = serde_json::from_slice(&top_bytes).context(
                Code::InvalidArgument,
                format!("image index of '{key}' is not valid"),
            )?;
            let platform = opts.platform.clone().unwrap_or_else(Platform::host);
            let chosen = platform.select(&index).map_err(|e| {
                ContainerizationError::not_found(format!("image '{key}': {}", e.message))
            })?;
            let digest = chosen.digest().to_string();
            if self.content.contains(&digest) {
                self.content.read(&digest)?
            } else {
                let (bytes, digest, media_type) = remote
                    .fetch_manifest(&remote.by_digest(&digest), Some(&digest))
                    .await?;
                if !is_manifest(&media_type) {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "image index of '{key}' names {digest} as a manifest, but it is a '{media_type}'"
                    )));
                }
                manifests.push((digest, bytes.clone()));
                bytes
            }
        } else {
            top_bytes
        };
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).context(
            Code::InvalidArgument,
            format!("image manifest of '{key}' is not valid"),
        )?;
        if manifest.layers().len() > MAX_LAYERS {
            return Err(ContainerizationError::invalid_argument(format!(
                "image '{key}' has {} layers; at most {MAX_LAYERS} are accepted",
                manifest.layers().len()
            )));
        }
        let config = self.fetch_config(&remote, &key, manifest.config()).await?;

        let blobs: Vec<(String, u64)> = manifest
            .layers()
            .iter()
            .map(|l| (l.digest().to_string(), l.size()))
            .collect();
        let remote = &remote;
        futures::stream::iter(blobs)
            .map(|(digest, size)| self.fetch_blob(remote, digest, size, &opts.progress))
            .buffer_unordered(opts.max_concurrent_downloads.max(1))
            .try_collect::<Vec<()>>()
            .await?;

        // The config and the manifests are stored only now, lowest level
        // first: a refused image leaves neither, and a manifest is never
        // visible without everything it names.
        if let Some((digest, bytes)) = config
            && !self.content.contains(&digest)
        {
            self.content
                .write_verified(&digest, Some(bytes.len() as u64), &bytes[..])?;
        }
        for (digest, bytes) in manifests.iter().rev() {
            if !self.content.contains(digest) {
                self.content
                    .write_verified(digest, Some(bytes.len() as u64), &bytes[..])?;
            }
        }
        let image = self.record(&key, top)?;
        emit(&opts.progress, ProgressEvent::Done { digest: top_digest });
        Ok(image)
    }

    /// Fetches the image config into memory and checks its digest and that
    /// it parses as an image config; `None` when it is already stored.
    async fn fetch_config(
        &self,
        remote: &Remote,
        key: &str,
        desc: &Descriptor,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let digest = desc.digest().to_string();
        if self.content.contains(&digest) {
            return Ok(None);
        }
        if desc.size() > MAX_CONFIG_BYTES {
            return Err(ContainerizationError::invalid_argument(format!(
                "the config of '{key}' is {} bytes; at most {MAX_CONFIG_BYTES} are accepted",
                desc.size()
            )));
        }
        let mut stream = remote
            .client
            .pull_blob_stream(&remote.by_digest(&digest), digest.as_str())
            .await
            .map_err(|e| remote.err(e))?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ContainerizationError::new(
                    Code::Interrupted,
                    format!(
                        "download of the config of '{key}' from registry {} failed",
                        remote.host
                    ),
                )
                .with_cause(e)
            })?;
            if data.len() as u64 + chunk.len() as u64 > desc.size() {
                return Err(ContainerizationError::invalid_argument(format!(
                    "the config of '{key}' is larger than its declared size {}",
                    desc.size()
                )));
            }
            data.extend_from_slice(&chunk);
        }
        let got = sha256_digest(&data);
        if got != digest {
            return Err(ContainerizationError::invalid_argument(format!(
                "digest mismatch: registry {} sent {got} for the config {digest} of '{key}'; nothing was stored",
                remote.host
            )));
        }
        let media_type = desc.media_type().to_string();
        if media_type == crate::media_types::OCI_CONFIG
            || media_type == crate::media_types::DOCKER_CONFIG
        {
            serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&data).context(
                Code::InvalidArgument,
                format!("the image config of '{key}' is not valid"),
            )?;
        }
        Ok(Some((digest, data)))
    }

    /// Streams one blob into the content store unless already present.
    async fn fetch_blob(
        &self,
        remote: &Remote,
        digest: String,
        size: u64,
        progress: &Option<ProgressFn>,
    ) -> Result<()> {
        if self.content.contains(&digest) {
            emit(
                progress,
                ProgressEvent::BlobDone {
                    digest,
                    total: size,
                    cached: true,
                },
            );
            return Ok(());
        }
        emit(
            progress,
            ProgressEvent::BlobStart {
                digest: digest.clone(),
                total: size,
            },
        );
        let mut stream = remote
            .client
            .pull_blob_stream(&remote.by_digest(&digest), digest.as_str())
            .await
            .map_err(|e| remote.err(e))?;
        let mut writer = self.content.ingest(&digest, Some(size))?;
        let mut reported = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let mismatch = e.to_string().to_ascii_lowercase().contains("digest");
                let msg = if mismatch {
                    format!("digest mismatch: blob {digest} from registry {} does not match its digest; nothing was stored", remote.host)
                } else {
                    format!("download of blob {digest} from registry {} failed", remote.host)
                };
                let code = if mismatch { Code::InvalidArgument } else { Code::Interrupted };
                ContainerizationError::new(code, msg).with_cause(e)
            })?;
            writer.write(&chunk)?;
            // Network chunks are small; report every PROGRESS_STEP bytes so
            // a 100 MB layer is ~200 events, not ~10 000.
            if writer.written() - reported < PROGRESS_STEP && writer.written() < size {
                continue;
            }
            reported = writer.written();
            emit(
                progress,
                ProgressEvent::BlobBytes {
                    digest: digest.clone(),
                    current: writer.written(),
                    total: size,
                },
            );
        }
        writer.commit()?;
        emit(
            progress,
            ProgressEvent::BlobDone {
                digest,
                total: size,
                cached: false,
            },
        );
        Ok(())
    }
}

/// The media type a manifest or index declares (or implies by its shape).
pub(super) fn manifest_media_type(bytes: &[u8], reference: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).context(
        Code::InvalidArgument,
        format!("manifest of '{reference}' is not valid JSON"),
    )?;
    let declared = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let media_type = match declared {
        Some(m) => m,
        None if v.get("manifests").is_some() => crate::media_types::OCI_INDEX.to_string(),
        None if v.get("layers").is_some() => crate::media_types::OCI_MANIFEST.to_string(),
        None => String::new(),
    };
    if !is_index(&media_type) && !is_manifest(&media_type) {
        return Err(ContainerizationError::unsupported(format!(
            "'{reference}' has unsupported manifest type '{media_type}'"
        )));
    }
    Ok(media_type)
}

/// A descriptor for a blob in the content store.
pub(crate) fn descriptor(media_type: &str, size: u64, digest: &str) -> Result<Descriptor> {
    let digest: oci_spec::image::Digest = digest.parse().map_err(|e| {
        ContainerizationError::invalid_argument(format!("invalid digest '{digest}'")).with_cause(e)
    })?;
    Ok(Descriptor::new(MediaType::from(media_type), size, digest))
}
