//! Flags of `run`, `create` and `exec` (Apple's names), and how they become
//! a create request.

use std::path::{Path, PathBuf};

use clap::Args;
use container_api::config::CreateOptions;
use container_api::network::{DnsSettings, NetworkRequest, PublishPort, PublishSocket};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::cli::{PlatformArgs, SchemeArg};

/// Process flags shared by `run`, `create` and `exec`.
#[derive(Debug, Args, Clone)]
pub struct ProcessFlags {
    /// Set an environment variable (KEY=value; a bare KEY takes the host's value).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// User: name|uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// User id.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group id.
    #[arg(long)]
    pub gid: Option<u32>,
    /// Working directory.
    #[arg(short = 'w', long = "workdir", visible_alias = "cwd")]
    pub workdir: Option<String>,
}

/// Flags of `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Container name (default: a generated id).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// CPUs.
    #[arg(short = 'c', long)]
    pub cpus: Option<u32>,
    /// Memory (bytes, or with K, M, G, T, P).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Label key=value.
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Registry scheme if the image must be pulled.
    #[arg(long, value_enum, default_value_t = SchemeArg::Auto)]
    pub scheme: SchemeArg,
    /// DNS server.
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS domain.
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
    /// DNS option.
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// DNS search domain.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Do not configure DNS.
    #[arg(long = "no-dns")]
    pub no_dns: bool,
    /// Write the container id to this file.
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init process that reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Kernel to boot.
    #[arg(short = 'k', long)]
    pub kernel: Option<PathBuf>,
    /// Guest init filesystem to boot instead of the installed one (a newc
    /// cpio, plain or gzip/LZ4/zstd/xz-compressed, whose /sbin/vminitd is
    /// the agent).
    #[arg(long = "init-image")]
    pub init_image: Option<PathBuf>,
    /// Resource limit type=soft[:hard].
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a capability.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security options: `seccomp=PROFILE.json`, `seccomp=unconfined`, `no-new-privileges`.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Bind mount or volume host:container[:ro].
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Mount type=...,source=...,target=...
    #[arg(long)]
    pub mount: Vec<String>,
    /// tmpfs mount.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Publish a port [ip:]host:container[/proto].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Network to attach.
    #[arg(long)]
    pub network: Vec<String>,
    /// Relay a container unix socket to the host: /host.sock:/container.sock.
    #[arg(long = "publish-socket")]
    pub publish_socket: Vec<String>,
    /// Image reference.
    pub image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `-m 512M` -> bytes.
pub fn parse_memory(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        Some('P') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| {
        ContainerizationError::invalid_argument(format!(
            "invalid memory size '{s}': use a number with K, M, G, T or P"
        ))
    })?;
    n.checked_mul(mult).ok_or_else(|| {
        ContainerizationError::invalid_argument(format!("memory size '{s}' is too large"))
    })
}

/// `-e` and `--env-file` resolved to KEY=value.
pub fn resolve_env(p: &ProcessFlags) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in &p.env_file {
        let text = std::fs::read_to_string(f).context(
            Code::InvalidArgument,
            format!("reading env file {}", f.display()),
        )?;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            push_env(&mut out, line);
        }
    }
    for e in &p.env {
        push_env(&mut out, e);
    }
    Ok(out)
}

fn push_env(out: &mut Vec<String>, e: &str) {
    if e.contains('=') {
        out.push(e.to_string());
    } else if let Ok(v) = std::env::var(e) {
        out.push(format!("{e}={v}"));
    }
}

/// `-u`, `--uid`, `--gid` -> `uid[:gid]`.
pub fn resolve_user(p: &ProcessFlags) -> Option<String> {
    match (&p.user, p.uid, p.gid) {
        (Some(u), _, _) => Some(u.clone()),
        (None, Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (None, Some(uid), None) => Some(uid.to_string()),
        (None, None, Some(gid)) => Some(format!("0:{gid}")),
        (None, None, None) => None,
    }
}

impl RunArgs {
    /// Validates the flags and builds the create request.
    pub fn to_options(&self) -> Result<CreateOptions> {
        let mounts = super::mounts::parse_all(&self.volumes, &self.mount, &self.tmpfs)?;
        let security = container_api::config::ProcessSecurity {
            rlimits: self
                .ulimit
                .iter()
                .map(|u| parse_ulimit(u))
                .collect::<Result<_>>()?,
            // Checked by the apiserver, which knows the capability names.
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            init: self.init,
            seccomp: None,
            no_new_privileges: false,
        };
        let security = self
            .security_opt
            .iter()
            .try_fold(security, |s, o| apply_security_opt(s, o))?;
        let shm_size_in_bytes = match self.shm_size.as_deref() {
            Some(s) => {
                let n = parse_memory(s)?;
                if n < 4096 {
                    return Err(ContainerizationError::invalid_argument(format!(
                        "invalid --shm-size '{s}': it must be at least 4K"
                    )));
                }
                Some(n)
            }
            None => None,
        };
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            if k.is_empty() {
                return Err(ContainerizationError::invalid_argument(format!(
                    "invalid label '{l}'"
                )));
            }
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(CreateOptions {
            name: self.name.clone(),
            image: self.image.clone(),
            platform: self.platform.resolve(),
            scheme: self.scheme.as_str().into(),
            args: self.args.clone(),
            entrypoint: self.entrypoint.clone(),
            env: resolve_env(&self.process)?,
            cwd: self.process.workdir.clone(),
            user: resolve_user(&self.process),
            terminal: self.process.tty,
            interactive: self.process.interactive,
            cpus: self.cpus,
            memory_in_bytes: self.memory.as_deref().map(parse_memory).transpose()?,
            labels,
            auto_remove: self.rm,
            kernel: self
                .kernel
                .as_deref()
                .map(|k| boot_file(k, "--kernel", None))
                .transpose()?,
            init_image: self
                .init_image
                .as_deref()
                .map(|i| boot_file(i, "--init-image", Some(INITFS_MAGICS)))
                .transpose()?,
            read_only: self.read_only,
            networks: self
                .network
                .iter()
                .map(|n| NetworkRequest::parse(n))
                .collect::<Result<_>>()?,
            publish: self
                .publish
                .iter()
                .map(|p| PublishPort::parse(p))
                .collect::<Result<_>>()?,
            publish_sockets: self
                .publish_socket
                .iter()
                .map(|p| PublishSocket::parse(p))
                .collect::<Result<_>>()?,
            dns: DnsSettings {
                disabled: self.no_dns,
                nameservers: self.dns.clone(),
                domain: self.dns_domain.clone(),
                search_domains: self.dns_search.clone(),
                options: self.dns_option.clone(),
            },
            security,
            mounts,
            shm_size_in_bytes,
        })
    }
}

/// One `--security-opt` as Docker spells it.
fn apply_security_opt(
    mut s: container_api::config::ProcessSecurity,
    opt: &str,
) -> Result<container_api::config::ProcessSecurity> {
    match opt.split_once(['=', ':']) {
        Some(("seccomp", "unconfined")) => s.seccomp = Some("unconfined".into()),
        Some(("seccomp", path)) => {
            let text = std::fs::read_to_string(path).context(
                Code::InvalidArgument,
                format!("reading seccomp profile {path}"),
            )?;
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                ContainerizationError::invalid_argument(format!(
                    "seccomp profile {path} is not valid JSON: {e}"
                ))
            })?;
            s.seccomp = Some(text);
        }
        _ if opt == "no-new-privileges" || opt == "no-new-privileges=true" => {
            s.no_new_privileges = true
        }
        _ => {
            return Err(ContainerizationError::invalid_argument(format!(
                "unsupported --security-opt '{opt}': use seccomp=PROFILE.json, seccomp=unconfined or no-new-privileges"
            )));
        }
    }
    Ok(s)
}

/// Docker's `--ulimit` names and the rlimit each stands for.
const ULIMITS: [(&str, &str); 16] = [
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
    ("as", "RLIMIT_AS"),
];

/// `--ulimit nofile=1024[:2048]` (`-1` or `unlimited` for no limit).
pub fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let bad = |why: &str| {
        ContainerizationError::invalid_argument(format!("invalid --ulimit '{s}': {why}"))
    };
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| bad("use type=soft[:hard]"))?;
    let kind = ULIMITS
        .iter()
        .find(|(n, _)| *n == name.trim())
        .map(|(_, k)| k.to_string())
        .ok_or_else(|| bad("unknown type"))?;
    let value = |v: &str| -> Result<u64> {
        match v.trim() {
            "-1" | "unlimited" => Ok(u64::MAX),
            v => v.parse().map_err(|_| bad("limits are numbers")),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (value(a)?, value(b)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(bad("the soft limit is above the hard limit"));
    }
    Ok((kind, soft, hard))
}

/// Signal by name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>()
        && n > 0
        && n < 65
    {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    nix::sys::signal::Signal::iterator()
        .find(|sig| sig.as_str().strip_prefix("SIG") == Some(name))
        .map(|sig| sig as i32)
        .ok_or_else(|| ContainerizationError::invalid_argument(format!("unknown signal '{s}'")))
}

/// What an initfs starts with: a newc cpio header, or the magic of a
/// compression the guest kernel unpacks (gzip, LZ4 legacy frame as
/// `build-initfs.sh` writes, zstd, xz).
const INITFS_MAGICS: &[&[u8]] = &[
    b"070701",
    b"\x1f\x8b",
    b"\x02\x21\x4c\x18",
    b"\x28\xb5\x2f\xfd",
    b"\xfd7zXZ\x00",
];

/// A file the VM boots from, made absolute (the runtime helper runs
/// elsewhere) and checked now, so a typo fails before anything is created.
fn boot_file(path: &Path, flag: &str, magics: Option<&[&[u8]]>) -> Result<String> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| ContainerizationError::not_found(format!("{flag} {}: {e}", path.display())))?;
    if !abs.is_file() {
        return Err(ContainerizationError::invalid_argument(format!(
            "{flag} {}: not a file",
            path.display()
        )));
    }
    if let Some(magics) = magics {
        let mut head = [0u8; 6];
        let n = std::fs::File::open(&abs)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| {
                ContainerizationError::invalid_argument(format!("{flag} {}: {e}", path.display()))
            })?;
        if !magics.iter().any(|m| head[..n].starts_with(m)) {
            return Err(ContainerizationError::invalid_argument(format!(
                "{flag} {}: not an initfs (expected a newc cpio archive, plain or compressed with gzip, LZ4, zstd or xz)",
                path.display()
            )));
        }
    }
    Ok(abs.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initfs_formats_the_kernel_unpacks_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, head: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, head).unwrap();
            boot_file(&p, "--init-image", Some(INITFS_MAGICS)).map(|_| ())
        };
        check("a.cpio", b"070701000000").unwrap();
        check("a.cpio.gz", b"\x1f\x8b\x08\x00").unwrap();
        check("a.cpio.lz4", b"\x02\x21\x4c\x18\x00\x00").unwrap();
        check("a.cpio.zst", b"\x28\xb5\x2f\xfd\x00").unwrap();
        check("a.cpio.xz", b"\xfd7zXZ\x00\x00").unwrap();
        let e = check("notes.txt", b"not an initfs").unwrap_err();
        assert!(e.to_string().contains("not an initfs"), "{e}");
        let e = check("empty", b"").unwrap_err();
        assert!(e.to_string().contains("not an initfs"), "{e}");
    }

    #[test]
    fn memory_and_signals_parse() {
        assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("4096").unwrap(), 4096);
        assert!(parse_memory("lots").is_err());
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert_eq!(
            parse_ulimit("nofile=100:200").unwrap(),
            ("RLIMIT_NOFILE".to_string(), 100, 200)
        );
        assert_eq!(parse_ulimit("nproc=-1").unwrap().2, u64::MAX);
        assert!(parse_ulimit("nofile=9:1").is_err());
        assert!(parse_ulimit("bogus=1").is_err());

        assert!(parse_signal("NOPE").is_err());
    }
}
