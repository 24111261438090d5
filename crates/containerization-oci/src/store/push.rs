//! Pushing an image from the store to a registry.

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use futures::{StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use tokio::io::AsyncReadExt;

use super::pull::Remote;
use super::{ImageStore, PushOptions};
use crate::media_types::is_index;
use crate::progress::{ProgressEvent, ProgressFn, emit};
use crate::reference::Reference;

/// Size of the pieces a blob is read and sent in.
const PUSH_CHUNK: usize = 4 << 20;

impl ImageStore {
    /// Pushes the image named `reference` to the registry it names: blobs
    /// the registry lacks, each platform's manifest by digest, then the
    /// index (or the single manifest) under the tag.
    pub async fn push(&self, reference: &str, opts: &PushOptions) -> Result<()> {
        let image = self.get(reference)?;
        let target = Reference::parse(reference)?.normalize();
        let remote = Remote::new(self, &target, opts.scheme)?;
        let tagged = target.to_client();
        remote
            .client
            .auth(&tagged, &remote.auth, RegistryOperation::Push)
            .await
            .map_err(|e| remote.err(e))?;

        let manifests: Vec<(Descriptor, ImageManifest)> = match &opts.platform {
            Some(p) => vec![image.resolve_manifest(&self.content, p)?],
            None => image.local_manifests(&self.content)?,
        };
        if manifests.is_empty() {
            return Err(ContainerizationError::not_found(format!(
                "image '{reference}' has no platform content to push"
            )));
        }

        let mut blobs: Vec<(String, u64)> = Vec::new();
        for (_, m) in &manifests {
            blobs.push((m.config().digest().to_string(), m.config().size()));
            blobs.extend(
                m.layers()
                    .iter()
                    .map(|l| (l.digest().to_string(), l.size())),
            );
        }
        blobs.sort();
        blobs.dedup();
        let remote = &remote;
        futures::stream::iter(blobs)
            .map(|(digest, size)| self.push_blob(remote, digest, size, &opts.progress))
            .buffer_unordered(3)
            .try_collect::<Vec<()>>()
            .await?;

        for (d, _) in &manifests {
            let digest = d.digest().to_string();
            let bytes = self.content.read(&digest)?;
            self.push_manifest(
                remote,
                &remote.by_digest(&digest),
                bytes,
                d.media_type().as_ref(),
            )
            .await?;
        }

        // Under the tag: the index when pushing every platform of one, else
        // the single manifest.
        let (bytes, media_type, digest) = if opts.platform.is_none()
            && is_index(&image.media_type())
        {
            let mut index: ImageIndex =
                crate::image::parse_json(&self.content, &image.digest(), "image index")?;
            let all_local = index
                .manifests()
                .iter()
                .all(|m| self.content.contains(m.digest().as_ref()));
            if all_local {
                (
                    self.content.read(&image.digest())?,
                    image.media_type(),
                    image.digest(),
                )
            } else {
                // The registry refuses an index naming manifests it lacks,
                // so only the platforms present here are listed.
                let present: Vec<Descriptor> = manifests.iter().map(|(d, _)| d.clone()).collect();
                index.set_manifests(present);
                let bytes = serde_json::to_vec(&index)
                    .context(Code::InternalError, "encoding image index")?;
                let digest = self.content.write_bytes(&bytes)?;
                (bytes, image.media_type(), digest)
            }
        } else {
            let (d, _) = &manifests[0];
            (
                self.content.read(d.digest().as_ref())?,
                d.media_type().to_string(),
                d.digest().to_string(),
            )
        };
        self.push_manifest(remote, &tagged, bytes, &media_type)
            .await?;
        emit(&opts.progress, ProgressEvent::Done { digest });
        Ok(())
    }

    async fn push_manifest(
        &self,
        remote: &Remote,
        target: &oci_client::Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let content_type = media_type.parse().map_err(|_| {
            ContainerizationError::invalid_argument(format!("invalid media type '{media_type}'"))
        })?;
        remote
            .client
            .push_manifest_raw(target, bytes, content_type)
            .await
            .map_err(|e| remote.err(e))?;
        Ok(())
    }

    /// Uploads one blob, streaming it from the content store, unless the
    /// registry already has it.
    async fn push_blob(
        &self,
        remote: &Remote,
        digest: String,
        size: u64,
        progress: &Option<ProgressFn>,
    ) -> Result<()> {
        let target = remote.by_digest(&digest);
        let exists = remote
            .client
            .blob_exists(&target, &digest)
            .await
            .map_err(|e| remote.err(e))?;
        if exists {
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
        let file = tokio::fs::File::from_std(self.content.open_blob(&digest)?);
        let progress_clone = progress.clone();
        let digest_clone = digest.clone();
        let stream = futures::stream::try_unfold((file, 0u64), move |(mut file, sent)| {
            let progress = progress_clone.clone();
            let digest = digest_clone.clone();
            async move {
                let mut buf = vec![0u8; PUSH_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = file.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(None);
                }
                buf.truncate(filled);
                let sent = sent + filled as u64;
                emit(
                    &progress,
                    ProgressEvent::BlobBytes {
                        digest,
                        current: sent,
                        total: size,
                    },
                );
                Ok(Some((bytes::Bytes::from(buf), (file, sent))))
            }
        });
        remote
            .client
            .push_blob_stream(&target, stream, &digest, Some(size))
            .await
            .map_err(|e| remote.err(e))?;
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
