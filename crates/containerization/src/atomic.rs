//! Acknowledged data is never lost: files are replaced atomically.

use std::io::Write;
use std::path::Path;

use containerization_error::{Code, Result, ResultExt};

/// Writes `data` to `path` atomically: a temp file in the same directory,
/// fsync, rename over `path`, fsync the directory. A crash leaves either the
/// old file or the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .context(Code::InternalError, format!("writing {}", path.display()))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .context(Code::InternalError, format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .context(Code::InternalError, format!("writing {}", path.display()))?;
    sync_dir(dir)
}

/// fsync of a directory, so a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context(Code::InternalError, format!("syncing {}", dir.display()))
}
