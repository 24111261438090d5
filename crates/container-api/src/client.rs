//! `ApiClient`: a typed client of the apiserver, one method per RPC.

use std::path::Path;

use containerization_error::{Code, ContainerizationError, Result};
use futures::{Stream, StreamExt};
use tonic::transport::Channel;

use crate::apiserver::{
    self, containers_client::ContainersClient, images_client::ImagesClient,
    registry_client::RegistryClient, system_client::SystemClient,
};
use crate::transport::connect_unix;

/// The message shown whenever the daemon cannot be reached.
pub const NOT_RUNNING: &str = "container system is not running: run `container system start`";

/// A connection to `container-apiserver`.
#[derive(Clone)]
pub struct ApiClient {
    pub(crate) channel: Channel,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiClient")
    }
}

/// A server stream of pull/push events with errors already converted.
pub type TransferStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<apiserver::TransferEvent>> + Send>>;

/// The message when the daemon goes away in the middle of a call.
pub const CONNECTION_LOST: &str = "the connection to the apiserver was lost (it stopped or was killed): see `container system status`";

fn status(e: tonic::Status) -> ContainerizationError {
    // A transport failure means the daemon went away: before the call
    // (Unavailable) or during it (a broken stream, reported as Unknown).
    if e.code() == tonic::Code::Unavailable {
        return ContainerizationError::new(Code::Interrupted, NOT_RUNNING);
    }
    if e.code() == tonic::Code::Unknown
        && (e.message().contains("transport error") || e.message().contains("h2 protocol error"))
    {
        return ContainerizationError::new(Code::Interrupted, CONNECTION_LOST);
    }
    e.into()
}

impl ApiClient {
    /// Connects to the apiserver socket; a missing or dead daemon gives the
    /// "run `container system start`" message.
    pub async fn connect(socket: &Path) -> Result<ApiClient> {
        let channel = connect_unix(socket)
            .await
            .map_err(|_| ContainerizationError::new(Code::Interrupted, NOT_RUNNING))?;
        Ok(ApiClient { channel })
    }

    fn system(&self) -> SystemClient<Channel> {
        SystemClient::new(self.channel.clone())
    }
    fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }
    fn registry(&self) -> RegistryClient<Channel> {
        RegistryClient::new(self.channel.clone())
    }
    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    /// `System.Ping`: the daemon's version, pid and root.
    pub async fn ping(&self) -> Result<apiserver::SystemInfo> {
        Ok(self
            .system()
            .ping(apiserver::Empty {})
            .await
            .map_err(status)?
            .into_inner())
    }

    /// `System.Shutdown`: asks the daemon to exit.
    pub async fn shutdown(&self) -> Result<()> {
        self.system()
            .shutdown(apiserver::Empty {})
            .await
            .map_err(status)?;
        Ok(())
    }

    /// `Images.Pull`: a stream of progress events ending with the image.
    pub async fn pull(&self, req: apiserver::PullRequest) -> Result<TransferStream> {
        let s = self.images().pull(req).await.map_err(status)?.into_inner();
        Ok(Box::pin(s.map(|r| r.map_err(status))))
    }

    /// `Images.Push`: a stream of progress events ending with the image.
    pub async fn push(&self, req: apiserver::PushRequest) -> Result<TransferStream> {
        let s = self.images().push(req).await.map_err(status)?.into_inner();
        Ok(Box::pin(s.map(|r| r.map_err(status))))
    }

    /// `Images.List`.
    pub async fn list_images(&self) -> Result<Vec<apiserver::ImageInfo>> {
        let r = self
            .images()
            .list(apiserver::Empty {})
            .await
            .map_err(status)?;
        Ok(r.into_inner().images)
    }

    /// `Images.Inspect`: JSON text with index, manifests and configs.
    pub async fn inspect_image(&self, reference: &str) -> Result<String> {
        let r = self
            .images()
            .inspect(apiserver::ImageRef {
                reference: reference.into(),
            })
            .await
            .map_err(status)?;
        Ok(r.into_inner().json)
    }

    /// `Images.Tag`.
    pub async fn tag(&self, source: &str, target: &str) -> Result<apiserver::ImageInfo> {
        let r = self
            .images()
            .tag(apiserver::TagRequest {
                source: source.into(),
                target: target.into(),
            })
            .await
            .map_err(status)?;
        Ok(r.into_inner())
    }

    /// `Images.Delete`.
    pub async fn delete_image(&self, reference: &str) -> Result<apiserver::DeleteReply> {
        let r = self
            .images()
            .delete(apiserver::ImageRef {
                reference: reference.into(),
            })
            .await
            .map_err(status)?;
        Ok(r.into_inner())
    }

    /// `Images.Prune`.
    pub async fn prune_images(&self, all: bool) -> Result<apiserver::PruneReply> {
        let r = self
            .images()
            .prune(apiserver::PruneRequest { all })
            .await
            .map_err(status)?;
        Ok(r.into_inner())
    }

    /// `Images.Save`: writes an OCI archive to `output` (a host path).
    pub async fn save(&self, references: Vec<String>, platform: &str, output: &Path) -> Result<()> {
        self.images()
            .save(apiserver::SaveRequest {
                references,
                platform: platform.into(),
                output: output.to_string_lossy().into_owned(),
            })
            .await
            .map_err(status)?;
        Ok(())
    }

    /// `Images.Load`: reads an OCI or docker archive from `input` (a host path).
    pub async fn load(&self, input: &Path) -> Result<Vec<apiserver::ImageInfo>> {
        let r = self
            .images()
            .load(apiserver::LoadRequest {
                input: input.to_string_lossy().into_owned(),
            })
            .await
            .map_err(status)?;
        Ok(r.into_inner().images)
    }

    /// `Registry.Login`: verifies the credentials, then stores them.
    pub async fn login(&self, req: apiserver::LoginRequest) -> Result<()> {
        self.registry().login(req).await.map_err(status)?;
        Ok(())
    }

    /// `Registry.Logout`.
    pub async fn logout(&self, host: &str) -> Result<()> {
        self.registry()
            .logout(apiserver::RegistryHost { host: host.into() })
            .await
            .map_err(status)?;
        Ok(())
    }

    /// `Registry.List`: hosts and user names, never passwords.
    pub async fn list_logins(&self) -> Result<Vec<apiserver::RegistryLogin>> {
        let r = self
            .registry()
            .list(apiserver::Empty {})
            .await
            .map_err(status)?;
        Ok(r.into_inner().logins)
    }

    /// The raw containers client, for the container commands.
    pub fn containers_client(&self) -> ContainersClient<Channel> {
        self.containers()
    }

    /// The raw volumes client (typed methods live in `volume.rs`).
    pub fn volumes_client(&self) -> apiserver::volumes_client::VolumesClient<Channel> {
        apiserver::volumes_client::VolumesClient::new(self.channel.clone())
    }
}

/// Converts a tonic status from any generated client into our error.
pub fn from_status(e: tonic::Status) -> ContainerizationError {
    status(e)
}
