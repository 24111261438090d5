//! The `Registry` service: logins verified against the registry, stored in
//! the `CredentialStore`.

use std::sync::Arc;

use container_api::apiserver::{
    Empty, LoginRequest, RegistryHost, RegistryList, RegistryLogin, registry_server::Registry,
};
use containerization_error::ContainerizationError;
use containerization_oci::{CredentialStore, verify_login};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::server::Shared;

/// Implements `Registry`.
pub(crate) struct RegistryService {
    shared: Arc<Shared>,
}

impl RegistryService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn store(&self) -> Result<CredentialStore, Status> {
        CredentialStore::open(self.shared.root.path()).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        if req.host.is_empty() || req.username.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "login needs a registry host and a username",
            )
            .into());
        }
        let scheme = convert::scheme(&req.scheme)?;
        verify_login(&req.host, &req.username, &req.password, scheme).await?;
        self.store()?
            .login(&req.host, &req.username, &req.password)?;
        tracing::info!(host = %req.host, user = %req.username, "registry login stored");
        Ok(Response::new(Empty {}))
    }

    async fn logout(&self, req: Request<RegistryHost>) -> Result<Response<Empty>, Status> {
        let host = req.into_inner().host;
        self.store()?.logout(&host)?;
        tracing::info!(host = %host, "registry logout");
        Ok(Response::new(Empty {}))
    }

    async fn list(&self, _: Request<Empty>) -> Result<Response<RegistryList>, Status> {
        let logins = self
            .store()?
            .list()?
            .into_iter()
            .map(|(host, username)| RegistryLogin { host, username })
            .collect();
        Ok(Response::new(RegistryList { logins }))
    }
}
