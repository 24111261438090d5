//! Tar archives as found in OCI images: plain, gzip or zstd compressed
//! (detected by magic bytes), read entry by entry or extracted safely
//! (no entry may land outside the destination).

mod compression;
mod entry;
mod extract;
mod reader;

pub use compression::{Compression, detect, open_decompressed};
pub use entry::{ArchiveEntry, EntryInfo, EntryKind};
pub use reader::{ArchiveReader, Entries};
