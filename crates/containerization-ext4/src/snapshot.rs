//! `SnapshotStore`: unpacked images cached as sparse ext4 files, one per
//! manifest digest, at `<dir>/<hex>/rootfs.ext4`. Each is built under a
//! per-key file lock into a temporary name and renamed into place, so two
//! concurrent callers build once and a crash never leaves a partial image
//! visible.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::unpack::unpack_layers;

/// Default size of a snapshot image: sparse, so only used blocks take space;
/// matches the default container root filesystem size.
pub const DEFAULT_SNAPSHOT_SIZE: u64 = 8 << 30;

const IMAGE_NAME: &str = "rootfs.ext4";
const KEY_NAME: &str = "key";

/// Cache of unpacked images keyed by manifest digest.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

/// Splits `algo:hex` and checks both parts so a key can never name a path
/// outside the store.
fn key_hex(key: &str) -> Result<&str> {
    let (algo, hex) = key.split_once(':').ok_or_else(|| {
        ContainerizationError::invalid_argument(format!(
            "snapshot key {key:?} is not a digest (algorithm:hex)"
        ))
    })?;
    let algo_ok = !algo.is_empty()
        && algo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    let hex_ok = hex.len() >= 32
        && hex.len() <= 128
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !algo_ok || !hex_ok {
        return Err(ContainerizationError::invalid_argument(format!(
            "snapshot key {key:?} is not a digest (algorithm:lowercase-hex)"
        )));
    }
    Ok(hex)
}

/// An exclusive advisory lock held until dropped.
struct Lock(File);

impl Lock {
    /// The lock, or `None` when another holder has it.
    fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .context(
                Code::InternalError,
                format!("opening lock {}", path.display()),
            )?;
        // SAFETY: flock on a descriptor we own; it has no memory effects.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((r == 0).then_some(Lock(f)))
    }

    fn acquire(path: &Path) -> Result<Lock> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .context(
                Code::InternalError,
                format!("opening lock {}", path.display()),
            )?;
        loop {
            // SAFETY: flock on a descriptor we own; it has no memory effects.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Lock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(
                    ContainerizationError::internal(format!("locking {}", path.display()))
                        .with_cause(e),
                );
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).context(
        Code::InternalError,
        format!("syncing directory {}", dir.display()),
    )
}

impl SnapshotStore {
    /// Opens (creating) the store rooted at `dir`, normally
    /// `<state_root>/snapshots`.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(dir.join(".locks")).context(
            Code::InternalError,
            format!("creating snapshot store {}", dir.display()),
        )?;
        Ok(SnapshotStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the image for `key` if it has been built.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        let hex = key_hex(key).ok()?;
        let p = self.dir.join(hex).join(IMAGE_NAME);
        p.is_file().then_some(p)
    }

    /// Returns the image for `key`, unpacking `layers` (lowest first) into a
    /// new sparse image of `size_bytes` if it does not exist yet.
    pub fn get_or_create(&self, key: &str, layers: &[PathBuf], size_bytes: u64) -> Result<PathBuf> {
        let hex = key_hex(key)?;
        if let Some(p) = self.path(key) {
            return Ok(p);
        }
        let _lock = Lock::acquire(&self.dir.join(".locks").join(format!("{hex}.lock")))?;
        // Someone may have finished while we waited for the lock.
        if let Some(p) = self.path(key) {
            return Ok(p);
        }
        let sdir = self.dir.join(hex);
        fs::create_dir_all(&sdir)
            .context(Code::InternalError, format!("creating {}", sdir.display()))?;
        // Leftovers of a crashed build are never visible; clear them.
        if let Ok(rd) = fs::read_dir(&sdir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let tmp = sdir.join(format!(".tmp-{}-{IMAGE_NAME}", std::process::id()));
        if let Err(e) = unpack_layers(layers, &tmp, size_bytes) {
            // A refused image leaves no trace (the directory is empty again).
            let _ = fs::remove_dir(&sdir);
            return Err(e);
        }
        let key_tmp = sdir.join(format!(".tmp-{}-{KEY_NAME}", std::process::id()));
        fs::write(&key_tmp, key.as_bytes())
            .and_then(|_| File::open(&key_tmp)?.sync_all())
            .and_then(|_| fs::rename(&key_tmp, sdir.join(KEY_NAME)))
            .context(
                Code::InternalError,
                format!("recording key in {}", sdir.display()),
            )?;
        let dest = sdir.join(IMAGE_NAME);
        fs::rename(&tmp, &dest).context(
            Code::InternalError,
            format!("publishing {}", dest.display()),
        )?;
        sync_dir(&sdir)?;
        sync_dir(&self.dir)?;
        Ok(dest)
    }

    /// Removes what builds killed midway left behind (`.tmp-*` files, and
    /// directories holding no image); builds in progress, which hold their
    /// key's lock, are left alone. Returns how many entries went.
    pub fn remove_partial(&self) -> Result<usize> {
        let mut removed = 0;
        let rd = fs::read_dir(&self.dir).context(
            Code::InternalError,
            format!("listing {}", self.dir.display()),
        )?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sdir = e.path();
            if key_hex(&format!("sha256:{name}")).is_err() || !sdir.is_dir() {
                continue;
            }
            let lock = self.dir.join(".locks").join(format!("{name}.lock"));
            let Some(_lock) = Lock::try_acquire(&lock)? else {
                continue;
            };
            for f in fs::read_dir(&sdir).into_iter().flatten().flatten() {
                if f.file_name().to_string_lossy().starts_with(".tmp-")
                    && fs::remove_file(f.path()).is_ok()
                {
                    removed += 1;
                }
            }
            if !sdir.join(IMAGE_NAME).is_file() {
                let _ = fs::remove_file(sdir.join(KEY_NAME));
                if fs::remove_dir(&sdir).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes the image for `key`; returns whether it existed.
    pub fn remove(&self, key: &str) -> Result<bool> {
        let hex = key_hex(key)?;
        let _lock = Lock::acquire(&self.dir.join(".locks").join(format!("{hex}.lock")))?;
        let sdir = self.dir.join(hex);
        if !sdir.exists() {
            return Ok(false);
        }
        fs::remove_dir_all(&sdir)
            .context(Code::InternalError, format!("removing {}", sdir.display()))?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Keys of all built images, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.dir).context(
            Code::InternalError,
            format!("listing {}", self.dir.display()),
        )?;
        for e in rd.flatten() {
            let p = e.path();
            if !p.join(IMAGE_NAME).is_file() {
                continue;
            }
            if let Ok(k) = fs::read_to_string(p.join(KEY_NAME))
                && key_hex(k.trim()).is_ok()
            {
                out.push(k.trim().to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_builds_are_removed_but_images_and_busy_keys_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let hex = |c: char| c.to_string().repeat(64);
        // A finished image with a stray temp file.
        let done = dir.path().join(hex('a'));
        fs::create_dir(&done).unwrap();
        fs::write(done.join(IMAGE_NAME), b"img").unwrap();
        fs::write(done.join(".tmp-1-rootfs.ext4"), b"partial").unwrap();
        // A build that died before publishing.
        let dead = dir.path().join(hex('b'));
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join(".tmp-2-rootfs.ext4"), b"partial").unwrap();
        // A build in progress holds its lock.
        let busy = dir.path().join(hex('c'));
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join(".tmp-3-rootfs.ext4"), b"writing").unwrap();
        let held =
            Lock::acquire(&dir.path().join(".locks").join(format!("{}.lock", hex('c')))).unwrap();
        // Another process's lock is a different open file description, as
        // flock sees it, so this store's try-lock fails.
        assert_eq!(store.remove_partial().unwrap(), 3);
        assert!(done.join(IMAGE_NAME).is_file());
        assert!(!done.join(".tmp-1-rootfs.ext4").exists());
        assert!(!dead.exists());
        assert!(busy.join(".tmp-3-rootfs.ext4").exists());
        drop(held);
        assert_eq!(store.remove_partial().unwrap(), 2);
        assert!(!busy.exists());
    }

    #[test]
    fn keys_are_validated() {
        assert!(key_hex("sha256:0123456789abcdef0123456789abcdef").is_ok());
        assert!(key_hex("sha256:../../etc").is_err());
        assert!(key_hex("nocolon").is_err());
        assert!(key_hex("sha256:ABCDEF0123456789abcdef0123456789").is_err());
    }
}
