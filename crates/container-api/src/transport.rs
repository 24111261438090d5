//! gRPC over unix sockets: the client connector and the server's incoming stream.

use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Opens a channel to the gRPC server listening on `socket`.
///
/// Connects eagerly so a missing daemon is reported here, not on the first call.
pub async fn connect_unix(socket: &Path) -> Result<Channel> {
    let path: PathBuf = socket.to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    let endpoint = Endpoint::try_from("http://localhost")
        .context(Code::InternalError, "building the gRPC endpoint")?;
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| {
            ContainerizationError::new(
                Code::Interrupted,
                format!("cannot connect to {}", socket.display()),
            )
            .with_cause(e)
        })
}
