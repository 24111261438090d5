//! Tar archives as found in OCI images: plain, gzip or zstd compressed
//! (detected by magic bytes), read entry by entry or extracted safely
//! (no entry may land outside the destination).

mod compression;
mod entry;
mod extract;
mod guard;
mod reader;

pub use compression::{Compression, detect, open_decompressed};
pub use entry::{ArchiveEntry, EntryInfo, EntryKind};
pub use guard::{HeaderGuard, MAX_HEADER_MEMBER, guard_headers};
pub use reader::{ArchiveReader, Entries};
