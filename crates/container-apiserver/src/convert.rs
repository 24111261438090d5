//! Conversions between the OCI crate's types and the API's messages.

use container_api::apiserver::{ImageInfo, Progress};
use containerization_error::{ContainerizationError, Result};
use containerization_oci::{ContentStore, Image, Platform, ProgressEvent, Scheme};

/// The list/inspect summary of an image.
pub(crate) fn image_info(image: &Image, content: &ContentStore) -> ImageInfo {
    ImageInfo {
        reference: image.reference.clone(),
        digest: image.digest(),
        media_type: image.media_type(),
        // A missing blob makes the size unknown, not the listing fail.
        size: image.size(content).unwrap_or(0),
        created: image.created.map(|c| c.to_rfc3339()).unwrap_or_default(),
        platforms: image
            .platforms(content)
            .map(|ps| ps.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// A progress event as sent to the CLI.
pub(crate) fn progress(ev: ProgressEvent) -> Progress {
    let mut p = Progress::default();
    match ev {
        ProgressEvent::Resolving { reference } => {
            p.kind = "resolving".into();
            p.message = reference;
        }
        ProgressEvent::BlobStart { digest, total } => {
            p.kind = "blob_start".into();
            p.digest = digest;
            p.total = total;
        }
        ProgressEvent::BlobBytes {
            digest,
            current,
            total,
        } => {
            p.kind = "blob_bytes".into();
            p.digest = digest;
            p.current = current;
            p.total = total;
        }
        ProgressEvent::BlobDone {
            digest,
            total,
            cached,
        } => {
            p.kind = "blob_done".into();
            p.digest = digest;
            p.current = total;
            p.total = total;
            p.message = if cached {
                "cached".into()
            } else {
                String::new()
            };
        }
        ProgressEvent::Done { digest } => {
            p.kind = "done".into();
            p.digest = digest;
        }
    }
    p
}

/// `""` means "no platform given".
pub(crate) fn platform(s: &str) -> Result<Option<Platform>> {
    if s.is_empty() {
        return Ok(None);
    }
    Platform::parse(s).map(Some)
}

/// `""` means auto.
pub(crate) fn scheme(s: &str) -> Result<Scheme> {
    if s.is_empty() {
        return Ok(Scheme::Auto);
    }
    s.parse::<Scheme>().map_err(|_| {
        ContainerizationError::invalid_argument(format!(
            "invalid scheme '{s}': use http, https or auto"
        ))
    })
}
