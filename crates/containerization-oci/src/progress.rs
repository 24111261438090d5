//! Progress reporting for pulls and pushes.

use std::sync::Arc;

/// Something that happened during a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// Looking up the reference in the registry.
    Resolving {
        /// The reference being resolved.
        reference: String,
    },
    /// A blob transfer starts.
    BlobStart {
        /// Blob digest.
        digest: String,
        /// Blob size in bytes.
        total: u64,
    },
    /// Bytes of a blob transferred so far.
    BlobBytes {
        /// Blob digest.
        digest: String,
        /// Bytes transferred so far.
        current: u64,
        /// Blob size in bytes.
        total: u64,
    },
    /// A blob is complete (`cached`: it was already present, nothing moved).
    BlobDone {
        /// Blob digest.
        digest: String,
        /// Blob size in bytes.
        total: u64,
        /// True when the transfer was skipped.
        cached: bool,
    },
    /// The whole operation finished.
    Done {
        /// Digest of the image's top-level index or manifest.
        digest: String,
    },
}

/// Receives progress events; called from download tasks, so it must be
/// cheap and thread-safe.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

pub(crate) fn emit(progress: &Option<ProgressFn>, event: ProgressEvent) {
    if let Some(p) = progress {
        p(event);
    }
}
