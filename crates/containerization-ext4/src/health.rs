//! Whether an ext4 image must be checked before it is mounted again: the
//! kernel records an I/O or consistency error in the superblock's state
//! (`EXT4_ERROR_FS`) and an aborted journal in the journal superblock's
//! `s_errno`. Clean images, the common case, are told apart from these two
//! reads, without running `e2fsck`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use containerization_error::{Code, Result, ResultExt};

use crate::layout::{EXTENT_MAGIC, SUPERBLOCK_MAGIC, get16, get32};

/// Runs `e2fsck -fn` on `image` (a full check that changes nothing): `Ok`
/// when it finds nothing to fix, else its status and report. For tests and
/// tools that verify an image written by this crate or by a guest.
pub fn e2fsck_check(image: &Path) -> std::result::Result<(), String> {
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run e2fsck ({e}): install e2fsprogs"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "e2fsck -fn {} failed ({}):\n{}\n{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// `s_state` bit: errors were detected.
const STATE_ERROR_FS: u16 = 0x2;
/// `s_feature_compat` bit: the filesystem has a journal.
const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// `s_feature_incompat` bit: the journal holds transactions to replay.
const INCOMPAT_RECOVER: u32 = 0x4;
const JBD2_MAGIC: u32 = 0xC03B_3998;

/// What the superblocks of an image say about its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// The kernel recorded an error (`EXT4_ERROR_FS` in `s_state`).
    pub errors: bool,
    /// The journal was aborted after an error (`s_errno` of the journal).
    pub journal_aborted: bool,
    /// The journal holds transactions to replay (an unclean stop; the
    /// kernel replays them at mount, this alone needs no check).
    pub needs_recovery: bool,
}

impl Health {
    /// Reads the superblock (and the journal superblock) of `path`.
    pub fn of(path: &Path) -> Result<Health> {
        let file = File::open(path).context(
            Code::NotFound,
            format!("opening ext4 image {}", path.display()),
        )?;
        let mut s = vec![0u8; 1024];
        file.read_exact_at(&mut s, 1024).context(
            Code::InvalidArgument,
            format!("reading the superblock of {}", path.display()),
        )?;
        if get16(&s, 0x38) != SUPERBLOCK_MAGIC {
            return Err(
                containerization_error::ContainerizationError::invalid_argument(format!(
                    "{} is not an ext4 image",
                    path.display()
                )),
            );
        }
        let mut h = Health {
            errors: get16(&s, 0x3A) & STATE_ERROR_FS != 0,
            needs_recovery: get32(&s, 0x60) & INCOMPAT_RECOVER != 0,
            journal_aborted: false,
        };
        if get32(&s, 0x5C) & COMPAT_HAS_JOURNAL != 0 {
            // An unreadable journal location counts as aborted: a check
            // costs seconds, a missed one costs data.
            h.journal_aborted = journal_errno(&file, &s).is_none_or(|e| e != 0);
        }
        Ok(h)
    }

    /// True when `e2fsck` should run before the image is mounted again.
    pub fn needs_check(&self) -> bool {
        self.errors || self.journal_aborted
    }
}

/// `s_errno` of the journal superblock, found through the copy of the
/// journal inode's extent root kept in the superblock (`s_jnl_blocks`).
fn journal_errno(file: &File, s: &[u8]) -> Option<i32> {
    if s[0xFD] != 1 {
        return None;
    }
    let root = &s[0x10C..0x10C + 60];
    let (magic, entries, depth) = (get16(root, 0), get16(root, 2), get16(root, 6));
    if magic != EXTENT_MAGIC || entries == 0 || depth != 0 || get32(root, 12) != 0 {
        return None;
    }
    let start = (get16(root, 12 + 6) as u64) << 32 | get32(root, 12 + 8) as u64;
    let log = get32(s, 0x18);
    if log > 6 {
        return None;
    }
    let mut j = [0u8; 64];
    file.read_exact_at(&mut j, start.checked_mul(1024u64 << log)?)
        .ok()?;
    let be = |o: usize| u32::from_be_bytes(j[o..o + 4].try_into().unwrap());
    (be(0) == JBD2_MAGIC).then(|| be(0x20) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FormatOptions, Formatter, JournalMode, JournalOptions};

    fn image(journal: bool) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.img");
        let opts = FormatOptions {
            journal: journal.then_some(JournalOptions {
                mode: JournalMode::Ordered,
                size_bytes: None,
            }),
            ..FormatOptions::default()
        };
        Formatter::create(&p, 64 << 20, opts)
            .unwrap()
            .close()
            .unwrap();
        (dir, p)
    }

    #[test]
    fn fresh_images_are_clean_and_recorded_errors_are_seen() {
        for journal in [false, true] {
            let (_d, p) = image(journal);
            let h = Health::of(&p).unwrap();
            assert_eq!(h, Health::default(), "journal: {journal}");
            assert!(!h.needs_check());
        }
        let (_d, p) = image(true);
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&3u16.to_le_bytes(), 1024 + 0x3A).unwrap();
        assert!(Health::of(&p).unwrap().errors);
        assert!(Health::of(&p).unwrap().needs_check());
    }

    #[test]
    fn an_aborted_journal_is_seen() {
        let (_d, p) = image(true);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let mut s = vec![0u8; 1024];
        f.read_exact_at(&mut s, 1024).unwrap();
        let root = &s[0x10C..];
        let start = (get16(root, 18) as u64) << 32 | get32(root, 20) as u64;
        f.write_all_at(&(-5i32).to_be_bytes(), start * 4096 + 0x20)
            .unwrap();
        let h = Health::of(&p).unwrap();
        assert!(h.journal_aborted && !h.errors && h.needs_check());
    }

    #[test]
    fn not_ext4_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(Health::of(&p).is_err());
    }
}
