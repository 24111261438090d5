//! Filesystem RPCs: mount, umount, mkdir, write, stat, copy in/out, and the
//! resolv.conf / hosts writers.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use vminitd_api::proto;

use super::BoxStream;
use crate::sys;

/// Copy-out chunk size.
const CHUNK: usize = 256 << 10;

/// A request path: it must be absolute (it is resolved in the container's
/// root by `in_root`, or in the VM's for the agent's own files).
pub fn absolute(path: &str) -> Result<PathBuf> {
    if !path.starts_with('/') {
        return Err(ContainerizationError::invalid_argument(format!(
            "path {path:?} must be absolute"
        )));
    }
    Ok(PathBuf::from(path))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ContainerizationError::internal("a blocking task failed").with_cause(e))?
}

pub(super) async fn mount(r: proto::MountRequest) -> Result<()> {
    let dest = absolute(&r.destination)?;
    blocking(move || {
        if !dest.exists() {
            std::fs::create_dir_all(&dest).context(
                Code::InternalError,
                format!("cannot create {}", dest.display()),
            )?;
        }
        sys::mount_with_options(&r.r#type, &r.source, &dest, &r.options)
    })
    .await
}

pub(super) async fn umount(r: proto::UmountRequest) -> Result<()> {
    let path = absolute(&r.path)?;
    let flags = nix::mount::MntFlags::from_bits(r.flags).ok_or_else(|| {
        ContainerizationError::invalid_argument(format!("invalid umount flags {}", r.flags))
    })?;
    blocking(move || {
        nix::mount::umount2(&path, flags)
            .map_err(|e| sys::errno_error(e, format!("cannot unmount {}", path.display())))
    })
    .await
}

pub(super) async fn mkdir(r: proto::MkdirRequest) -> Result<()> {
    let path = absolute(&r.path)?;
    blocking(move || {
        let perms = if r.perms == 0 { 0o755 } else { r.perms };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(r.all).mode(perms);
        match b.create(&path) {
            Ok(()) => Ok(()),
            Err(e) if r.all && e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(ContainerizationError::from(e)
                .with_message(format!("cannot create directory {}", path.display()))),
        }
    })
    .await
}

/// Adds a readable message in front of an io-derived error.
trait WithMessage {
    fn with_message(self, msg: String) -> ContainerizationError;
}
impl WithMessage for ContainerizationError {
    fn with_message(mut self, msg: String) -> ContainerizationError {
        self.message = format!("{msg}: {}", self.message);
        self
    }
}

/// Writes `data` to `path` atomically: temp file, fsync, rename, fsync dir.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        ContainerizationError::from(e).with_message(format!("cannot write {}", path.display()))
    })
}

pub(super) async fn write_file(r: proto::WriteFileRequest) -> Result<()> {
    let path = absolute(&r.path)?;
    blocking(move || {
        if r.make_parents
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent).context(
                Code::InternalError,
                format!("cannot create {}", parent.display()),
            )?;
        }
        let mode = if r.mode == 0 { 0o644 } else { r.mode };
        if r.flags & libc::O_APPEND != 0 {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(mode)
                .open(&path)
                .map_err(|e| {
                    ContainerizationError::from(e)
                        .with_message(format!("cannot open {}", path.display()))
                })?;
            f.write_all(&r.data)
                .and_then(|_| f.sync_data())
                .map_err(|e| {
                    ContainerizationError::from(e)
                        .with_message(format!("cannot write {}", path.display()))
                })
        } else {
            write_atomic(&path, &r.data, mode)
        }
    })
    .await
}

pub(super) async fn stat(r: proto::StatRequest, root: Option<i32>) -> Result<proto::StatResponse> {
    in_root(root, move || stat_here(&r)).await
}

fn stat_here(r: &proto::StatRequest) -> Result<proto::StatResponse> {
    let path = absolute(&r.path)?;
    let st = if r.no_follow {
        nix::sys::stat::lstat(&path)
    } else {
        nix::sys::stat::stat(&path)
    }
    .map_err(|e| sys::errno_error(e, format!("cannot stat {}", path.display())))?;
    #[allow(clippy::unnecessary_cast)]
    Ok(proto::StatResponse {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u64,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u64,
        size: st.st_size as i64,
        blksize: st.st_blksize as i64,
        blocks: st.st_blocks as i64,
        atime_sec: st.st_atime as i64,
        atime_nsec: st.st_atime_nsec as i64,
        mtime_sec: st.st_mtime as i64,
        mtime_nsec: st.st_mtime_nsec as i64,
        ctime_sec: st.st_ctime as i64,
        ctime_nsec: st.st_ctime_nsec as i64,
    })
}

/// A blocking reader over chunks arriving on a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub(super) async fn copy_in(
    first: proto::CopyInChunk,
    mut stream: Streaming<proto::CopyInChunk>,
    root: Option<i32>,
) -> Result<proto::CopyInResponse> {
    let header = first.header.ok_or_else(|| {
        ContainerizationError::invalid_argument("the first copy chunk has no header")
    })?;
    let path = absolute(&header.path)?;
    let mode = proto::CopyMode::try_from(header.mode)
        .map_err(|_| ContainerizationError::invalid_argument("unknown copy mode"))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let file_mode = if header.file_mode == 0 {
        0o644
    } else {
        header.file_mode
    };
    let make_parents = header.make_parents;
    // Spawned so it drains the channel while the chunks arrive below.
    let worker = tokio::spawn(in_root(root, move || -> Result<()> {
        let mut reader = ChannelReader {
            rx,
            buf: first.data,
            pos: 0,
        };
        match mode {
            proto::CopyMode::Raw => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                if make_parents {
                    std::fs::create_dir_all(parent).context(
                        Code::InternalError,
                        format!("cannot create {}", parent.display()),
                    )?;
                }
                let mut tmp = tempfile_in(parent)?;
                std::io::copy(&mut reader, &mut tmp.1)
                    .and_then(|_| {
                        tmp.1
                            .set_permissions(std::fs::Permissions::from_mode(file_mode))
                    })
                    .and_then(|_| tmp.1.sync_all())
                    .and_then(|_| std::fs::rename(&tmp.0, &path))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp.0);
                        ContainerizationError::from(e)
                            .with_message(format!("cannot write {}", path.display()))
                    })
            }
            proto::CopyMode::TarPath => Err(ContainerizationError::invalid_argument(
                "a whole-path tar is only made by copy out; copy in extracts into a directory",
            )),
            proto::CopyMode::Tar => {
                std::fs::create_dir_all(&path).context(
                    Code::InternalError,
                    format!("cannot create {}", path.display()),
                )?;
                unpack_tar(reader, &path)
            }
        }
    }));
    let mut total = 0u64;
    let mut send_failed = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.data.len() as u64;
        if !send_failed && tx.send(chunk.data).await.is_err() {
            // The writer stopped early; its error is reported below.
            send_failed = true;
        }
    }
    drop(tx);
    worker
        .await
        .map_err(|e| ContainerizationError::internal("the copy task failed").with_cause(e))??;
    Ok(proto::CopyInResponse { bytes: total })
}

/// Extracts a CopyIn tar stream into the directory `dest`; entries that
/// would land outside it (`..`, through a symlink, hard links to outside)
/// are refused by `tar`'s checks.
pub fn unpack_tar(reader: impl Read, dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(dest).context(
        Code::InvalidArgument,
        format!("cannot extract the archive into {}", dest.display()),
    )
}

/// A uniquely named temporary file in `dir`.
fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    for i in 0..100u32 {
        let p = dir.join(format!(".vminitd-copy-{}-{i}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(ContainerizationError::from(e)
                    .with_message(format!("cannot create a file in {}", dir.display())));
            }
        }
    }
    Err(ContainerizationError::internal(format!(
        "cannot create a file in {}",
        dir.display()
    )))
}

/// A blocking writer that sends its bytes as copy-out chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Result<proto::CopyOutChunk, tonic::Status>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(proto::CopyOutChunk { data }))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })
    }
}

pub(super) async fn copy_out(
    r: proto::CopyOutRequest,
    root: Option<i32>,
) -> Result<BoxStream<proto::CopyOutChunk>> {
    let path = absolute(&r.path)?;
    let mode = proto::CopyMode::try_from(r.mode)
        .map_err(|_| ContainerizationError::invalid_argument("unknown copy mode"))?;
    let (tx, rx) = mpsc::channel(4);
    // Checked before the stream starts so a bad path is an error of the
    // call, not of the stream; the archive itself is written in the same
    // root on its own thread.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let worker = in_root(root, move || -> Result<()> {
        let meta = std::fs::metadata(&path).map_err(|e| {
            ContainerizationError::from(e).with_message(format!("cannot copy {}", path.display()))
        });
        let checked = meta.and_then(|meta| match mode {
            proto::CopyMode::Raw if !meta.is_file() => {
                Err(ContainerizationError::invalid_argument(format!(
                    "{} is not a regular file",
                    path.display()
                )))
            }
            proto::CopyMode::Tar if !meta.is_dir() => Err(ContainerizationError::invalid_argument(
                format!("{} is not a directory", path.display()),
            )),
            _ => Ok(meta),
        });
        let meta = match checked {
            Ok(m) => {
                let _ = ready_tx.send(Ok(()));
                m
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return Ok(());
            }
        };
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let one_fs = r
            .one_file_system
            .then(|| std::os::unix::fs::MetadataExt::dev(&meta));
        let result = match mode {
            proto::CopyMode::Raw => std::fs::File::open(&path)
                .and_then(|mut f| std::io::copy(&mut f, &mut w))
                .map(|_| ()),
            proto::CopyMode::Tar => {
                let mut b = tar::Builder::new(&mut w);
                b.follow_symlinks(false);
                append_tree(&mut b, &path, Path::new(""), one_fs).and_then(|_| b.finish())
            }
            proto::CopyMode::TarPath => {
                let name = PathBuf::from(path.file_name().unwrap_or(std::ffi::OsStr::new(".")));
                let mut b = tar::Builder::new(&mut w);
                b.follow_symlinks(false);
                let tree = if meta.is_dir() {
                    b.append_dir(&name, &path)
                        .and_then(|_| append_tree(&mut b, &path, &name, one_fs))
                } else {
                    b.append_path_with_name(&path, &name)
                };
                tree.and_then(|_| b.finish())
            }
        }
        .and_then(|_| w.flush());
        if let Err(e) = result {
            let status: tonic::Status = ContainerizationError::from(e)
                .with_message(format!("cannot copy {}", path.display()))
                .into();
            let _ = tx.blocking_send(Err(status));
        }
        Ok(())
    });
    tokio::spawn(worker);
    ready_rx
        .await
        .map_err(|_| ContainerizationError::internal("the copy task ended early"))??;
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Appends the entries below `dir` to `b`, named under `name`, in a stable
/// order. With `one_fs`, directories of other filesystems (proc, sysfs,
/// mounted volumes) are recorded empty, as `tar --one-file-system` does;
/// sockets are skipped (tar cannot hold them).
fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    one_fs: Option<u64>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let n = name.join(entry.file_name());
        if meta.is_dir() {
            b.append_dir(&n, &path)?;
            if one_fs.is_none_or(|dev| meta.dev() == dev) {
                append_tree(b, &path, &n, one_fs)?;
            }
        } else if !meta.file_type().is_socket() {
            b.append_path_with_name(&path, &n)?;
        }
    }
    Ok(())
}

/// Runs `f` where paths mean what they mean in a container: on a thread of
/// its own that has entered the mount namespace of process `pid` and taken
/// its root as `/` (so the container's mounts are seen and absolute
/// symlinks resolve inside it). `None` runs `f` on the blocking pool, in the
/// VM's own filesystem. The thread ends with `f`: it never serves anything
/// else from inside the container.
async fn in_root<T: Send + 'static>(
    pid: Option<i32>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let Some(pid) = pid else {
        return blocking(f).await;
    };
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .context(Code::InvalidState, "the container is not running")?;
    let root = std::fs::File::open(format!("/proc/{pid}/root"))
        .context(Code::InvalidState, "the container is not running")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let entered = (|| -> nix::Result<()> {
            // A thread shares its root and cwd with the process until it
            // unshares them; setns of a mount namespace refuses otherwise.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS)?;
            nix::unistd::fchdir(&root)?;
            nix::unistd::chroot(".")?;
            nix::unistd::chdir("/")
        })();
        let result = match entered {
            Ok(()) => f(),
            Err(e) => Err(sys::errno_error(
                e,
                "cannot enter the container's filesystem",
            )),
        };
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| ContainerizationError::internal("the copy thread ended early"))?
}

/// The `etc/<name>` file of a rootfs at `location`.
fn etc_file(location: &str, name: &str) -> Result<PathBuf> {
    let root = absolute(if location.is_empty() { "/" } else { location })?;
    Ok(root.join("etc").join(name))
}

/// resolv.conf text.
pub(super) fn resolv_conf(r: &proto::ConfigureDnsRequest) -> String {
    let mut out = String::new();
    for ns in &r.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !r.domain.is_empty() {
        out.push_str(&format!("domain {}\n", r.domain));
    }
    if !r.search_domains.is_empty() {
        out.push_str(&format!("search {}\n", r.search_domains.join(" ")));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// /etc/hosts text.
pub(super) fn hosts_file(r: &proto::ConfigureHostsRequest) -> String {
    let mut out = String::new();
    if !r.comment.is_empty() {
        out.push_str(&format!("# {}\n", r.comment));
    }
    for e in &r.entries {
        out.push_str(&e.ip_address);
        for h in &e.hostnames {
            out.push(' ');
            out.push_str(h);
        }
        if !e.comment.is_empty() {
            out.push_str(&format!(" # {}", e.comment));
        }
        out.push('\n');
    }
    out
}

pub(super) async fn configure_dns(r: proto::ConfigureDnsRequest) -> Result<()> {
    for ns in &r.nameservers {
        ns.parse::<std::net::IpAddr>().map_err(|_| {
            ContainerizationError::invalid_argument(format!("invalid nameserver {ns:?}"))
        })?;
    }
    let path = etc_file(&r.location, "resolv.conf")?;
    let text = resolv_conf(&r);
    blocking(move || {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).context(
                Code::InternalError,
                format!("cannot create {}", p.display()),
            )?;
        }
        write_atomic(&path, text.as_bytes(), 0o644)
    })
    .await
}

pub(super) async fn configure_hosts(r: proto::ConfigureHostsRequest) -> Result<()> {
    for e in &r.entries {
        e.ip_address.parse::<std::net::IpAddr>().map_err(|_| {
            ContainerizationError::invalid_argument(format!("invalid address {:?}", e.ip_address))
        })?;
    }
    let path = etc_file(&r.location, "hosts")?;
    let text = hosts_file(&r);
    blocking(move || {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).context(
                Code::InternalError,
                format!("cannot create {}", p.display()),
            )?;
        }
        write_atomic(&path, text.as_bytes(), 0o644)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let r = proto::ConfigureDnsRequest {
            location: "/".into(),
            nameservers: vec!["192.168.64.1".into()],
            domain: "example".into(),
            search_domains: vec!["a.example".into(), "b.example".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(&r),
            "nameserver 192.168.64.1\ndomain example\nsearch a.example b.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_lines() {
        let r = proto::ConfigureHostsRequest {
            location: "/".into(),
            entries: vec![proto::HostsEntry {
                ip_address: "127.0.0.1".into(),
                hostnames: vec!["localhost".into()],
                comment: String::new(),
            }],
            comment: "managed".into(),
        };
        assert_eq!(hosts_file(&r), "# managed\n127.0.0.1 localhost\n");
    }
}
