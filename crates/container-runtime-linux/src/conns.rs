//! Open connections of a gRPC listener, counted so a files-only helper can
//! end once its last client (a `cp` or `export`) has gone.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::Connected;

/// How many connections are open, and when the count last changed.
#[derive(Debug, Clone)]
pub(crate) struct Connections(Arc<State>);

#[derive(Debug)]
struct State {
    open: AtomicUsize,
    changed: Mutex<Instant>,
}

impl Connections {
    pub(crate) fn new() -> Connections {
        Connections(Arc::new(State {
            open: AtomicUsize::new(0),
            changed: Mutex::new(Instant::now()),
        }))
    }

    /// Counts `io` until it is dropped (the server drops a connection when
    /// the client closes it).
    pub(crate) fn track(&self, io: UnixStream) -> Tracked {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Tracked {
            io,
            conns: self.clone(),
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.0.changed.lock() {
            *t = Instant::now();
        }
    }

    /// Open connections, and when that number last changed.
    pub(crate) fn snapshot(&self) -> (usize, Instant) {
        let changed = self
            .0
            .changed
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now());
        (self.0.open.load(Ordering::SeqCst), changed)
    }
}

/// A connection that is counted while it lives.
#[derive(Debug)]
pub(crate) struct Tracked {
    io: UnixStream,
    conns: Connections,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conns.0.open.fetch_sub(1, Ordering::SeqCst);
        self.conns.touch();
    }
}

impl Connected for Tracked {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_until_dropped() {
        let conns = Connections::new();
        let (a, _b) = UnixStream::pair().unwrap();
        let (_, t0) = conns.snapshot();
        let tracked = conns.track(a);
        assert_eq!(conns.snapshot().0, 1);
        drop(tracked);
        let (open, t1) = conns.snapshot();
        assert_eq!(open, 0);
        assert!(t1 >= t0);
    }
}
