//! Fetching manifests with a size limit: `oci-client` buffers a manifest
//! of any size, so a hostile registry could exhaust the daemon's memory.

use containerization_error::{Code, ContainerizationError, Result};

use super::pull::{Remote, manifest_media_type};
use crate::digest::sha256_digest;
use crate::media_types::ACCEPTED_MANIFESTS;
use crate::registry::MAX_MANIFEST_BYTES;

impl Remote {
    /// Fetches a manifest or index and verifies it against `expected`
    /// (when known). Nothing is stored: the caller stores manifests only
    /// once the whole image has been checked. Returns its bytes, digest and
    /// media type.
    pub(super) async fn fetch_manifest(
        &self,
        target: &oci_client::Reference,
        expected: Option<&str>,
    ) -> Result<(Vec<u8>, String, String)> {
        let bytes = self.get_manifest(target).await?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "digest mismatch: registry {} sent {digest} for manifest {expected}",
                self.host
            )));
        }
        let media_type = manifest_media_type(&bytes, &self.display)?;
        Ok((bytes, digest, media_type))
    }

    /// GETs a manifest with the credentials `oci-client` negotiates, reading
    /// at most `MAX_MANIFEST_BYTES` (oci-client would buffer any size).
    async fn get_manifest(&self, target: &oci_client::Reference) -> Result<Vec<u8>> {
        use oci_client::RegistryOperation;
        use oci_client::secrets::RegistryAuth;
        let token = self
            .client
            .auth(target, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.err(e))?;
        let registry = target.resolve_registry();
        let url = format!(
            "{}://{registry}/v2/{}/manifests/{}",
            self.scheme.for_host(&self.host),
            target.repository(),
            target
                .digest()
                .or(target.tag())
                .unwrap_or(crate::reference::DEFAULT_TAG),
        );
        let mut req = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, ACCEPTED_MANIFESTS.join(", "));
        req = match (token, &self.auth) {
            (Some(t), _) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            _ => req,
        };
        let transfer = |e: reqwest::Error| {
            let code = if e.is_timeout() {
                Code::Timeout
            } else {
                Code::InternalError
            };
            let what = if e.is_connect() {
                format!(
                    "cannot connect to registry {}: is it running and reachable?",
                    self.host
                )
            } else {
                format!(
                    "fetching the manifest of '{}' from registry {} failed",
                    self.display, self.host
                )
            };
            ContainerizationError::new(code, what).with_cause(e)
        };
        let mut resp = req.send().await.map_err(transfer)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ContainerizationError::not_found(format!(
                "image '{}' not found in registry {}",
                self.display, self.host
            )));
        }
        if !status.is_success() {
            let body = read_limited(&mut resp, 64 << 10)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let e = oci_client::errors::OciDistributionError::ServerError {
                code: status.as_u16(),
                url: url.clone(),
                message: String::from_utf8_lossy(&body).into_owned(),
            };
            return Err(self.err(e));
        }
        let too_big = || {
            ContainerizationError::invalid_argument(format!(
                "the manifest of '{}' from registry {} is larger than the {} MiB limit",
                self.display,
                self.host,
                MAX_MANIFEST_BYTES >> 20
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_big());
        }
        let bytes = read_limited(&mut resp, MAX_MANIFEST_BYTES)
            .await
            .map_err(transfer)?
            .ok_or_else(too_big)?;
        // A registry that names the digest of what it sends must be right.
        if let Some(named) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && named.starts_with("sha256:")
            && named != sha256_digest(&bytes)
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "digest mismatch: registry {} named the manifest of '{}' {named} but sent {}",
                self.host,
                self.display,
                sha256_digest(&bytes)
            )));
        }
        Ok(bytes)
    }
}

/// Reads a response body of at most `limit` bytes; `None` when it is longer.
async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}
