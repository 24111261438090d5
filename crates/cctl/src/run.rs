//! `cctl run`: runs one command in a fresh VM through the `containerization`
//! library, streams its stdio, and exits with the command's exit code.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use containerization::{
    ContainerManager, ContainerizationError, Kernel, LinuxContainer, Mount,
    QemuVirtualMachineManager, Result, Stdio, default_initfs,
};
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `cctl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    cpus: u32,
    /// Memory limit (bytes, or with K/M/G suffix).
    #[arg(long, default_value = "512M")]
    memory: String,
    /// HOST:CONTAINER[:ro]; a directory is shared (virtio-fs), a file is an ext4 block device.
    #[arg(long = "mount", short = 'v')]
    mounts: Vec<String>,
    /// Allocate a terminal (implies -i).
    #[arg(short = 't', long)]
    tty: bool,
    /// Keep stdin attached.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Boot this ext4 image directly instead of an image reference.
    #[arg(long)]
    rootfs: Option<PathBuf>,
    /// State root (default $CONTAINER_ROOT or /var/lib/container).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Container id (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// Working directory in the container.
    #[arg(long, short = 'w')]
    workdir: Option<String>,
    /// Extra environment variables (KEY=VALUE).
    #[arg(long, short = 'e')]
    env: Vec<String>,
    /// Image reference (omit with --rootfs), then `--` and the command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            ContainerizationError::invalid_argument(format!("invalid size {s:?} (e.g. 512M, 2G)"))
        })
}

fn parse_mount(spec: &str) -> Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, vec![]),
        [s, d, "ro"] => (*s, *d, vec!["ro".to_string()]),
        [s, d, "rw"] => (*s, *d, vec![]),
        _ => {
            return Err(ContainerizationError::invalid_argument(format!(
                "mount {spec:?} must be HOST:CONTAINER[:ro]"
            )));
        }
    };
    let meta = std::fs::metadata(src).map_err(|e| {
        ContainerizationError::not_found(format!("mount source {src} does not exist")).with_cause(e)
    })?;
    let src = std::fs::canonicalize(src).unwrap_or_else(|_| PathBuf::from(src));
    Ok(if meta.is_dir() {
        Mount::share(src, dst, opts)
    } else {
        Mount::block("ext4", src, dst, opts)
    })
}

/// Runs `cctl run`; never returns (exits with the command's exit code).
pub fn run(args: RunArgs) -> ! {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cctl: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run_async(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cctl: {}", e.report());
            e.code.exit_code()
        }
    };
    // Exit at once: a blocking stdin read may still be pending.
    std::process::exit(code)
}

async fn run_async(args: RunArgs) -> Result<i32> {
    let memory = parse_size(&args.memory)?;
    let mounts = args
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    let (image, command) = match (&args.rootfs, args.args.split_first()) {
        (Some(_), _) => (None, args.args.clone()),
        (None, Some((image, rest))) => (Some(image.clone()), rest.to_vec()),
        (None, None) => {
            return Err(ContainerizationError::invalid_argument(
                "give an IMAGE (or --rootfs FILE.ext4) and a command",
            ));
        }
    };
    let command: Vec<String> = match command.first().map(String::as_str) {
        Some("--") => command[1..].to_vec(),
        _ => command,
    };
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let interactive = args.interactive || args.tty;
    let tty = args.tty;
    let env = args.env.clone();
    let workdir = args.workdir.clone();
    let configure = move |c: &mut containerization::Configuration| -> Result<()> {
        c.cpus = args.cpus;
        c.memory_in_bytes = memory;
        c.mounts = mounts;
        if !command.is_empty() {
            c.process.args = command;
        }
        c.process.env.extend(env);
        if let Some(w) = workdir {
            c.process.cwd = w;
        }
        c.process.terminal = tty;
        if tty {
            c.process.env.push(format!(
                "TERM={}",
                std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
            ));
        }
        c.process.stdin = if interactive {
            Stdio::Inherit
        } else {
            Stdio::Null
        };
        c.process.stdout = Stdio::Inherit;
        c.process.stderr = Stdio::Inherit;
        Ok(())
    };
    let kernel = Kernel::default_kernel()?;
    let initfs = default_initfs()?;
    let mut scratch = None;
    let (container, manager) = match (&args.rootfs, image) {
        (Some(ext4), _) => {
            let dir = tempfile::tempdir().map_err(|e| {
                ContainerizationError::internal("cannot create a temp dir").with_cause(e)
            })?;
            let overlay = dir.path().join("rootfs.qcow2");
            containerization::rootfs::create_overlay(
                ext4,
                &overlay,
                containerization::rootfs::DEFAULT_ROOTFS_SIZE,
            )
            .await?;
            let vmm = Arc::new(QemuVirtualMachineManager::new(kernel, initfs));
            let rootfs = Mount::block("ext4", &overlay, "/", vec![]);
            scratch = Some(dir);
            (LinuxContainer::new(&id, rootfs, vmm, configure)?, None)
        }
        (None, Some(image)) => {
            let initfs = Mount::block("cpio", initfs, "/", vec![]);
            let manager = ContainerManager::with_root(kernel, initfs, args.root.clone(), None)?;
            let c = manager.create(&id, &image, None, configure).await?;
            (c, Some(manager))
        }
        (None, None) => unreachable!("checked above"),
    };
    let result = run_container(&container, tty).await;
    let _ = container.stop().await;
    if let Some(m) = manager {
        let _ = m.delete(&id).await;
    }
    drop(scratch);
    result
}

async fn run_container(container: &LinuxContainer, tty: bool) -> Result<i32> {
    container.create().await?;
    let _raw = if tty {
        containerization::terminal::RawMode::enter()
    } else {
        None
    };
    // The size goes in before the start, so the process's first look at
    // its terminal sees it; later changes follow SIGWINCH.
    let mut winch = None;
    if tty {
        winch = signal(SignalKind::window_change()).ok();
        if let Some(size) = terminal_size() {
            let _ = container.resize(size).await;
        }
    }
    container.start().await?;
    let resizes = async {
        if let Some(w) = winch.as_mut() {
            while w.recv().await.is_some() {
                if let Some(size) = terminal_size() {
                    let _ = container.resize(size).await;
                }
            }
        }
        std::future::pending::<()>().await
    };
    let status = tokio::select! {
        s = container.wait(None) => s?,
        () = resizes => unreachable!("the resize loop never ends"),
        _ = tokio::signal::ctrl_c() => {
            // Not a terminal: forward ^C as SIGINT, then wait.
            let _ = container.kill(libc::SIGINT).await;
            container.wait(None).await?
        }
    };
    Ok(status.exit_code)
}

/// The size of the terminal on stdout, if it is one.
fn terminal_size() -> Option<containerization::terminal::Size> {
    containerization::terminal::Size::of_fd(std::io::stdout().as_fd_borrow())
}

trait AsFdBorrow {
    fn as_fd_borrow(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<T: std::os::fd::AsFd> AsFdBorrow for T {
    fn as_fd_borrow(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
    }
}
