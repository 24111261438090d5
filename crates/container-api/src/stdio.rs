//! Passing a client's stdio file descriptors to a runtime helper with
//! SCM_RIGHTS over `<container>/stdio.sock`, as Apple passes FileHandles
//! over XPC. The helper then reads and writes the client's own terminal or
//! pipes directly.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// What the client attaches to: which process, and whether stdin is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachHeader {
    /// Process id (the container id for the init process).
    pub process: String,
    /// A stdin descriptor follows stdout and stderr.
    pub stdin: bool,
}

const MAX_HEADER: usize = 4096;

/// Client side: sends the header with `[stdout, stderr, stdin?]` and waits
/// for the helper's acknowledgement.
pub fn send_stdio(stream: &mut UnixStream, header: &AttachHeader, fds: &[RawFd]) -> Result<()> {
    let body = serde_json::to_vec(header).context(Code::InternalError, "encoding attach header")?;
    let cmsg = [ControlMessage::ScmRights(fds)];
    let iov = [IoSlice::new(&body)];
    sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .context(Code::InternalError, "passing stdio to the runtime helper")?;
    let mut ack = [0u8; 3];
    stream.read_exact(&mut ack).context(
        Code::InternalError,
        "the runtime helper did not accept stdio",
    )?;
    if &ack != b"OK\n" {
        return Err(ContainerizationError::internal(
            "the runtime helper refused the stdio attachment",
        ));
    }
    Ok(())
}

/// Helper side: receives the header and descriptors.
pub fn recv_stdio(stream: &UnixStream) -> Result<(AttachHeader, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut cmsg = nix::cmsg_space!([RawFd; 3]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context(Code::InternalError, "receiving stdio")?;
        let mut fds = Vec::new();
        for c in msg
            .cmsgs()
            .context(Code::InternalError, "reading control messages")?
        {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel just installed these descriptors in
                    // this process for us; nothing else owns them.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        (msg.bytes, fds)
    };
    let header: AttachHeader = serde_json::from_slice(&buf[..n])
        .context(Code::InvalidArgument, "malformed attach header")?;
    let want = if header.stdin { 3 } else { 2 };
    if fds.len() != want {
        return Err(ContainerizationError::invalid_argument(format!(
            "attach expected {want} descriptors, got {}",
            fds.len()
        )));
    }
    Ok((header, fds))
}

/// Helper side: acknowledges a received attachment.
pub fn ack(stream: &mut UnixStream) -> Result<()> {
    stream
        .write_all(b"OK\n")
        .context(Code::InternalError, "acknowledging stdio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_cross_the_socket() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        let w2 = w.try_clone().unwrap();
        let header = AttachHeader {
            process: "c1".into(),
            stdin: false,
        };
        let t = std::thread::spawn(move || {
            let (h, fds) = recv_stdio(&b).unwrap();
            assert_eq!(h.process, "c1");
            let mut out = std::fs::File::from(fds.into_iter().next().unwrap());
            out.write_all(b"hello").unwrap();
            ack(&mut b).unwrap();
        });
        send_stdio(&mut a, &header, &[w.as_raw_fd(), w2.as_raw_fd()]).unwrap();
        drop((w, w2));
        t.join().unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }
}
