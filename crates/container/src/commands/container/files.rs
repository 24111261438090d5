//! `copy|cp` and `export`: files between the host and a container, running
//! or not (a stopped or created one is served by a files-only helper the
//! apiserver starts), with `docker cp`'s rules for where things land.

use std::path::{Path, PathBuf};

use clap::Args;
use container_api::apiserver::ContainerId;
use container_api::client::from_status;
use container_api::{ApiClient, RuntimeClient};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

/// `copy|cp`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: a host path or CONTAINER:PATH.
    pub source: String,
    /// Destination: a host path or CONTAINER:PATH.
    pub destination: String,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the tar archive to this file (default: stdout, if it is not a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Container id.
    pub id: String,
}

/// `CONTAINER:PATH`, or `None` for a host path (anything starting with `/`
/// or `.`, or without a colon, as Docker decides).
fn container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
        .filter(|(id, path)| !id.is_empty() && !path.is_empty())
}

/// A client of what serves container `id`'s files: its runtime helper
/// while it runs, else a files-only helper. One that is just ending refuses
/// the connection: ask again.
async fn files(client: &ApiClient, id: &str) -> Result<RuntimeClient> {
    let mut last = None;
    for _ in 0..3 {
        let reply = client
            .containers_client()
            .open_files(ContainerId { id: id.into() })
            .await
            .map_err(from_status)?;
        let sock = PathBuf::from(reply.into_inner().socket);
        let rt = match RuntimeClient::connect(&sock).await {
            Ok(rt) => rt,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match rt.state().await {
            Ok(_) => return Ok(rt),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        ContainerizationError::internal(format!("cannot reach the files of container {id}"))
    }))
}

/// A container path's parent and base name (`/a/b/` -> (`/a`, `b`)).
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((dir, name)) => (dir.into(), name.into()),
        None => ("/".into(), trimmed.into()),
    }
}

/// `container cp`.
pub async fn copy(client: &ApiClient, a: CopyArgs) -> Result<i32> {
    match (container_path(&a.source), container_path(&a.destination)) {
        (None, Some((id, path))) => {
            let rt = files(client, id).await?;
            copy_in(&rt, Path::new(&a.source), path).await?;
        }
        (Some((id, path)), None) => {
            let rt = files(client, id).await?;
            copy_out(&rt, path, Path::new(&a.destination)).await?;
        }
        (Some(_), Some(_)) => {
            return Err(ContainerizationError::invalid_argument(
                "copying between two containers is not supported: copy through the host",
            ));
        }
        (None, None) => {
            return Err(ContainerizationError::invalid_argument(
                "one of source and destination must be CONTAINER:PATH",
            ));
        }
    }
    Ok(0)
}

async fn copy_in(rt: &RuntimeClient, src: &Path, dest: &str) -> Result<()> {
    if !dest.starts_with('/') {
        return Err(ContainerizationError::invalid_argument(format!(
            "container path '{dest}' must be absolute"
        )));
    }
    let meta =
        std::fs::metadata(src).context(Code::NotFound, format!("cannot copy {}", src.display()))?;
    // `dir/.` copies the directory's contents, as in Docker.
    let contents = meta.is_dir() && src.to_string_lossy().ends_with("/.");
    let target = rt.stat_path(dest).await?;
    let (dir, name) = if target.exists && target.is_dir {
        (dest.to_string(), None)
    } else if target.exists && meta.is_dir() {
        return Err(ContainerizationError::invalid_argument(format!(
            "cannot copy directory {} onto file {dest}",
            src.display()
        )));
    } else {
        let (parent, name) = split(dest);
        let p = rt.stat_path(&parent).await?;
        if !(p.exists && p.is_dir) {
            return Err(ContainerizationError::not_found(format!(
                "directory {parent} not found in the container"
            )));
        }
        (parent, Some(name))
    };
    // Into `dest` when it is a directory (or with `dir/.` into a new
    // `dest`), else renamed to dest's base name in its parent; a directory's
    // contents (`dir/.`) copied into an existing directory need no name.
    let entry = name.or_else(|| {
        (!contents).then(|| {
            src.canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| ".".into())
        })
    });
    let src = src.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        let mut file = tempfile::tempfile().context(Code::InternalError, "creating a temp file")?;
        let mut b = tar::Builder::new(&mut file);
        b.follow_symlinks(false);
        let built = match (&entry, meta.is_dir()) {
            (Some(name), true) => b.append_dir_all(name, &src),
            (None, true) => b.append_dir_all(".", &src),
            (Some(name), false) => b.append_path_with_name(&src, name),
            (None, false) => unreachable!("a file always has an entry name"),
        };
        built.and_then(|_| b.finish()).context(
            Code::InvalidArgument,
            format!("archiving {}", src.display()),
        )?;
        drop(b);
        std::io::Seek::rewind(&mut file).context(Code::InternalError, "rewinding the archive")?;
        Ok(file)
    })
    .await
    .map_err(|e| ContainerizationError::internal("archiving failed").with_cause(e))??;
    rt.copy_in(&dir, tokio::fs::File::from_std(archive)).await
}

async fn copy_out(rt: &RuntimeClient, src: &str, dest: &Path) -> Result<()> {
    let info = rt.stat_path(src).await?;
    if !info.exists {
        return Err(ContainerizationError::not_found(format!(
            "{src} not found in the container"
        )));
    }
    let contents = info.is_dir && src.ends_with("/.");
    let (_, base) = split(src.trim_end_matches("/."));
    let into_dir = dest.is_dir();
    let parent = if into_dir {
        dest.to_path_buf()
    } else {
        let p = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !p.is_dir() {
            return Err(ContainerizationError::not_found(format!(
                "directory {} not found",
                p.display()
            )));
        }
        p.to_path_buf()
    };
    // The archive lands in a fresh directory beside the destination, then
    // moves into place: a failed copy leaves nothing half-written.
    let stage = tempfile::Builder::new()
        .prefix(".container-cp-")
        .tempdir_in(&parent)
        .context(
            Code::InternalError,
            format!("writing into {}", parent.display()),
        )?;
    let mut archive = tokio::fs::File::from_std(
        tempfile::tempfile_in(stage.path()).context(Code::InternalError, "creating a temp file")?,
    );
    rt.copy_out(src, contents, false, &mut archive).await?;
    let mut archive = archive.into_std().await;
    let dest = dest.to_path_buf();
    let stage_dir = stage.path().join("x");
    tokio::task::spawn_blocking(move || -> Result<()> {
        std::io::Seek::rewind(&mut archive).context(Code::InternalError, "reading the archive")?;
        // The stream comes from the guest: bound the members `tar` buffers.
        let mut a = tar::Archive::new(containerization_archive::guard_headers(archive));
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        a.unpack(&stage_dir)
            .context(Code::InternalError, "unpacking the archive")?;
        let moves: Vec<(PathBuf, PathBuf)> = match (contents, into_dir) {
            // `dir/.` into an existing directory: each entry moves in.
            (true, true) => std::fs::read_dir(&stage_dir)
                .context(Code::InternalError, "reading the archive")?
                .filter_map(|e| e.ok())
                .map(|e| (e.path(), dest.join(e.file_name())))
                .collect(),
            (true, false) => vec![(stage_dir.clone(), dest.clone())],
            (false, true) => vec![(stage_dir.join(&base), dest.join(&base))],
            (false, false) => vec![(stage_dir.join(&base), dest.clone())],
        };
        for (from, to) in moves {
            if to.is_dir() && !from.is_dir() {
                return Err(ContainerizationError::invalid_argument(format!(
                    "cannot copy a file onto directory {}",
                    to.display()
                )));
            }
            if to.is_dir() {
                // Merge a directory into an existing one, as Docker does.
                merge_dir(&from, &to)?;
            } else {
                std::fs::rename(&from, &to)
                    .context(Code::InternalError, format!("writing {}", to.display()))?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| ContainerizationError::internal("unpacking failed").with_cause(e))??;
    Ok(())
}

/// Moves the entries of `from` into existing directory `to`, recursively.
fn merge_dir(from: &Path, to: &Path) -> Result<()> {
    for e in std::fs::read_dir(from).context(Code::InternalError, "reading the archive")? {
        let e = e.context(Code::InternalError, "reading the archive")?;
        let target = to.join(e.file_name());
        if e.path().is_dir() && target.is_dir() {
            merge_dir(&e.path(), &target)?;
        } else {
            std::fs::rename(e.path(), &target)
                .context(Code::InternalError, format!("writing {}", target.display()))?;
        }
    }
    Ok(())
}

/// `container export`.
pub async fn export(client: &ApiClient, a: ExportArgs) -> Result<i32> {
    let rt = files(client, &a.id).await?;
    match &a.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .context(Code::InvalidArgument, format!("writing {}", path.display()))?;
            let (file, tmp_path) = tmp.into_parts();
            let mut out = tokio::fs::File::from_std(file);
            rt.copy_out("/", true, true, &mut out).await?;
            out.sync_all()
                .await
                .context(Code::InternalError, format!("writing {}", path.display()))?;
            tmp_path
                .persist(path)
                .context(Code::InternalError, format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(ContainerizationError::invalid_argument(
                    "refusing to write a tar archive to a terminal: use -o FILE or redirect stdout",
                ));
            }
            rt.copy_out("/", true, true, &mut tokio::io::stdout())
                .await?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_docker() {
        assert_eq!(
            container_path("web:/etc/hosts"),
            Some(("web", "/etc/hosts"))
        );
        assert_eq!(container_path("./a:b"), None);
        assert_eq!(container_path("/tmp/x"), None);
        assert_eq!(container_path("file.txt"), None);
        assert_eq!(split("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split("/a"), ("/".into(), "a".into()));
    }
}
