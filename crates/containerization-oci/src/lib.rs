//! OCI images for the container system: image references, platforms, a
//! verified content store, the image store (SQLite index over the content
//! store), a registry client (pull/push via `oci-client`), registry
//! credentials, and OCI / `docker save` archives.

mod content;
mod credentials;
mod digest;
#[doc(hidden)]
pub mod fuzzing;
mod image;
pub mod media_types;
mod platform;
mod progress;
mod reference;
mod registry;
mod store;

pub use content::{ContentStore, IngestWriter};
pub use credentials::CredentialStore;
pub use digest::{sha256_digest, validate_digest};
pub use image::Image;
pub use platform::Platform;
pub use progress::{ProgressEvent, ProgressFn};
pub use reference::Reference;
pub use registry::{Scheme, verify_login};
pub use store::{GcReport, ImageStore, PruneReport, PullOptions, PushOptions};

/// Re-exported so callers use the same OCI types as this crate.
pub use oci_spec;
