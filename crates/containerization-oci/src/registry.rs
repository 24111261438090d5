//! Registry access through `oci-client`: client construction per scheme,
//! credentials, error translation, and `verify_login`.

use std::net::IpAddr;
use std::time::Duration;

use containerization_error::{ContainerizationError, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::credentials::CredentialStore;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest manifest or index accepted from a registry (the limit of the
/// reference registry, `distribution`, and of containerd).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How to talk to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
    /// HTTP for loopback hosts (localhost, 127.0.0.0/8, ::1), else HTTPS.
    #[default]
    Auto,
}

impl Scheme {
    /// True when `host` (`name[:port]`) is reached over plain HTTP.
    pub fn is_http(self, host: &str) -> bool {
        match self {
            Scheme::Http => true,
            Scheme::Https => false,
            Scheme::Auto => is_loopback(host),
        }
    }

    /// `http` or `https` for `host`.
    pub fn for_host(self, host: &str) -> &'static str {
        if self.is_http(host) { "http" } else { "https" }
    }
}

impl std::str::FromStr for Scheme {
    type Err = ContainerizationError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            "auto" => Ok(Scheme::Auto),
            _ => Err(ContainerizationError::invalid_argument(format!(
                "invalid scheme '{s}': expected http, https or auto"
            ))),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client for one registry host.
pub(crate) fn client_for(host: &str, scheme: Scheme) -> oci_client::Client {
    let protocol = if scheme.is_http(host) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        // A registry that stops sending must not hang a pull forever.
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..Default::default()
    })
}

/// A plain HTTP client with the registry timeouts (for requests
/// `oci-client` cannot bound, such as manifest bodies).
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| ContainerizationError::internal("creating HTTP client").with_cause(e))
}

/// Stored credentials for `host`, or anonymous.
pub(crate) fn auth_for(creds: &CredentialStore, host: &str) -> Result<RegistryAuth> {
    Ok(match creds.get(host)? {
        Some((u, p)) => RegistryAuth::Basic(u, p),
        None => RegistryAuth::Anonymous,
    })
}

/// Translates an `oci-client` error about `reference` at `host`.
pub(crate) fn map_error(
    e: OciDistributionError,
    reference: &str,
    host: &str,
) -> ContainerizationError {
    let not_found = || {
        ContainerizationError::not_found(format!(
            "image '{reference}' not found in registry {host}"
        ))
    };
    let denied = || {
        ContainerizationError::invalid_argument(format!(
            "access to '{reference}' denied by registry {host}: log in with `container registry login {host}`"
        ))
    };
    match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => not_found().with_cause(e),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found().with_cause(e)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                denied().with_cause(e)
            } else {
                ContainerizationError::internal(format!("registry {host} refused the request for '{reference}'"))
                    .with_cause(e)
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found().with_cause(e),
        OciDistributionError::ServerError { code: 401 | 403, .. }
        | OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => denied().with_cause(e),
        OciDistributionError::DigestError(_) => ContainerizationError::invalid_argument(format!(
            "digest mismatch in data from registry {host} for '{reference}'"
        ))
        .with_cause(e),
        OciDistributionError::RequestError(r) if r.is_connect() => ContainerizationError::internal(format!(
            "cannot connect to registry {host}: is it running and reachable (connection refused or unreachable)?"
        ))
        .with_cause(e),
        OciDistributionError::RequestError(r) if r.is_timeout() => {
            ContainerizationError::timeout(format!("registry {host} timed out")).with_cause(e)
        }
        OciDistributionError::RequestError(_) => ContainerizationError::internal(format!(
            "transfer from registry {host} failed for '{reference}'"
        ))
        .with_cause(e),
        _ => ContainerizationError::internal(format!("registry {host}: request for '{reference}' failed"))
            .with_cause(e),
    }
}

/// Checks `username`/`password` against `host` with a real round trip to
/// `/v2/` (basic auth, or a bearer token from the advertised realm).
pub async fn verify_login(
    host: &str,
    username: &str,
    password: &str,
    scheme: Scheme,
) -> Result<()> {
    // Docker Hub's API is not served at the name people log in to.
    let api_host = if host == "docker.io" {
        "index.docker.io"
    } else {
        host
    };
    let base = format!("{}://{api_host}/v2/", scheme.for_host(host));
    let http = http_client()?;
    let connect_err = |e: reqwest::Error| {
        ContainerizationError::internal(format!("cannot connect to registry {host}")).with_cause(e)
    };
    let denied = || {
        ContainerizationError::invalid_argument(format!(
            "login to {host} failed: wrong username or password"
        ))
    };
    let probe = http.get(&base).send().await.map_err(connect_err)?;
    if probe.status().is_success() {
        return Ok(()); // the registry needs no credentials
    }
    if probe.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(ContainerizationError::internal(format!(
            "registry {host} answered {} to /v2/",
            probe.status()
        )));
    }
    let challenge = probe
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = if let Some(params) = challenge.strip_prefix("Bearer ") {
        let realm = auth_param(params, "realm").ok_or_else(|| {
            ContainerizationError::internal(format!(
                "registry {host} sent a bearer challenge without realm"
            ))
        })?;
        let mut req = http.get(&realm).basic_auth(username, Some(password));
        if let Some(service) = auth_param(params, "service") {
            req = req.query(&[("service", service)]);
        }
        req.send().await.map_err(connect_err)?.status()
    } else {
        http.get(&base)
            .basic_auth(username, Some(password))
            .send()
            .await
            .map_err(connect_err)?
            .status()
    };
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
    {
        Err(denied())
    } else {
        Err(ContainerizationError::internal(format!(
            "registry {host} answered {status} to login"
        )))
    }
}

/// Value of `key="value"` in a `WWW-Authenticate` parameter list.
fn auth_param(params: &str, key: &str) -> Option<String> {
    params.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == key).then(|| v.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_scheme_uses_http_only_for_loopback() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(Scheme::Auto.is_http(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "ghcr.io",
            "localhost.example.com",
        ] {
            assert!(!Scheme::Auto.is_http(h), "{h}");
        }
        assert!(Scheme::Http.is_http("ghcr.io"));
        assert!(!Scheme::Https.is_http("localhost"));
    }

    #[test]
    fn challenge_parameters() {
        let p = r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="x""#;
        assert_eq!(
            auth_param(p, "realm").as_deref(),
            Some("https://auth.docker.io/token")
        );
        assert_eq!(
            auth_param(p, "service").as_deref(),
            Some("registry.docker.io")
        );
        assert_eq!(auth_param(p, "nope"), None);
    }
}
