//! The process stdio containerd hands over: FIFO paths (or `file://` log
//! URIs), opened as our library's [`Stdio`].
//!
//! All FIFOs are opened non-blocking, so the open never waits for the other
//! side (ctr may open its end later, or never when detached).
//!
//! - stdout/stderr are opened read-write: a reader that goes away cannot
//!   make us die of SIGPIPE, and the process's output simply waits.
//! - stdin is opened read-only: until a writer connects it is just not
//!   readable (Linux reports no EOF before a first writer), and when the
//!   last writer closes (ctr's stdin ended, or ctr detached) the process
//!   sees EOF, as with runc. containerd's `CloseIO` ends it too, through a
//!   [`StdinCloser`] that lets the pump drain what is still buffered first
//!   (closing at once could drop the last bytes ctr wrote just before).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use containerization::Stdio;
use containerization_error::{ContainerizationError, Result};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;

/// The three paths of a process's stdio, as containerd names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    /// stdin FIFO ("" = none).
    pub stdin: String,
    /// stdout FIFO or `file://` URI ("" = discard).
    pub stdout: String,
    /// stderr FIFO or `file://` URI ("" = discard; unused with a terminal).
    pub stderr: String,
    /// Whether the process has a terminal.
    pub terminal: bool,
}

fn open_error(what: &str, path: &str, e: std::io::Error) -> ContainerizationError {
    ContainerizationError::internal(format!("cannot open the {what} of the process at {path}"))
        .with_cause(e)
}

#[derive(Debug, Default)]
struct Closing {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Ends a stdin FIFO's stream once its buffered bytes are read.
#[derive(Debug, Clone)]
pub struct StdinCloser(Arc<Closing>);

impl StdinCloser {
    /// From now on the reader returns EOF as soon as the FIFO is empty.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        if let Some(w) = self.0.waker.lock().ok().and_then(|mut w| w.take()) {
            w.wake();
        }
    }
}

/// A stdin FIFO that reports EOF after [`StdinCloser::close`] and a drain.
struct ClosableFifo {
    rx: pipe::Receiver,
    closing: Arc<Closing>,
}

impl AsyncRead for ClosableFifo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Register before looking at the flag, so a close in between wakes us.
        if let Ok(mut w) = self.closing.waker.lock() {
            *w = Some(cx.waker().clone());
        }
        let closed = self.closing.closed.load(Ordering::SeqCst);
        match Pin::new(&mut self.rx).poll_read(cx, buf) {
            // Pending may only mean the reactor has not reported the FIFO
            // readable yet; after close, ask the FIFO itself, and an empty
            // FIFO is the end (nothing added to `buf` = EOF).
            Poll::Pending if closed => {
                let fd = self.rx.as_raw_fd();
                let unfilled = buf.initialize_unfilled();
                // SAFETY: `fd` is the open, non-blocking FIFO owned by
                // `self.rx`; the pointer and length describe `unfilled`,
                // initialized memory we may write.
                let n = unsafe { libc::read(fd, unfilled.as_mut_ptr().cast(), unfilled.len()) };
                if n > 0 {
                    buf.advance(n as usize);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Opens stdin; the closer ends it (`None` when there is no stdin).
pub fn open_stdin(path: &str) -> Result<(Stdio, Option<StdinCloser>)> {
    if path.is_empty() {
        return Ok((Stdio::Null, None));
    }
    let rx = pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(|e| open_error("stdin", path, e))?;
    let closing = Arc::new(Closing::default());
    let fifo = ClosableFifo {
        rx,
        closing: closing.clone(),
    };
    Ok((Stdio::Reader(Box::new(fifo)), Some(StdinCloser(closing))))
}

/// Opens stdout or stderr.
pub fn open_output(what: &str, path: &str) -> Result<Stdio> {
    if path.is_empty() {
        return Ok(Stdio::Null);
    }
    if let Some(file) = path.strip_prefix("file://") {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(file))
            .map_err(|e| open_error(what, path, e))?;
        return Ok(Stdio::Fd(f.into()));
    }
    if path.contains("://") {
        return Err(ContainerizationError::unsupported(format!(
            "{what} {path}: only FIFOs and file:// logs are supported"
        )));
    }
    let tx = pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|e| open_error(what, path, e))?;
    Ok(Stdio::Writer(Box::new(tx)))
}

impl StdioPaths {
    /// Opens all three (stderr is not opened with a terminal: the terminal
    /// merges it into stdout), and the closer of stdin.
    pub fn open(&self) -> Result<OpenStdio> {
        let (stdin, closer) = open_stdin(&self.stdin)?;
        let stdout = open_output("stdout", &self.stdout)?;
        let stderr = if self.terminal {
            Stdio::Null
        } else {
            open_output("stderr", &self.stderr)?
        };
        Ok(OpenStdio {
            stdin,
            stdout,
            stderr,
            closer,
        })
    }
}

/// Opened stdio of one process.
#[derive(Debug)]
pub struct OpenStdio {
    /// stdin.
    pub stdin: Stdio,
    /// stdout.
    pub stdout: Stdio,
    /// stderr.
    pub stderr: Stdio,
    /// Ends stdin (`CloseIO`).
    pub closer: Option<StdinCloser>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn fifos_open_without_a_peer_and_carry_data() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let out = open_output("stdout", fifo.to_str().unwrap()).unwrap();
        let Stdio::Writer(mut w) = out else {
            panic!("a FIFO opens as a writer")
        };
        let mut r = pipe::OpenOptions::new().open_receiver(&fifo).unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, b"hi\n")
            .await
            .unwrap();
        drop(w);
        let mut got = vec![0u8; 3];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"hi\n");
        assert!(matches!(open_stdin("").unwrap(), (Stdio::Null, None)));
        assert!(open_output("stdout", "binary:///usr/bin/logger").is_err());
        let log = dir.path().join("log");
        let uri = format!("file://{}", log.display());
        assert!(matches!(open_output("stdout", &uri).unwrap(), Stdio::Fd(_)));
    }

    #[tokio::test]
    async fn close_drains_stdin_then_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (stdin, closer) = open_stdin(fifo.to_str().unwrap()).unwrap();
        let (Stdio::Reader(mut r), Some(closer)) = (stdin, closer) else {
            panic!("a FIFO stdin opens as a reader with a closer")
        };
        // ctr writes, closes its end and sends CloseIO at once.
        let mut w = pipe::OpenOptions::new().open_sender(&fifo).unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, b"last words\n")
            .await
            .unwrap();
        drop(w);
        closer.close();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words\n");
    }

    #[tokio::test]
    async fn stdin_waits_for_a_writer_and_ends_when_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (Stdio::Reader(mut r), _) = open_stdin(fifo.to_str().unwrap()).unwrap() else {
            panic!("a FIFO stdin opens as a reader")
        };
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.map(|_| got)
        });
        // No writer yet: the read must still be waiting, not at EOF.
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        let mut w = pipe::OpenOptions::new().open_sender(&fifo).unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, b"abc")
            .await
            .unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap().unwrap(), b"abc");
    }
}
