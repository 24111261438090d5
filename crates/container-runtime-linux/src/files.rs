//! `StatPath`, `CopyIn`, `CopyOut`: tar streams between the client and the
//! container (running, or held by a files-only helper), through the library
//! (and the agent, which works in the container's own mount namespace).

use std::pin::Pin;
use std::sync::Arc;

use container_api::runtime::{
    CopyInChunk, CopyOutRequest, DataChunk, Empty, PathReply, PathRequest,
};
use containerization::container::ArchiveShape;
use containerization_error::ContainerizationError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::{Response, Status, Streaming};

use crate::helper::Helper;

/// Chunks of a tar stream going to the client.
pub(crate) type DataStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<DataChunk, Status>> + Send>>;

const CHUNK: usize = 256 << 10;

/// Notes that a client used the files (a files-only helper then ends
/// shortly after its last client leaves).
fn used(h: &Helper) {
    if let Some(f) = &h.files {
        f.used.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(crate) async fn stat_path(h: &Helper, req: PathRequest) -> Result<Response<PathReply>, Status> {
    used(h);
    let info = h.container.stat_path(&req.path).await?;
    Ok(Response::new(match info {
        Some(i) => PathReply {
            exists: true,
            is_dir: i.is_dir,
            mode: i.mode,
            size: i.size,
        },
        None => PathReply::default(),
    }))
}

pub(crate) async fn copy_in(
    h: &Arc<Helper>,
    mut stream: Streaming<CopyInChunk>,
) -> Result<Response<Empty>, Status> {
    used(h);
    let first = stream
        .message()
        .await?
        .ok_or_else(|| ContainerizationError::invalid_argument("the copy stream is empty"))?;
    let (reader, mut writer) = tokio::io::duplex(CHUNK);
    let pump = tokio::spawn(async move {
        writer.write_all(&first.data).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            writer.write_all(&chunk.data).await?;
        }
        writer.shutdown().await
    });
    let copied = h.container.copy_in(&first.dir, reader).await;
    let pumped = pump.await;
    copied?;
    pumped
        .map_err(|e| ContainerizationError::internal("the copy task failed").with_cause(e))?
        .map_err(|e| ContainerizationError::internal("receiving the archive").with_cause(e))?;
    Ok(Response::new(Empty {}))
}

pub(crate) async fn copy_out(
    h: &Arc<Helper>,
    req: CopyOutRequest,
) -> Result<Response<DataStream>, Status> {
    used(h);
    // A missing path ends the stream with the agent's NotFound error;
    // clients that need to know first (`cp`) ask StatPath.
    let (mut reader, mut writer) = tokio::io::duplex(CHUNK);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let h = h.clone();
    let errors = tx.clone();
    tokio::spawn(async move {
        let shape = if req.contents {
            ArchiveShape::Contents
        } else {
            ArchiveShape::Path
        };
        let result = h
            .container
            .copy_out(&req.path, shape, req.one_file_system, &mut writer)
            .await;
        drop(writer);
        if let Err(e) = result {
            let _ = errors.send(Err(Status::from(e))).await;
        }
    });
    tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(DataChunk { data: buf })).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}
