//! The client side of `ProcessIo`: a stdin sender and an output stream.

use containerization_error::{ContainerizationError, Result};
use tokio::sync::mpsc;

use crate::proto;

/// One chunk of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOutput {
    /// Bytes from stdout (or the terminal).
    Stdout(Vec<u8>),
    /// Bytes from stderr.
    Stderr(Vec<u8>),
}

/// Writes a process's stdin; dropping it without `close` leaves stdin open
/// until the stream ends.
#[derive(Debug, Clone)]
pub struct ProcessStdin {
    tx: mpsc::Sender<proto::IoRequest>,
}

impl ProcessStdin {
    /// Sends bytes to the process's stdin (waits while the agent is behind).
    pub async fn write(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        self.send(proto::io_request::Kind::Stdin(data.into())).await
    }

    /// Closes the process's stdin (the process reads EOF).
    pub async fn close(&self) -> Result<()> {
        self.send(proto::io_request::Kind::StdinEof(true)).await
    }

    async fn send(&self, kind: proto::io_request::Kind) -> Result<()> {
        self.tx
            .send(proto::IoRequest { kind: Some(kind) })
            .await
            .map_err(|_| ContainerizationError::invalid_state("process stdio stream has ended"))
    }
}

/// An attached process's stdio: `stdin` to write, `next` to read output until
/// the process's output is fully drained.
#[derive(Debug)]
pub struct ProcessIo {
    /// The process's stdin.
    pub stdin: ProcessStdin,
    output: tonic::Streaming<proto::IoEvent>,
}

impl ProcessIo {
    pub(crate) fn new(
        tx: mpsc::Sender<proto::IoRequest>,
        output: tonic::Streaming<proto::IoEvent>,
    ) -> Self {
        ProcessIo {
            stdin: ProcessStdin { tx },
            output,
        }
    }

    /// The next output chunk; `None` once stdout and stderr are both drained.
    pub async fn next(&mut self) -> Result<Option<ProcessOutput>> {
        match self.output.message().await? {
            None => Ok(None),
            Some(ev) => Ok(Some(match proto::IoStream::try_from(ev.stream) {
                Ok(proto::IoStream::Stderr) => ProcessOutput::Stderr(ev.data),
                _ => ProcessOutput::Stdout(ev.data),
            })),
        }
    }

    /// Reads all output to the end: (stdout, stderr).
    pub async fn collect(&mut self) -> Result<(Vec<u8>, Vec<u8>)> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(chunk) = self.next().await? {
            match chunk {
                ProcessOutput::Stdout(d) => out.extend_from_slice(&d),
                ProcessOutput::Stderr(d) => err.extend_from_slice(&d),
            }
        }
        Ok((out, err))
    }
}
