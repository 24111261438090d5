//! The `System` service: ping and shutdown.

use std::sync::Arc;

use container_api::apiserver::{Empty, SystemInfo, system_server::System};
use tonic::{Request, Response, Status};

use crate::server::Shared;

/// Implements `System` over the daemon's shared state.
pub(crate) struct SystemService {
    shared: Arc<Shared>,
}

impl SystemService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl System for SystemService {
    async fn ping(&self, _: Request<Empty>) -> Result<Response<SystemInfo>, Status> {
        Ok(Response::new(SystemInfo {
            version: container_api::VERSION.to_string(),
            commit: option_env!("CONTAINER_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
            pid: std::process::id(),
            root: self.shared.root.path().display().to_string(),
            started: self.shared.started.clone(),
        }))
    }

    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        // notify_one stores a permit, so the request is not lost if the
        // server loop is not waiting yet; tonic finishes this reply first.
        self.shared.shutdown.notify_one();
        Ok(Response::new(Empty {}))
    }
}
