//! `sha256:<hex>` digests.

use containerization_error::{ContainerizationError, Result};
use sha2::{Digest, Sha256};

/// The `sha256:<hex>` digest of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Checks `digest` is `sha256:` followed by 64 lowercase hex digits and
/// returns the hex part; other algorithms are `Unsupported`.
pub fn validate_digest(digest: &str) -> Result<&str> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid digest '{digest}': expected sha256:<64 hex digits>"
        )));
    };
    if alg != "sha256" {
        return Err(ContainerizationError::unsupported(format!(
            "unsupported digest algorithm in '{digest}': only sha256 is supported"
        )));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ContainerizationError::invalid_argument(format!(
            "invalid digest '{digest}': expected sha256:<64 lowercase hex digits>"
        )));
    }
    Ok(hex)
}
