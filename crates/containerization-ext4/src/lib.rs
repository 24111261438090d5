//! Userspace ext4 for container images: a [`Formatter`] that writes an ext4
//! filesystem into a sparse file, an OCI layer unpacker on top of it, an
//! [`Ext4`] reader, and a [`SnapshotStore`] of unpacked images.
//!
//! Images are built without root, loop devices or mkfs: the layers' data is
//! streamed straight into its final blocks and the metadata is written last.

mod crc;
mod dir;
mod extent;
mod finish;
mod formatter;
#[doc(hidden)]
pub mod fuzzing;
mod geometry;
mod health;
mod inode;
mod layout;
mod metadata;
mod reader;
mod snapshot;
mod tree;
mod unpack;
mod xattr;

pub use formatter::{
    DeviceKind, FormatOptions, FormatStats, Formatter, JournalMode, JournalOptions,
};
pub use health::{Health, e2fsck_check};
pub use layout::{BLOCK_SIZE, LOST_AND_FOUND_INODE, MAX_NAME_LEN, ROOT_INODE, SUPERBLOCK_MAGIC};
pub use metadata::{Metadata, Timestamp};
pub use reader::{DirEntryInfo, Ext4, FileReader, FileType, Stat, SuperblockInfo};
pub use snapshot::{DEFAULT_SNAPSHOT_SIZE, SnapshotStore};
pub use unpack::{UnpackStats, Unpacker, unpack_layers};
