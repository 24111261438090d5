//! Files in and out of a running container (what `container cp` and
//! `container export` use). Paths are the container's: the agent enters the
//! container's mount namespace and root, so its mounts are seen and its
//! symlinks resolve inside it.

use containerization_error::{Code, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use vminitd_api::{CopyMode, Vminitd};

use super::LinuxContainer;

/// What a path in the container is (seed-style `stat` result, trimmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    /// A directory (after following symlinks).
    pub is_dir: bool,
    /// `st_mode`.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
}

/// What [`LinuxContainer::copy_out`] archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveShape {
    /// The path itself (file or tree) as the one top-level entry, named by
    /// its base name (`docker cp` of a path).
    Path,
    /// The contents of a directory at the top level (`docker export` of `/`).
    Contents,
}

impl LinuxContainer {
    /// The agent, while the container's VM runs.
    pub(super) async fn running_agent(&self, what: &str) -> Result<Vminitd> {
        let inner = self.inner.lock().await;
        inner
            .agent
            .clone()
            .ok_or_else(|| self.wrong_state(what, inner.state))
    }

    /// `path` in the container, or `None` if it does not exist.
    pub async fn stat_path(&self, path: &str) -> Result<Option<PathInfo>> {
        let agent = self.running_agent("look into").await?;
        match agent.stat_in(&self.id, path).await {
            Ok(st) => Ok(Some(PathInfo {
                is_dir: st.mode & libc::S_IFMT == libc::S_IFDIR,
                mode: st.mode,
                size: st.size.max(0) as u64,
            })),
            Err(e) if e.is_code(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Extracts the tar stream `archive` into directory `dir` of the
    /// container (created if missing); returns the bytes sent.
    pub async fn copy_in<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        dir: &str,
        archive: R,
    ) -> Result<u64> {
        let agent = self.running_agent("copy into").await?;
        agent
            .copy_in_to(&self.id, dir, CopyMode::Tar, 0, archive)
            .await
    }

    /// Writes a tar stream of `path` in the container to `out`. With
    /// `one_file_system` the archive stays on `path`'s filesystem (no
    /// /proc, /sys or mounted volumes, as `docker export` leaves out).
    pub async fn copy_out<W: AsyncWrite + Unpin>(
        &self,
        path: &str,
        shape: ArchiveShape,
        one_file_system: bool,
        out: &mut W,
    ) -> Result<u64> {
        let agent = self.running_agent("copy out of").await?;
        let mode = match shape {
            ArchiveShape::Path => CopyMode::TarPath,
            ArchiveShape::Contents => CopyMode::Tar,
        };
        agent
            .copy_out_from(&self.id, path, mode, one_file_system, out)
            .await
    }
}
