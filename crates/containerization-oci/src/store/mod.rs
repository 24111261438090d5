//! `ImageStore`: named images (SQLite `images.db`) over the `ContentStore`.

mod archive_load;
mod archive_save;
mod db;
mod gc;
mod inspect;
mod pull;
mod pull_manifest;
mod push;
mod put;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use containerization_error::{ContainerizationError, Result};

use crate::content::ContentStore;
use crate::credentials::CredentialStore;
use crate::image::Image;
use crate::platform::Platform;
use crate::progress::ProgressFn;
use crate::reference::Reference;
use crate::registry::Scheme;

/// Options of `ImageStore::pull`.
#[derive(Clone)]
pub struct PullOptions {
    /// Platform to fetch from an index; `None` = the host's.
    pub platform: Option<Platform>,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// Blobs downloaded at once.
    pub max_concurrent_downloads: usize,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            scheme: Scheme::Auto,
            max_concurrent_downloads: 3,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("scheme", &self.scheme)
            .field("max_concurrent_downloads", &self.max_concurrent_downloads)
            .finish_non_exhaustive()
    }
}

/// Options of `ImageStore::push`.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Platform to push; `None` = every platform present locally.
    pub platform: Option<Platform>,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("platform", &self.platform)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// References deleted.
    pub deleted: Vec<String>,
    /// Bytes of blobs freed.
    pub reclaimed_bytes: u64,
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Digests of blobs removed.
    pub removed: Vec<String>,
    /// Bytes freed.
    pub reclaimed_bytes: u64,
}

/// Local images: references in `images.db`, data in the content store.
/// Several processes may open the same state root.
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    db: db::Db,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageStore({})", self.root.display())
    }
}

impl ImageStore {
    /// Opens (creating if needed) the image store of `state_root`.
    pub fn open(state_root: &Path) -> Result<ImageStore> {
        let content = ContentStore::open(state_root)?;
        let db = db::Db::open(&state_root.join("images.db"))?;
        Ok(ImageStore {
            root: state_root.to_path_buf(),
            content,
            db,
        })
    }

    /// The state root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store holding this store's blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The registry credentials of this state root.
    pub fn credentials(&self) -> Result<CredentialStore> {
        CredentialStore::open(&self.root)
    }

    /// Every image, ordered by reference.
    pub fn list(&self) -> Result<Vec<Image>> {
        self.db.list()
    }

    /// The image named `reference` (normalized first, so `alpine` finds
    /// `docker.io/library/alpine:latest`).
    /// An image digest (`sha256:<hex>`) or a unique prefix of its hex (at
    /// least 12 digits) also finds it.
    pub fn get(&self, reference: &str) -> Result<Image> {
        if let Some(image) = self.get_by_digest(reference)? {
            return Ok(image);
        }
        let key = normalize_key(reference)?;
        self.db.get(&key)?.ok_or_else(|| {
            ContainerizationError::not_found(format!("image '{reference}' not found"))
        })
    }

    /// The image whose digest is `id` (full or a unique hex prefix).
    fn get_by_digest(&self, id: &str) -> Result<Option<Image>> {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        if hex.len() < 12 || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let matches: Vec<Image> = self
            .list()?
            .into_iter()
            .filter(|i| i.digest().trim_start_matches("sha256:").starts_with(hex))
            .collect();
        let distinct: HashSet<String> = matches.iter().map(|i| i.digest()).collect();
        match distinct.len() {
            0 => Ok(None),
            1 => Ok(matches.into_iter().next()),
            _ => Err(ContainerizationError::invalid_argument(format!(
                "'{id}' matches several images; use more digits or a name"
            ))),
        }
    }

    /// Names the image `source` also as `target`; replaces an existing
    /// `target`.
    pub fn tag(&self, source: &str, target: &str) -> Result<Image> {
        let image = self.get(source)?;
        let target = normalize_key(target)?;
        let tagged = Image {
            reference: target,
            descriptor: image.descriptor,
            created: Some(chrono::Utc::now()),
        };
        self.db.put(&tagged)?;
        Ok(tagged)
    }

    /// Removes the reference (blobs stay until `gc`).
    pub fn delete(&self, reference: &str) -> Result<()> {
        let key = normalize_key(reference)?;
        if !self.db.delete(&key)? {
            return Err(ContainerizationError::not_found(format!(
                "image '{reference}' not found"
            )));
        }
        Ok(())
    }

    /// Deletes unused images and collects garbage. Without `all`, only
    /// dangling images (digest-only references) go; with `all`, every image
    /// whose reference or digest is not in `in_use`.
    pub fn prune(&self, all: bool, in_use: &HashSet<String>) -> Result<PruneReport> {
        let mut deleted = Vec::new();
        for image in self.list()? {
            let used = in_use.contains(&image.reference) || in_use.contains(&image.digest());
            let dangling = Reference::parse(&image.reference)
                .map(|r| r.tag().is_none())
                .unwrap_or(true);
            if !used && (all || dangling) {
                self.db.delete(&image.reference)?;
                deleted.push(image.reference);
            }
        }
        let gc = self.gc()?;
        Ok(PruneReport {
            deleted,
            reclaimed_bytes: gc.reclaimed_bytes,
        })
    }

    /// Records `image` (used by pull and load).
    pub(crate) fn record(
        &self,
        reference: &str,
        descriptor: oci_spec::image::Descriptor,
    ) -> Result<Image> {
        let image = Image {
            reference: reference.to_string(),
            descriptor,
            created: Some(chrono::Utc::now()),
        };
        self.db.put(&image)?;
        Ok(image)
    }
}

/// The normalized form under which images are stored.
pub(crate) fn normalize_key(reference: &str) -> Result<String> {
    Ok(Reference::parse(reference)?.normalize().to_string())
}
