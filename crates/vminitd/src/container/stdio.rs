//! A process's stdio: pipes, or a PTY when it wants a terminal. The agent
//! keeps its ends unread until a client attaches, so output blocks the
//! process instead of being dropped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use containerization_error::{Code, Result, ResultExt};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::unix::AsyncFd;

/// The child's ends: become fds 0, 1, 2.
#[derive(Debug)]
pub struct ChildStdio {
    /// fd 0.
    pub stdin: OwnedFd,
    /// fd 1.
    pub stdout: OwnedFd,
    /// fd 2.
    pub stderr: OwnedFd,
}

/// The agent's ends.
#[derive(Debug, Default)]
pub struct AgentStdio {
    /// Write end of stdin (or the PTY master), if stdin was requested.
    pub stdin: Option<OwnedFd>,
    /// Read end of stdout (or the PTY master).
    pub stdout: Option<OwnedFd>,
    /// Read end of stderr (none with a terminal).
    pub stderr: Option<OwnedFd>,
    /// The PTY master, for resizing.
    pub master: Option<OwnedFd>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context(Code::InternalError, "cannot create a pipe")
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone()
        .context(Code::InternalError, "cannot duplicate a descriptor")
}

/// Creates the stdio of a process.
pub fn create(stdin: bool, terminal: bool) -> Result<(ChildStdio, AgentStdio)> {
    if terminal {
        let pty =
            nix::pty::openpty(None, None).context(Code::InternalError, "cannot open a PTY")?;
        let _ = fcntl(
            &pty.master,
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let _ = fcntl(
            &pty.slave,
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let child = ChildStdio {
            stdin: dup(&pty.slave)?,
            stdout: dup(&pty.slave)?,
            stderr: pty.slave,
        };
        let agent = AgentStdio {
            stdin: if stdin { Some(dup(&pty.master)?) } else { None },
            stdout: Some(dup(&pty.master)?),
            stderr: None,
            master: Some(pty.master),
        };
        return Ok((child, agent));
    }
    let (child_in, agent_in) = if stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null")
            .context(Code::InternalError, "cannot open /dev/null")?;
        (OwnedFd::from(null), None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok((
        ChildStdio {
            stdin: child_in,
            stdout: out_w,
            stderr: err_w,
        },
        AgentStdio {
            stdin: agent_in,
            stdout: Some(out_r),
            stderr: Some(err_r),
            master: None,
        },
    ))
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and
    // refers to the same file description for the AsyncFd's whole lifetime.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// Async reads from a pipe or PTY master; a PTY's EIO (slave closed) is EOF.
pub struct FdReader(AsyncFd<OwnedFd>);

impl FdReader {
    /// Wraps `fd`, making it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        Ok(FdReader(register(fd)?))
    }

    /// Reads some bytes; 0 at end of stream.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref().as_fd(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Async writes to a pipe or PTY master.
pub struct FdWriter(AsyncFd<OwnedFd>);

impl FdWriter {
    /// Wraps `fd`, making it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        Ok(FdWriter(register(fd)?))
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

/// Sets a PTY's window size.
pub fn resize(master: &OwnedFd, rows: u16, columns: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize from the pointer; master is open.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
