//! Garbage collection: mark blobs reachable from any image, sweep the rest.

use std::collections::HashSet;
use std::time::Duration;

use containerization_error::Result;

use super::{GcReport, ImageStore};
use crate::image::Image;

/// Ingest files older than this were left by a killed process.
const STALE_INGEST: Duration = Duration::from_secs(24 * 3600);

impl ImageStore {
    /// Removes blobs not reachable from any reference (and stale partial
    /// downloads). A pull running concurrently in another process may lose
    /// blobs it has not yet recorded; it then fails and can be rerun.
    pub fn gc(&self) -> Result<GcReport> {
        let mut live = HashSet::new();
        for image in self.list()? {
            self.mark(&image, &mut live)?;
        }
        let mut report = GcReport::default();
        for (digest, size) in self.content.list()? {
            if !live.contains(&digest) {
                self.content.delete(&digest)?;
                report.reclaimed_bytes += size;
                report.removed.push(digest);
            }
        }
        self.content.clean_ingest(STALE_INGEST)?;
        Ok(report)
    }

    /// Removes what killed processes left in `content/ingest` (partial
    /// blobs and `load` staging directories, never visible as content);
    /// returns how many entries went.
    pub fn clean_abandoned(&self) -> Result<usize> {
        self.content.clean_ingest(STALE_INGEST)
    }

    /// Deletes `reference` and the blobs only it reached; returns the bytes
    /// freed. Unlike `gc`, blobs no image names yet (a pull in flight) stay.
    pub fn delete_with_blobs(&self, reference: &str) -> Result<u64> {
        let image = self.get(reference)?;
        let mut mine = HashSet::new();
        self.mark(&image, &mut mine)?;
        self.delete(reference)?;
        let mut live = HashSet::new();
        for other in self.list()? {
            self.mark(&other, &mut live)?;
        }
        let mut freed = 0;
        for digest in mine.difference(&live) {
            if let Ok(n) = self.content.size(digest) {
                self.content.delete(digest)?;
                freed += n;
            }
        }
        Ok(freed)
    }

    /// Adds every blob `image` reaches to `live`.
    pub(crate) fn mark(&self, image: &Image, live: &mut HashSet<String>) -> Result<()> {
        live.insert(image.digest());
        if !self.content.contains(&image.digest()) {
            return Ok(());
        }
        for (d, m) in image.local_manifests(&self.content)? {
            live.insert(d.digest().to_string());
            live.insert(m.config().digest().to_string());
            live.extend(m.layers().iter().map(|l| l.digest().to_string()));
        }
        Ok(())
    }
}
