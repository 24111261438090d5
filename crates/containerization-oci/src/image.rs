//! `Image`: a named reference to an index or manifest in the content store.

use chrono::{DateTime, Utc};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::content::ContentStore;
use crate::media_types::{is_index, is_manifest};
use crate::platform::Platform;

/// An image known to the image store.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Normalized reference, e.g. `docker.io/library/alpine:3.20`.
    pub reference: String,
    /// Descriptor of the top-level index or manifest.
    pub descriptor: Descriptor,
    /// When the reference was recorded locally.
    pub created: Option<DateTime<Utc>>,
}

impl Image {
    /// Digest of the top-level index or manifest.
    pub fn digest(&self) -> String {
        self.descriptor.digest().to_string()
    }

    /// Media type of the top-level index or manifest.
    pub fn media_type(&self) -> String {
        self.descriptor.media_type().to_string()
    }

    /// The index, if the image is multi-platform.
    pub fn index(&self, content: &ContentStore) -> Result<Option<ImageIndex>> {
        if !is_index(&self.media_type()) {
            return Ok(None);
        }
        Ok(Some(parse_json(content, &self.digest(), "image index")?))
    }

    /// The manifest for `platform` (chosen from the index if there is one)
    /// with its descriptor. `NotFound` if that platform's manifest is not
    /// in the content store.
    pub fn resolve_manifest(
        &self,
        content: &ContentStore,
        platform: &Platform,
    ) -> Result<(Descriptor, ImageManifest)> {
        let media_type = self.media_type();
        let descriptor = if is_index(&media_type) {
            let index: ImageIndex = parse_json(content, &self.digest(), "image index")?;
            platform.select(&index)?.clone()
        } else if is_manifest(&media_type) {
            self.descriptor.clone()
        } else {
            return Err(ContainerizationError::unsupported(format!(
                "image '{}' has unsupported media type {media_type}",
                self.reference
            )));
        };
        let digest = descriptor.digest().to_string();
        if !content.contains(&digest) {
            return Err(ContainerizationError::not_found(format!(
                "image '{}' has no content for platform {platform} (pull it with --platform {platform})",
                self.reference
            )));
        }
        let manifest: ImageManifest = parse_json(content, &digest, "image manifest")?;
        Ok((descriptor, manifest))
    }

    /// The image configuration for `platform`.
    pub fn config(
        &self,
        content: &ContentStore,
        platform: &Platform,
    ) -> Result<ImageConfiguration> {
        let (_, manifest) = self.resolve_manifest(content, platform)?;
        parse_json(content, manifest.config().digest().as_ref(), "image config")
    }

    /// The platform a container of this image runs as. A multi-platform
    /// image: `requested`, else the host's. A single-platform image: its
    /// own (from its config), which `requested` must match (`NotFound`
    /// naming both otherwise): a single manifest has no other variant.
    pub fn run_platform(
        &self,
        content: &ContentStore,
        requested: Option<&Platform>,
    ) -> Result<Platform> {
        if !is_manifest(&self.media_type()) {
            return Ok(requested.cloned().unwrap_or_else(Platform::host));
        }
        let config: ImageConfiguration = parse_json(content, &self.digest(), "image manifest")
            .and_then(|m: ImageManifest| {
                parse_json(content, m.config().digest().as_ref(), "image config")
            })?;
        let arch = config.architecture().to_string();
        if arch.is_empty() {
            return Ok(requested.cloned().unwrap_or_else(Platform::host));
        }
        let mut own = Platform::from_arch(&arch);
        own.os = config.os().to_string();
        if let Some(v) = config.variant() {
            own = Platform::parse(&format!("{}/{}/{v}", own.os, own.architecture)).unwrap_or(own);
        }
        match requested {
            None => Ok(own),
            Some(r) if r.matches(&own) => Ok(r.clone()),
            Some(r) => Err(ContainerizationError::not_found(format!(
                "image '{}' has no variant for platform {r} (it is {own} only)",
                self.reference
            ))),
        }
    }

    /// Platforms whose manifests are present locally.
    pub fn platforms(&self, content: &ContentStore) -> Result<Vec<Platform>> {
        let mut out = Vec::new();
        for (descriptor, manifest) in self.local_manifests(content)? {
            match Platform::of_descriptor(&descriptor) {
                Some(p) => out.push(p),
                None => {
                    let config: ImageConfiguration =
                        parse_json(content, manifest.config().digest().as_ref(), "image config")?;
                    let mut p = Platform::from_arch(&config.architecture().to_string());
                    p.os = config.os().to_string();
                    if let Some(v) = config.variant() {
                        p.variant = Some(v.clone());
                    }
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Every manifest of this image present in the content store, with its
    /// descriptor (from the index when there is one).
    pub fn local_manifests(
        &self,
        content: &ContentStore,
    ) -> Result<Vec<(Descriptor, ImageManifest)>> {
        match self.index(content)? {
            Some(index) => index
                .manifests()
                .iter()
                .filter(|d| {
                    is_manifest(d.media_type().as_ref()) && content.contains(d.digest().as_ref())
                })
                .map(|d| {
                    let m = parse_json(content, d.digest().as_ref(), "image manifest")?;
                    Ok((d.clone(), m))
                })
                .collect(),
            None => Ok(vec![(
                self.descriptor.clone(),
                parse_json(content, &self.digest(), "image manifest")?,
            )]),
        }
    }

    /// Bytes this image occupies locally: index, manifests, configs, layers.
    pub fn size(&self, content: &ContentStore) -> Result<u64> {
        let mut digests = vec![self.digest()];
        for (d, m) in self.local_manifests(content)? {
            digests.push(d.digest().to_string());
            digests.push(m.config().digest().to_string());
            digests.extend(m.layers().iter().map(|l| l.digest().to_string()));
        }
        digests.sort();
        digests.dedup();
        Ok(digests.iter().filter_map(|d| content.size(d).ok()).sum())
    }
}

/// Reads and parses a JSON blob from the content store.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    content: &ContentStore,
    digest: &str,
    what: &str,
) -> Result<T> {
    let data = content.read(digest)?;
    serde_json::from_slice(&data).context(
        Code::InvalidArgument,
        format!("{what} {digest} is not valid JSON"),
    )
}
