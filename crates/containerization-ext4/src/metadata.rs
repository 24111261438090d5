//! Metadata of a filesystem entry as the formatter takes and the reader
//! returns it.

use std::collections::BTreeMap;

/// A point in time with nanosecond precision; seconds may be negative
/// (before 1970) and beyond 2038 (ext4 keeps two extra epoch bits, so the
/// range is 1901..2446).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second (0..1e9).
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp at whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// Encodes into ext4's (32-bit seconds, extra) pair.
    pub(crate) fn encode(self) -> (u32, u32) {
        let lo = self.secs as i32;
        let epoch = ((self.secs - lo as i64) >> 32) as u32 & 3;
        (lo as u32, epoch | (self.nanos.min(999_999_999) << 2))
    }

    /// Decodes ext4's (32-bit seconds, extra) pair.
    pub(crate) fn decode(lo: u32, extra: u32) -> Self {
        let secs = lo as i32 as i64 + (((extra & 3) as i64) << 32);
        Timestamp {
            secs,
            nanos: (extra >> 2).min(999_999_999),
        }
    }
}

/// Ownership, permissions, times and extended attributes of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`0o7777`);
    /// type bits are ignored.
    pub mode: u16,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Last access time.
    pub atime: Timestamp,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Last status change time.
    pub ctime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// Extended attributes by full name (`user.x`, `security.capability`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Metadata {
    /// Metadata with the given permission bits, owned by root, all times at
    /// the epoch.
    pub fn with_mode(mode: u16) -> Self {
        Metadata {
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            crtime: Timestamp::default(),
            xattrs: BTreeMap::new(),
        }
    }

    /// Sets all four times to `t`.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.atime = t;
        self.mtime = t;
        self.ctime = t;
        self.crtime = t;
        self
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata::with_mode(0o755)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_across_epochs() {
        for secs in [
            0i64,
            -1,
            -(1 << 31),
            (1 << 31) - 1,
            1 << 31,
            4_000_000_000,
            (1i64 << 33) + 12345,
            -12345,
        ] {
            let t = Timestamp {
                secs,
                nanos: 123_456_789,
            };
            let (lo, extra) = t.encode();
            assert_eq!(Timestamp::decode(lo, extra), t, "secs {secs}");
        }
    }
}
