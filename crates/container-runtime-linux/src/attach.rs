//! The `stdio.sock` listener: receives clients' stdio descriptors
//! (SCM_RIGHTS) and hands them to the helper.

use std::fs::File;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use container_api::stdio::{ack, recv_stdio};
use containerization_error::{Code, Result, ResultExt};

use crate::helper::Helper;

/// A client's descriptors for one process.
#[derive(Debug)]
pub(crate) struct Attached {
    pub stdout: File,
    pub stderr: File,
    pub stdin: Option<File>,
}

/// Binds `path` and serves attachments on a thread for the helper's life.
pub(crate) fn spawn_listener(path: &Path, helper: Arc<Helper>) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .context(Code::InternalError, format!("binding {}", path.display()))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            match recv_stdio(&conn) {
                Ok((header, fds)) => {
                    let mut it = fds.into_iter();
                    let (Some(out), Some(err)) = (it.next(), it.next()) else {
                        continue;
                    };
                    let attached = Attached {
                        stdout: File::from(out),
                        stderr: File::from(err),
                        stdin: it.next().map(File::from),
                    };
                    helper.attach(&header.process, attached);
                    let _ = ack(&mut conn);
                }
                Err(e) => tracing::warn!("bad stdio attachment: {e}"),
            }
        }
    });
    Ok(())
}
