//! `ProcessIo`: relays a process's stdin from the client and its output to
//! the client. Output is read only while a client is attached, and the
//! bounded channel plus HTTP/2 flow control make a slow client slow the
//! process down instead of losing bytes.

use std::os::fd::OwnedFd;

use containerization_error::{ContainerizationError, Result};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use vminitd_api::proto;

use super::{Agent, BoxStream};
use crate::container::stdio::FdReader;

/// Output chunk size.
const CHUNK: usize = 64 << 10;

impl Agent {
    pub(super) async fn process_io_impl(
        &self,
        mut requests: Streaming<proto::IoRequest>,
    ) -> Result<BoxStream<proto::IoEvent>> {
        let first = requests.message().await?.ok_or_else(|| {
            ContainerizationError::invalid_argument("the stdio stream ended before attaching")
        })?;
        let Some(proto::io_request::Kind::Attach(attach)) = first.kind else {
            return Err(ContainerizationError::invalid_argument(
                "the first stdio request must name the process (attach)",
            ));
        };
        let proc = self.process(&attach.container_id, &attach.process_id)?;
        let output = proc
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .output
            .take()
            .ok_or_else(|| {
                ContainerizationError::exists(format!(
                    "process {} already has a client attached to its output",
                    proc.id
                ))
            })?;
        let (tx, rx) = mpsc::channel(8);
        if let Some(fd) = output.stdout {
            spawn_reader(fd, proto::IoStream::Stdout, tx.clone())?;
        }
        if let Some(fd) = output.stderr {
            spawn_reader(fd, proto::IoStream::Stderr, tx.clone())?;
        }
        drop(tx);
        let stdin_proc = proc.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                match req.kind {
                    Some(proto::io_request::Kind::Stdin(data)) => {
                        let mut guard = stdin_proc.stdin.lock().await;
                        if let Some(w) = guard.as_ref()
                            && w.write_all(&data).await.is_err()
                        {
                            // The process closed its stdin; drop further input.
                            guard.take();
                        }
                    }
                    Some(proto::io_request::Kind::StdinEof(_)) => {
                        stdin_proc.stdin.lock().await.take();
                    }
                    _ => {}
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Copies one output fd into the event channel until EOF or until the client goes away.
fn spawn_reader(
    fd: OwnedFd,
    stream: proto::IoStream,
    tx: mpsc::Sender<Result<proto::IoEvent, Status>>,
) -> Result<()> {
    let reader = FdReader::new(fd).map_err(|e| {
        ContainerizationError::internal("cannot watch the process output").with_cause(e)
    })?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let ev = proto::IoEvent {
                stream: stream as i32,
                data: buf[..n].to_vec(),
            };
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
