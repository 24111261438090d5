//! `vminitd`: PID 1 of the container VM. Mounts the basics, reaps zombies and
//! serves the `SandboxContext` gRPC API on vsock port 1024 (or a unix socket
//! for host tests). Re-executed as `vminitd __vmexec` to set up each
//! container process (see `container::vmexec`).

use std::process::ExitCode;

use clap::Parser;
use vminitd::{boot, container, listen, reaper, service, timeline};

/// Command line of the agent.
#[derive(Debug, Parser)]
#[command(name = "vminitd", version, about = "Guest agent of the container VM")]
struct Args {
    /// Where to serve: `vsock:PORT` (default vsock:1024) or `unix:/path`.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: listen::ListenAddr,
    /// cgroup v2 mount point used for container cgroups.
    #[arg(long, default_value = DEFAULT_CGROUP_ROOT)]
    cgroup_root: std::path::PathBuf,
}

const DEFAULT_LISTEN: &str = "vsock:1024";
const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl Args {
    /// The defaults, without running the parser (PID 1 booted with no
    /// arguments: clap's first run costs ~10 ms of boot under TCG).
    fn defaults() -> Args {
        Args {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is an address"),
            cgroup_root: DEFAULT_CGROUP_ROOT.into(),
        }
    }
}

fn main() -> ExitCode {
    // The container-process helper runs single-threaded, before any runtime.
    if std::env::args().nth(1).as_deref() == Some(container::vmexec::ARG) {
        return container::vmexec::main();
    }
    let pid1 = std::process::id() == 1;
    if pid1 {
        boot::pid1_setup();
    }
    // When the kernel hands PID 1 unknown arguments from the command line,
    // ignore them instead of refusing to boot.
    let args = if pid1 && std::env::args_os().len() <= 1 {
        Args::defaults()
    } else if pid1 {
        Args::try_parse().unwrap_or_else(|_| Args::defaults())
    } else {
        Args::parse()
    };
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A plain level filter unless VMINITD_LOG asks for more (building an
    // EnvFilter is measurable at boot under TCG).
    match tracing_subscriber::EnvFilter::try_from_env("VMINITD_LOG") {
        Ok(filter) => log.with_env_filter(filter).init(),
        Err(_) => log.with_max_level(tracing::Level::INFO).init(),
    }
    timeline::mark("tracing");
    // Before the runtime creates any thread (see `reaper`).
    if let Err(e) = reaper::Reaper::block_sigchld() {
        eprintln!("vminitd: {e}");
        return boot::fail(pid1);
    }
    let runtime = match runtime_builder()
        // An idle blocking-pool thread is kept, not ended after tokio's
        // default 10 s: under TCG creating it again cost the next exec or
        // file-system RPC 20-40 ms.
        .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vminitd: cannot start the runtime: {e}");
            return boot::fail(pid1);
        }
    };
    timeline::mark("runtime");
    match runtime.block_on(serve(args, pid1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("vminitd: {e}");
            boot::fail(pid1)
        }
    }
}

/// One vCPU: a current-thread runtime. A worker thread there only adds
/// cross-thread wake-ups and its own creation: under TCG, guest time from
/// the agent's boot mounts to the first answered Ping 115 ms instead of 132
/// (boot bench), Ping round trip 1.24 ms instead of 1.32 (medians of 6
/// runs). More vCPUs: one worker per vCPU, at most two (the heavy work runs
/// on the blocking pool; a second worker on one vCPU had made the round
/// trip 1.1-1.3 ms instead of 0.94).
fn runtime_builder() -> tokio::runtime::Builder {
    let cpus = vcpus();
    if cpus == 1 {
        return tokio::runtime::Builder::new_current_thread();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(cpus.min(2));
    builder
}

/// The vCPUs the agent may run on. Not `available_parallelism`: that also
/// looks for a cgroup CPU quota (none applies to the agent at boot) by
/// reading /proc/self/cgroup and /proc/self/mountinfo, 8 ms of every boot
/// under TCG.
fn vcpus() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return 1;
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count()
        .max(1)
}

async fn serve(
    args: Args,
    pid1: bool,
) -> Result<(), containerization_error::ContainerizationError> {
    let reaper = reaper::Reaper::start()?;
    timeline::mark("reaper");
    let agent = service::Agent::new(reaper, args.cgroup_root, pid1);
    timeline::mark("agent");
    listen::serve(args.listen, agent).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_are_the_affinity_mask() {
        // No cgroup quota on a test runner that would make them differ.
        let expected = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(vcpus() >= expected);
        assert!(vcpus() >= 1);
    }

    #[test]
    fn defaults_are_what_the_parser_gives() {
        let parsed = Args::parse_from(["vminitd"]);
        let defaults = Args::defaults();
        assert_eq!(parsed.listen, defaults.listen);
        assert_eq!(
            parsed.listen,
            listen::ListenAddr::Vsock(vminitd_api::AGENT_PORT)
        );
        assert_eq!(parsed.cgroup_root, defaults.cgroup_root);
    }
}
