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
