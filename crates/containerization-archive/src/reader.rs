//! `ArchiveReader`: the seed's reader over a (possibly compressed) tar.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::compression::open_decompressed;
use crate::entry::{ArchiveEntry, EntryInfo, normalize};
use crate::extract::Extractor;

/// Where the archive bytes come from. A file can be read any number of
/// times; a caller's stream only once.
enum Source {
    File(PathBuf),
    Stream(Option<Box<dyn Read + Send>>),
}

/// Reads a tar archive, plain or gzip/zstd compressed (auto-detected).
pub struct ArchiveReader {
    source: Source,
    archive: Option<tar::Archive<Box<dyn Read + Send>>>,
}

impl ArchiveReader {
    /// Opens the archive at `path`; fails with `NotFound` if it is missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        File::open(path).context(
            Code::NotFound,
            format!("cannot open archive '{}'", path.display()),
        )?;
        Ok(Self {
            source: Source::File(path.to_path_buf()),
            archive: None,
        })
    }

    /// Reads the archive from a stream; it can be traversed once.
    pub fn from_reader(r: impl Read + Send + 'static) -> Self {
        Self {
            source: Source::Stream(Some(Box::new(r))),
            archive: None,
        }
    }

    fn start(&mut self) -> Result<&mut tar::Archive<Box<dyn Read + Send>>> {
        let raw: Box<dyn Read + Send> = match &mut self.source {
            Source::File(path) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(&*path).context(
                    Code::NotFound,
                    format!("cannot open archive '{}'", path.display()),
                )?,
            )),
            Source::Stream(s) => s.take().ok_or_else(|| {
                ContainerizationError::invalid_state("archive stream was already read")
            })?,
        };
        let stream: Box<dyn Read + Send> = Box::new(crate::guard_headers(open_decompressed(raw)?));
        let mut archive = tar::Archive::new(stream);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        Ok(self.archive.insert(archive))
    }

    /// Iterates over the members in archive order.
    pub fn entries(&mut self) -> Result<Entries<'_>> {
        let inner = self
            .start()?
            .entries()
            .context(Code::InvalidArgument, "not a tar archive")?;
        Ok(Entries { inner })
    }

    /// Extracts every member under `to` (created if missing). Members that
    /// would land outside `to` (`..`, absolute paths, links or earlier
    /// symlinks pointing out) are refused with `InvalidArgument` naming the
    /// member; members already written stay.
    pub fn extract_contents(&mut self, to: impl AsRef<Path>) -> Result<()> {
        let mut extractor = Extractor::new(to.as_ref())?;
        for entry in self.entries()? {
            extractor.extract(entry?)?;
        }
        Ok(())
    }

    /// Returns the metadata and data of the member at `path` (compared after
    /// removing `./` and leading `/`). `NotFound` if there is no such member.
    pub fn extract_file(&mut self, path: impl AsRef<Path>) -> Result<(EntryInfo, Vec<u8>)> {
        let path = path.as_ref();
        let wanted = normalize(path).ok_or_else(|| {
            ContainerizationError::invalid_argument(format!(
                "path '{}' climbs out of the archive",
                path.display()
            ))
        })?;
        let mut found = None;
        for entry in self.entries()? {
            let mut entry = entry?;
            if entry.info().normalized_path().as_deref() == Some(wanted.as_path()) {
                let mut data = Vec::with_capacity(entry.info().size.min(1 << 24) as usize);
                entry.read_to_end(&mut data).context(
                    Code::InvalidArgument,
                    format!("reading archive entry '{}'", path.display()),
                )?;
                // Later members with the same name replace earlier ones, as
                // on extraction.
                found = Some((entry.info().clone(), data));
            }
        }
        found.ok_or_else(|| {
            ContainerizationError::not_found(format!("'{}' not found in archive", path.display()))
        })
    }
}

impl std::fmt::Debug for ArchiveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::File(p) => write!(f, "ArchiveReader({})", p.display()),
            Source::Stream(_) => f.write_str("ArchiveReader(<stream>)"),
        }
    }
}

/// Iterator over the members of an archive.
pub struct Entries<'a> {
    inner: tar::Entries<'a, Box<dyn Read + Send>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<ArchiveEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.inner.next()?;
        Some(
            next.context(Code::InvalidArgument, "corrupt tar archive")
                .and_then(ArchiveEntry::new),
        )
    }
}
