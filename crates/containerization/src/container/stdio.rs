//! Process stdio: what the caller hands in, and the pumps between those
//! handles and the agent's `ProcessIo` stream.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use containerization_error::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vminitd_api::{ProcessIo, ProcessOutput};

/// Where a process's stdin comes from or its output goes.
pub enum Stdio {
    /// Nothing (no stdin; output discarded).
    Null,
    /// This process's own stdin/stdout/stderr.
    Inherit,
    /// A file descriptor (file, pipe, socket, terminal).
    Fd(OwnedFd),
    /// An async reader (stdin only).
    Reader(Box<dyn AsyncRead + Send + Unpin>),
    /// An async writer (stdout/stderr only).
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

impl std::fmt::Debug for Stdio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stdio::Null => "Null",
            Stdio::Inherit => "Inherit",
            Stdio::Fd(_) => "Fd",
            Stdio::Reader(_) => "Reader",
            Stdio::Writer(_) => "Writer",
        })
    }
}

impl Stdio {
    /// A writer collecting output in memory, and the buffer to read it from.
    pub fn buffer() -> (Stdio, OutputBuffer) {
        let buf = OutputBuffer::default();
        (Stdio::Writer(Box::new(buf.clone())), buf)
    }

    fn into_reader(self) -> Option<Box<dyn AsyncRead + Send + Unpin>> {
        match self {
            Stdio::Null | Stdio::Writer(_) => None,
            Stdio::Inherit => Some(Box::new(tokio::io::stdin())),
            Stdio::Fd(fd) => Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(fd)))),
            Stdio::Reader(r) => Some(r),
        }
    }

    fn into_writer(self, stderr: bool) -> Option<Box<dyn AsyncWrite + Send + Unpin>> {
        match self {
            Stdio::Null | Stdio::Reader(_) => None,
            Stdio::Inherit if stderr => Some(Box::new(tokio::io::stderr())),
            Stdio::Inherit => Some(Box::new(tokio::io::stdout())),
            Stdio::Fd(fd) => Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(fd)))),
            Stdio::Writer(w) => Some(w),
        }
    }

    /// Whether the process should get a stdin at all.
    pub(crate) fn is_input(&self) -> bool {
        !matches!(self, Stdio::Null | Stdio::Writer(_))
    }
}

/// Output collected in memory by [`Stdio::buffer`].
#[derive(Debug, Clone, Default)]
pub struct OutputBuffer(Arc<Mutex<Vec<u8>>>);

impl OutputBuffer {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Everything written so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }
}

impl AsyncWrite for OutputBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Starts pumping between the caller's handles and the agent stream. The
/// returned task ends once all output has been written (stdout and stderr
/// drained by the agent), so waiting on it means no output is lost.
pub(crate) fn start_pumps(
    mut io: ProcessIo,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> tokio::task::JoinHandle<Result<()>> {
    if let Some(mut reader) = stdin.into_reader() {
        let tx = io.stdin.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.close().await;
                        break;
                    }
                    Ok(n) => {
                        if tx.write(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    let mut out = stdout.into_writer(false);
    let mut err = stderr.into_writer(true);
    tokio::spawn(async move {
        while let Some(chunk) = io.next().await? {
            let (sink, data) = match chunk {
                ProcessOutput::Stdout(d) => (&mut out, d),
                ProcessOutput::Stderr(d) => (&mut err, d),
            };
            if let Some(w) = sink {
                // A closed destination (e.g. `| head`) must not stop the
                // other stream or the process.
                if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                    *sink = None;
                }
            }
        }
        for w in [&mut out, &mut err].into_iter().flatten() {
            let _ = w.flush().await;
        }
        Ok(())
    })
}
