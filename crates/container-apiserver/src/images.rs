//! The `Images` service: pull/push with streamed progress, and the local
//! image store operations.

use std::collections::HashSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use container_api::apiserver::{
    DeleteReply, Empty, ImageInfo, ImageList, ImageRef, InspectReply, LoadRequest, PruneReply,
    PruneRequest, PullRequest, PushRequest, SaveRequest, TagRequest, TransferEvent,
    images_server::Images, transfer_event,
};
use containerization_error::{ContainerizationError, Result};
use containerization_oci::{ProgressFn, PullOptions, PushOptions};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::server::Shared;

/// Implements `Images` over the shared `ImageStore`.
pub(crate) struct ImagesService {
    shared: Arc<Shared>,
}

impl ImagesService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Runs blocking store work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| Status::internal(format!("image task failed: {e}")))?
            .map_err(Status::from)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<TransferEvent, Status>> + Send>>;

/// A progress callback that forwards events into the reply stream.
fn forwarder(tx: mpsc::UnboundedSender<Result<TransferEvent, Status>>) -> ProgressFn {
    Arc::new(move |ev| {
        let _ = tx.send(Ok(TransferEvent {
            event: Some(transfer_event::Event::Progress(convert::progress(ev))),
        }));
    })
}

fn done(info: ImageInfo) -> TransferEvent {
    TransferEvent {
        event: Some(transfer_event::Event::Done(info)),
    }
}

#[tonic::async_trait]
impl Images for ImagesService {
    type PullStream = EventStream;
    type PushStream = EventStream;

    async fn pull(&self, req: Request<PullRequest>) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let opts_base = (
            convert::platform(&req.platform)?,
            convert::scheme(&req.scheme)?,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let opts = PullOptions {
                platform: opts_base.0,
                scheme: opts_base.1,
                max_concurrent_downloads: req.max_concurrent_downloads.max(1) as usize,
                progress: Some(forwarder(tx.clone())),
            };
            tracing::info!(reference = %req.reference, "pull");
            // The pull runs to the end even if the CLI goes away, so the
            // blobs fetched so far are not wasted.
            let result = shared.images.pull(&req.reference, &opts).await;
            let msg = match result {
                Ok(image) => {
                    let s = shared.clone();
                    let info = tokio::task::spawn_blocking(move || {
                        crate::snapshots::prepare_checked(&s, &image)?;
                        Ok(convert::image_info(&image, s.images.content()))
                    })
                    .await
                    .map_err(|e| Status::internal(format!("image task failed: {e}")))
                    .and_then(|r: Result<ImageInfo>| r.map_err(Status::from));
                    info.map(done)
                }
                Err(e) => {
                    tracing::warn!(reference = %req.reference, "pull failed: {e}");
                    Err(e.into())
                }
            };
            let _ = tx.send(msg);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn push(&self, req: Request<PushRequest>) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let platform = convert::platform(&req.platform)?;
        let scheme = convert::scheme(&req.scheme)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let opts = PushOptions {
                platform,
                scheme,
                progress: Some(forwarder(tx.clone())),
            };
            tracing::info!(reference = %req.reference, "push");
            let result = shared.images.push(&req.reference, &opts).await;
            let msg = match result {
                Ok(()) => shared
                    .images
                    .get(&req.reference)
                    .map(|img| done(convert::image_info(&img, shared.images.content())))
                    .map_err(Status::from),
                Err(e) => {
                    tracing::warn!(reference = %req.reference, "push failed: {e}");
                    Err(e.into())
                }
            };
            let _ = tx.send(msg);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn list(&self, _: Request<Empty>) -> Result<Response<ImageList>, Status> {
        let images = self
            .blocking(|s| {
                let list = s.images.list()?;
                Ok(list
                    .iter()
                    .map(|i| convert::image_info(i, s.images.content()))
                    .collect())
            })
            .await?;
        Ok(Response::new(ImageList { images }))
    }

    async fn inspect(&self, req: Request<ImageRef>) -> Result<Response<InspectReply>, Status> {
        let reference = req.into_inner().reference;
        let json = self
            .blocking(move |s| {
                let v = s.images.inspect(&reference)?;
                serde_json::to_string_pretty(&v).map_err(|e| {
                    ContainerizationError::internal("encoding inspect output").with_cause(e)
                })
            })
            .await?;
        Ok(Response::new(InspectReply { json }))
    }

    async fn tag(&self, req: Request<TagRequest>) -> Result<Response<ImageInfo>, Status> {
        let req = req.into_inner();
        let info = self
            .blocking(move |s| {
                let img = s.images.tag(&req.source, &req.target)?;
                Ok(convert::image_info(&img, s.images.content()))
            })
            .await?;
        Ok(Response::new(info))
    }

    async fn delete(&self, req: Request<ImageRef>) -> Result<Response<DeleteReply>, Status> {
        let reference = req.into_inner().reference;
        let reply = self
            .blocking(move |s| {
                let img = s.images.get(&reference)?;
                s.images.delete(&reference)?;
                let gc = s.images.gc()?;
                crate::snapshots::sweep_logged(s);
                tracing::info!(reference = %img.reference, "deleted image");
                Ok(DeleteReply {
                    reference: img.reference,
                    reclaimed: gc.reclaimed_bytes,
                })
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn prune(&self, req: Request<PruneRequest>) -> Result<Response<PruneReply>, Status> {
        let all = req.into_inner().all;
        let reply = self
            .blocking(move |s| {
                let in_use: HashSet<String> = crate::containers::images_in_use(&s.root)?;
                let report = s.images.prune(all, &in_use)?;
                crate::snapshots::sweep_logged(s);
                Ok(PruneReply {
                    deleted: report.deleted,
                    reclaimed: report.reclaimed_bytes,
                })
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn save(&self, req: Request<SaveRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        let platform = convert::platform(&req.platform)?;
        if req.references.is_empty() {
            return Err(
                ContainerizationError::invalid_argument("save needs at least one image").into(),
            );
        }
        self.blocking(move |s| {
            s.images.save(
                &req.references,
                platform.as_ref(),
                &PathBuf::from(&req.output),
            )
        })
        .await?;
        Ok(Response::new(Empty {}))
    }

    async fn load(&self, req: Request<LoadRequest>) -> Result<Response<ImageList>, Status> {
        let input = PathBuf::from(req.into_inner().input);
        let images = self
            .blocking(move |s| {
                let loaded = s.images.load(&input)?;
                let mut refused = None;
                for image in &loaded {
                    if let Err(e) = crate::snapshots::prepare_checked(s, image) {
                        refused.get_or_insert(e);
                    }
                }
                if let Some(e) = refused {
                    return Err(e);
                }
                Ok(loaded
                    .iter()
                    .map(|i| convert::image_info(i, s.images.content()))
                    .collect())
            })
            .await?;
        Ok(Response::new(ImageList { images }))
    }
}
