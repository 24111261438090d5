//! `RuntimeClient`: a typed client of one container's runtime helper.

use std::path::Path;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::client::from_status;
use crate::runtime::{self, runtime_client::RuntimeClient as Raw};
use crate::transport::connect_unix;

/// A connection to `<container>/runtime.sock`.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    raw: Raw<Channel>,
}

impl RuntimeClient {
    /// Connects to the helper's socket.
    pub async fn connect(socket: &Path) -> Result<RuntimeClient> {
        Ok(RuntimeClient {
            raw: Raw::new(connect_unix(socket).await?),
        })
    }

    /// The helper's view of the container.
    pub async fn state(&self) -> Result<runtime::RuntimeState> {
        Ok(self
            .raw
            .clone()
            .state(runtime::Empty {})
            .await
            .map_err(from_status)?
            .into_inner())
    }

    /// Registers an exec'd process (`process_json`: a `ProcessConfig`).
    pub async fn create_process(&self, id: &str, process_json: String) -> Result<()> {
        self.raw
            .clone()
            .create_process(runtime::CreateProcessRequest {
                id: id.into(),
                process_json,
            })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// Starts a process (the container id starts the init process).
    pub async fn start_process(&self, id: &str) -> Result<runtime::RuntimeState> {
        Ok(self
            .raw
            .clone()
            .start_process(runtime::ProcessId { id: id.into() })
            .await
            .map_err(from_status)?
            .into_inner())
    }

    /// Signals a process.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.raw
            .clone()
            .kill(runtime::KillRequest {
                id: id.into(),
                signal,
            })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// Resizes a process's terminal.
    pub async fn resize(&self, id: &str, width: u32, height: u32) -> Result<()> {
        self.raw
            .clone()
            .resize(runtime::ResizeRequest {
                id: id.into(),
                width,
                height,
            })
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// Waits for a process to exit; its exit code.
    pub async fn wait(&self, id: &str) -> Result<i32> {
        Ok(self
            .raw
            .clone()
            .wait(runtime::ProcessId { id: id.into() })
            .await
            .map_err(from_status)?
            .into_inner()
            .exit_code)
    }

    /// Stops the container: `signal`, then SIGKILL after `timeout_secs`.
    pub async fn stop(&self, signal: i32, timeout_secs: u32) -> Result<runtime::RuntimeState> {
        Ok(self
            .raw
            .clone()
            .stop(runtime::StopRequest {
                signal,
                timeout_secs,
            })
            .await
            .map_err(from_status)?
            .into_inner())
    }

    /// Resource statistics as JSON.
    pub async fn statistics(&self) -> Result<String> {
        Ok(self
            .raw
            .clone()
            .statistics(runtime::Empty {})
            .await
            .map_err(from_status)?
            .into_inner()
            .json)
    }

    /// Powers the VM off and ends the helper.
    pub async fn shutdown(&self) -> Result<()> {
        self.raw
            .clone()
            .shutdown(runtime::Empty {})
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// What `path` is in the running container (`exists` false if missing).
    pub async fn stat_path(&self, path: &str) -> Result<runtime::PathReply> {
        Ok(self
            .raw
            .clone()
            .stat_path(runtime::PathRequest { path: path.into() })
            .await
            .map_err(from_status)?
            .into_inner())
    }

    /// Streams the tar archive `reader` into directory `dir` of the container.
    pub async fn copy_in<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        dir: &str,
        mut reader: R,
    ) -> Result<()> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let dir = dir.to_string();
        let pump = tokio::spawn(async move {
            let mut first = true;
            loop {
                let mut buf = vec![0u8; 256 << 10];
                let n = reader.read(&mut buf).await?;
                if n == 0 && !first {
                    return Ok::<(), std::io::Error>(());
                }
                buf.truncate(n);
                let chunk = runtime::CopyInChunk {
                    dir: if first { dir.clone() } else { String::new() },
                    data: buf,
                };
                first = false;
                if tx.send(chunk).await.is_err() || n == 0 {
                    return Ok(());
                }
            }
        });
        let result = self
            .raw
            .clone()
            .copy_in(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        pump.await
            .map_err(|e| ContainerizationError::internal("the copy task failed").with_cause(e))?
            .context(Code::InvalidArgument, "reading the archive to copy")?;
        result.map_err(from_status)?;
        Ok(())
    }

    /// Writes a tar archive of `path` in the container (with `contents`, of
    /// the directory's entries) to `out`; returns the bytes written.
    pub async fn copy_out<W: AsyncWrite + Unpin>(
        &self,
        path: &str,
        contents: bool,
        one_file_system: bool,
        out: &mut W,
    ) -> Result<u64> {
        let req = runtime::CopyOutRequest {
            path: path.into(),
            contents,
            one_file_system,
        };
        let mut stream = self
            .raw
            .clone()
            .copy_out(req)
            .await
            .map_err(from_status)?
            .into_inner();
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(from_status)?;
            out.write_all(&chunk.data)
                .await
                .context(Code::InternalError, "writing the archive")?;
            total += chunk.data.len() as u64;
        }
        out.flush()
            .await
            .context(Code::InternalError, "writing the archive")?;
        Ok(total)
    }
}
