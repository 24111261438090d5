//! `ApiClient` methods of the `Networks` service.

use containerization_error::{Code, ContainerizationError, Result};
use tonic::transport::Channel;

use crate::apiserver::{self, networks_client::NetworksClient};
use crate::client::{ApiClient, from_status};
use crate::network::NetworkInfo;

fn decode(json: &str) -> Result<NetworkInfo> {
    serde_json::from_str(json).map_err(|e| {
        ContainerizationError::new(
            Code::InternalError,
            "the apiserver sent a bad network record",
        )
        .with_cause(e)
    })
}

impl ApiClient {
    fn networks(&self) -> NetworksClient<Channel> {
        NetworksClient::new(self.channel.clone())
    }

    /// `Networks.Create`.
    pub async fn create_network(
        &self,
        req: apiserver::NetworkCreateRequest,
    ) -> Result<NetworkInfo> {
        let r = self.networks().create(req).await.map_err(from_status)?;
        decode(&r.into_inner().json)
    }

    /// `Networks.List`.
    pub async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let r = self
            .networks()
            .list(apiserver::Empty {})
            .await
            .map_err(from_status)?;
        r.into_inner().json.iter().map(|j| decode(j)).collect()
    }

    /// `Networks.Inspect`.
    pub async fn inspect_network(&self, name: &str) -> Result<NetworkInfo> {
        let r = self
            .networks()
            .inspect(apiserver::NetworkName { name: name.into() })
            .await
            .map_err(from_status)?;
        decode(&r.into_inner().json)
    }

    /// `Networks.Delete`.
    pub async fn delete_network(&self, name: &str) -> Result<()> {
        self.networks()
            .delete(apiserver::NetworkName { name: name.into() })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// `Networks.Prune`: the names deleted.
    pub async fn prune_networks(&self) -> Result<Vec<String>> {
        let r = self
            .networks()
            .prune(apiserver::Empty {})
            .await
            .map_err(from_status)?;
        Ok(r.into_inner().deleted)
    }
}
