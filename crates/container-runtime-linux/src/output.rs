//! Where a process's output goes: `stdio.log` with a timestamp per line,
//! and the attached client's descriptor when there is one.

use std::fs::File;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// The log file and the per-stream partial lines.
#[derive(Debug)]
pub(crate) struct StdioLog {
    file: Mutex<File>,
}

impl StdioLog {
    /// Opens (appending) the container's `stdio.log`.
    pub(crate) fn open(path: &std::path::Path) -> std::io::Result<Arc<StdioLog>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Arc::new(StdioLog {
            file: Mutex::new(file),
        }))
    }

    fn line(&self, stream: &str, line: &[u8]) {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(mut f) = self.file.lock() {
            let mut rec = Vec::with_capacity(line.len() + 48);
            rec.extend_from_slice(ts.as_bytes());
            rec.push(b' ');
            rec.extend_from_slice(stream.as_bytes());
            rec.push(b' ');
            rec.extend_from_slice(line);
            rec.push(b'\n');
            let _ = f.write_all(&rec);
        }
    }
}

/// The client descriptor output is mirrored to, replaceable and clearable.
pub(crate) type ClientSink = Arc<Mutex<Option<File>>>;

/// An `AsyncWrite` for one stream (`stdout` or `stderr`) of one process.
pub(crate) struct Output {
    stream: &'static str,
    log: Option<Arc<StdioLog>>,
    client: ClientSink,
    partial: Vec<u8>,
}

impl Output {
    /// A writer that logs lines (when `log` is set) and mirrors bytes to `client`.
    pub(crate) fn new(
        stream: &'static str,
        log: Option<Arc<StdioLog>>,
        client: ClientSink,
    ) -> Output {
        Output {
            stream,
            log,
            client,
            partial: Vec::new(),
        }
    }

    fn flush_lines(&mut self, all: bool) {
        let Some(log) = &self.log else {
            self.partial.clear();
            return;
        };
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let rest = self.partial.split_off(pos + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            log.line(self.stream, &line[..line.len() - 1]);
        }
        if all && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            log.line(self.stream, &line);
        }
    }
}

impl AsyncWrite for Output {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut c) = self.client.lock() {
            // A client that went away must not stop the log or the process.
            if let Some(f) = c.as_mut()
                && f.write_all(buf).is_err()
            {
                *c = None;
            }
        }
        self.partial.extend_from_slice(buf);
        self.flush_lines(false);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flush_lines(true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.flush_lines(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_are_timestamped_and_mirrored() {
        let dir = tempfile::tempdir().unwrap();
        let log = StdioLog::open(&dir.path().join("stdio.log")).unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        let client: ClientSink =
            Arc::new(Mutex::new(Some(File::from(std::os::fd::OwnedFd::from(w)))));
        let mut out = Output::new("stdout", Some(log), client.clone());
        out.write_all(b"hello\nwor").await.unwrap();
        out.write_all(b"ld\npartial").await.unwrap();
        drop(out);
        client.lock().unwrap().take();
        let mut mirrored = String::new();
        std::io::Read::read_to_string(&mut r, &mut mirrored).unwrap();
        assert_eq!(mirrored, "hello\nworld\npartial");
        let text = std::fs::read_to_string(dir.path().join("stdio.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(" stdout hello"), "{}", lines[0]);
        assert!(lines[2].ends_with(" stdout partial"));
    }
}
