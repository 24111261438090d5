//! Pulling an image from a registry into the store.

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::{ImageStore, PullOptions};
use crate::digest::sha256_digest;
use crate::image::Image;
use crate::media_types::{ACCEPTED_MANIFESTS, is_index, is_manifest};
use crate::platform::Platform;
use crate::progress::{ProgressEvent, ProgressFn, emit};
use crate::reference::Reference;
use crate::registry::{auth_for, client_for, map_error};

/// Bytes between two `BlobBytes` events of one download.
const PROGRESS_STEP: u64 = 512 * 1024;

/// One registry conversation: the client, the repository and names for
/// error messages.
pub(super) struct Remote {
    pub client: oci_client::Client,
    pub auth: oci_client::secrets::RegistryAuth,
    pub reference: Reference,
    pub host: String,
    pub display: String,
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

    /// Fetches a manifest or index, verifies it against `expected` (when
    /// known) and stores it. Returns its bytes, digest and media type.
    async fn fetch_manifest(
        &self,
        store: &ImageStore,
        target: &oci_client::Reference,
        expected: Option<&str>,
    ) -> Result<(Vec<u8>, String, String)> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(target, &self.auth, &ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| self.err(e))?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "digest mismatch: registry {} sent {digest} for manifest {expected}",
                self.host
            )));
        }
        let media_type = manifest_media_type(&bytes, &self.display)?;
        store
            .content
            .write_verified(&digest, Some(bytes.len() as u64), &bytes[..])?;
        Ok((bytes.to_vec(), digest, media_type))
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
            .fetch_manifest(self, &parsed.to_client(), parsed.digest())
            .await?;
        let top = descriptor(&top_type, top_bytes.len() as u64, &top_digest)?;

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
                remote
                    .fetch_manifest(self, &remote.by_digest(&digest), Some(&digest))
                    .await?
                    .0
            }
        } else {
            top_bytes
        };
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).context(
            Code::InvalidArgument,
            format!("image manifest of '{key}' is not valid"),
        )?;

        let mut blobs = vec![(
            manifest.config().digest().to_string(),
            manifest.config().size(),
        )];
        blobs.extend(
            manifest
                .layers()
                .iter()
                .map(|l| (l.digest().to_string(), l.size())),
        );
        let remote = &remote;
        futures::stream::iter(blobs)
            .map(|(digest, size)| self.fetch_blob(remote, digest, size, &opts.progress))
            .buffer_unordered(opts.max_concurrent_downloads.max(1))
            .try_collect::<Vec<()>>()
            .await?;

        let image = self.record(&key, top)?;
        emit(&opts.progress, ProgressEvent::Done { digest: top_digest });
        Ok(image)
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
