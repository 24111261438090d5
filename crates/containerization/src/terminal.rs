//! Terminal types (seed `Terminal.Size`).

/// A terminal window size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

impl Size {
    /// The size of the terminal on `fd`, if it is one.
    pub fn of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Option<Size> {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: TIOCGWINSZ writes one winsize into the valid struct we pass.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        (r == 0).then_some(Size {
            width: ws.ws_col,
            height: ws.ws_row,
        })
    }
}

/// The terminal on stdin in raw mode while a `-t` process runs: keys,
/// Ctrl-C included, go to the process's PTY. The saved mode is restored on
/// drop.
#[derive(Debug)]
pub struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    /// Puts stdin's terminal in raw mode; `None` when stdin is not a terminal.
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::{LocalFlags, SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        if saved.local_flags.contains(LocalFlags::ICANON) {
            drop_eof_marks(std::os::fd::AsFd::as_fd(&stdin));
        }
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // TCSANOW, not TCSAFLUSH: lines typed ahead still reach the process.
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

/// In line mode an end-of-file key (^D on an empty line; script(1) sends
/// one when its own input ends) waits in the input queue as a mark, which
/// the switch to raw mode turns into a NUL byte: the process would read it
/// and its terminal echo `^@` first thing. Each read in line mode consumes
/// one mark (returning 0 bytes); lines typed ahead are left alone.
fn drop_eof_marks(fd: std::os::fd::BorrowedFd<'_>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsRawFd;
    // Bounded: a hung-up terminal reads 0 forever.
    for _ in 0..16 {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the valid pointer; fd is open.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut queued) };
        // In line mode FIONREAD counts the bytes of complete lines but no
        // marks: readable with nothing counted means only marks are queued.
        if r != 0 || queued != 0 {
            return;
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)) {
            return;
        }
        let mut byte = [0u8; 1];
        if !matches!(nix::unistd::read(fd, &mut byte), Ok(0)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    use std::io::{Read, Write};

    /// Types `keys` on a fresh PTY in line mode, optionally drops the EOF
    /// marks, switches to raw mode and types `x`; returns what the slave reads.
    fn after_raw(keys: &[u8], drop_marks: bool) -> Vec<u8> {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut master = std::fs::File::from(pty.master);
        let mut slave = std::fs::File::from(pty.slave);
        master.write_all(keys).unwrap();
        // The line discipline takes input on a worker thread: let it see
        // the keys (in line mode) before anything changes.
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&slave),
            PollFlags::POLLIN,
        )];
        let _ = poll(&mut fds, PollTimeout::from(200u8));
        if drop_marks {
            drop_eof_marks(std::os::fd::AsFd::as_fd(&slave));
        }
        let mut raw = tcgetattr(&slave).unwrap();
        cfmakeraw(&mut raw);
        tcsetattr(&slave, SetArg::TCSANOW, &raw).unwrap();
        master.write_all(b"x").unwrap();
        let mut got = Vec::new();
        while got.last() != Some(&b'x') {
            let mut buf = [0u8; 64];
            let n = slave.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn end_of_file_typed_in_line_mode_is_no_nul_in_raw_mode() {
        // The kernel's behaviour this works around.
        assert_eq!(after_raw(b"\x04", false), b"\0x");
        assert_eq!(after_raw(b"\x04", true), b"x");
        assert_eq!(after_raw(b"\x04\x04", true), b"x");
        // Lines typed ahead are kept; a partial line too.
        assert_eq!(after_raw(b"ls\n", true), b"ls\nx");
        assert_eq!(after_raw(b"par", true), b"parx");
    }
}
