//! The process stdio containerd hands over: FIFO paths (or `file://` log
//! URIs), opened as our library's [`Stdio`].
//!
//! FIFOs are opened read-write: the open never blocks waiting for the other
//! side (ctr may open its end later, or never when detached), and a reader
//! that goes away cannot make us die of SIGPIPE. The price is that stdin
//! never reaches EOF by itself, so containerd's `CloseIO` closes it.

use std::path::Path;

use containerization::Stdio;
use containerization_error::{ContainerizationError, Result};
use tokio::net::unix::pipe;

/// The three paths of a process's stdio, as containerd names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    /// stdin FIFO ("" = none).
    pub stdin: String,
    /// stdout FIFO or `file://` URI ("" = discard).
    pub stdout: String,
    /// stderr FIFO or `file://` URI ("" = discard; unused with a terminal).
    pub stderr: String,
    /// Whether the process has a terminal.
    pub terminal: bool,
}

fn open_error(what: &str, path: &str, e: std::io::Error) -> ContainerizationError {
    ContainerizationError::internal(format!("cannot open the {what} of the process at {path}"))
        .with_cause(e)
}

/// Opens stdin.
pub fn open_stdin(path: &str) -> Result<Stdio> {
    if path.is_empty() {
        return Ok(Stdio::Null);
    }
    let rx = pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)
        .map_err(|e| open_error("stdin", path, e))?;
    Ok(Stdio::Reader(Box::new(rx)))
}

/// Opens stdout or stderr.
pub fn open_output(what: &str, path: &str) -> Result<Stdio> {
    if path.is_empty() {
        return Ok(Stdio::Null);
    }
    if let Some(file) = path.strip_prefix("file://") {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(file))
            .map_err(|e| open_error(what, path, e))?;
        return Ok(Stdio::Fd(f.into()));
    }
    if path.contains("://") {
        return Err(ContainerizationError::unsupported(format!(
            "{what} {path}: only FIFOs and file:// logs are supported"
        )));
    }
    let tx = pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|e| open_error(what, path, e))?;
    Ok(Stdio::Writer(Box::new(tx)))
}

impl StdioPaths {
    /// Opens all three (stderr is not opened with a terminal: the terminal
    /// merges it into stdout).
    pub fn open(&self) -> Result<(Stdio, Stdio, Stdio)> {
        let stdin = open_stdin(&self.stdin)?;
        let stdout = open_output("stdout", &self.stdout)?;
        let stderr = if self.terminal {
            Stdio::Null
        } else {
            open_output("stderr", &self.stderr)?
        };
        Ok((stdin, stdout, stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn fifos_open_without_a_peer_and_carry_data() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let out = open_output("stdout", fifo.to_str().unwrap()).unwrap();
        let Stdio::Writer(mut w) = out else {
            panic!("a FIFO opens as a writer")
        };
        let mut r = pipe::OpenOptions::new().open_receiver(&fifo).unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, b"hi\n")
            .await
            .unwrap();
        drop(w);
        let mut got = vec![0u8; 3];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"hi\n");
        assert!(matches!(open_stdin("").unwrap(), Stdio::Null));
        assert!(open_output("stdout", "binary:///usr/bin/logger").is_err());
        let log = dir.path().join("log");
        let uri = format!("file://{}", log.display());
        assert!(matches!(open_output("stdout", &uri).unwrap(), Stdio::Fd(_)));
    }
}
