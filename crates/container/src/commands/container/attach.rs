//! Attaching this terminal to a container process: our stdio descriptors go
//! to the runtime helper (SCM_RIGHTS), `-t` puts the terminal in raw mode and
//! forwards window size changes, and signals are proxied without `-t`.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use container_api::stdio::{AttachHeader, send_stdio};
use container_api::{RuntimeClient, StateRoot};
use containerization::terminal::RawMode;
use containerization_error::{Code, Result, ResultExt};

/// Puts stdin's terminal in raw mode (keys, Ctrl-C included, go to the
/// container's PTY); `None` when stdin is not a terminal.
pub fn raw_mode() -> Option<RawMode> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    RawMode::enter()
}

/// Passes stdout, stderr (and stdin when `stdin`) to the helper of `id` for `process`.
pub fn send(root: &StateRoot, id: &str, process: &str, stdin: bool) -> Result<()> {
    let path = root.container_dir(id).join("stdio.sock");
    let mut s = UnixStream::connect(&path).context(
        Code::InternalError,
        format!("connecting to {}", path.display()),
    )?;
    let mut fds = vec![std::io::stdout().as_raw_fd(), std::io::stderr().as_raw_fd()];
    if stdin {
        fds.push(std::io::stdin().as_raw_fd());
    }
    send_stdio(
        &mut s,
        &AttachHeader {
            process: process.to_string(),
            stdin,
        },
        &fds,
    )
}

fn window_size() -> Option<(u32, u32)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own; stdout's
    // descriptor stays open for the call.
    let r = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_col as u32, ws.ws_row as u32))
}

/// Sends the current size before returning (so the process starts with
/// it), then again on every SIGWINCH.
pub async fn forward_resize(rt: RuntimeClient, process: String) {
    // Listen first: a change while the first size is on its way is not lost.
    let sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change());
    if let Some((w, h)) = window_size() {
        let _ = rt.resize(&process, w, h).await;
    }
    let Ok(mut sig) = sig else { return };
    tokio::spawn(async move {
        while sig.recv().await.is_some() {
            if let Some((w, h)) = window_size() {
                let _ = rt.resize(&process, w, h).await;
            }
        }
    });
}

/// Forwards SIGINT, SIGTERM and SIGHUP to the process (Docker's sig-proxy).
pub fn forward_signals(rt: RuntimeClient, process: String) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let rt = rt.clone();
        let process = process.clone();
        tokio::spawn(async move {
            let Ok(mut s) = signal(kind) else { return };
            while s.recv().await.is_some() {
                let _ = rt.kill(&process, num).await;
            }
        });
    }
}
