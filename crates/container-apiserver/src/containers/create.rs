//! `create`: resolves the image (pulling it if needed), merges its config
//! with the user's options as Docker does, and prepares the bundle.

use std::collections::BTreeMap;

use container_api::config::{CreateOptions, valid_container_id};
use container_api::{ContainerConfiguration, ProcessConfig};
use containerization_error::{Code, ContainerizationError, Result};
use containerization_oci::oci_spec::image::ImageConfiguration;

/// Default memory of a container (Apple's default is 1 GiB; TCG hosts are small).
pub(crate) const DEFAULT_MEMORY: u64 = 512 << 20;

/// A random container id (UUID v4 text, as Apple's CLI uses).
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Signal number of an image's `StopSignal` (`SIGTERM`, `TERM`, `15`).
pub(crate) fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (n > 0 && n < 65).then_some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name).to_string();
    nix::sys::signal::Signal::iterator()
        .find(|sig| sig.as_str().strip_prefix("SIG") == Some(name.as_str()))
        .map(|sig| sig as i32)
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map(|(k, _)| k).unwrap_or(kv)
}

/// Docker's merge of the image config and the user's options.
pub(crate) fn merge(
    opts: &CreateOptions,
    image: &ImageConfiguration,
    image_ref: &str,
    image_digest: &str,
) -> Result<ContainerConfiguration> {
    let id = match &opts.name {
        Some(n) if !valid_container_id(n) => {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid container name '{n}': use 1-64 characters of [a-zA-Z0-9_.-], starting with a letter or digit"
            )));
        }
        Some(n) => n.clone(),
        None => new_id(),
    };
    let cfg = image.config().clone().unwrap_or_default();
    let (entrypoint, cmd): (Vec<String>, Vec<String>) = match &opts.entrypoint {
        // `--entrypoint` drops the image's Cmd too (Docker's rule).
        Some(e) if e.is_empty() => (Vec::new(), opts.args.clone()),
        Some(e) => (vec![e.clone()], opts.args.clone()),
        None => (
            cfg.entrypoint().clone().unwrap_or_default(),
            if opts.args.is_empty() {
                cfg.cmd().clone().unwrap_or_default()
            } else {
                opts.args.clone()
            },
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ContainerizationError::invalid_argument(format!(
            "no command given and image '{image_ref}' has neither Entrypoint nor Cmd"
        )));
    }
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    for e in &opts.env {
        env.retain(|x| env_key(x) != env_key(e));
        env.push(e.clone());
    }
    if opts.terminal && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".into());
    }
    let cwd = opts
        .cwd
        .clone()
        .or_else(|| cfg.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let user = opts
        .user
        .clone()
        .or_else(|| cfg.user().clone())
        .unwrap_or_default();
    // Refuse bad users and capability names now rather than at start.
    containerization::User::parse(&user)?;
    containerization::ProcessConfiguration::default()
        .adjust_capabilities(&opts.security.cap_add, &opts.security.cap_drop)?;
    if let Some(json) = opts
        .security
        .seccomp
        .as_deref()
        .filter(|j| *j != "unconfined")
    {
        serde_json::from_str::<containerization_oci::oci_spec::runtime::LinuxSeccomp>(json)
            .map_err(|e| {
                ContainerizationError::invalid_argument(format!("invalid seccomp profile: {e}"))
            })?;
    }
    let mut labels: BTreeMap<String, String> = cfg
        .labels()
        .clone()
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    labels.extend(opts.labels.clone());
    let stop_signal = cfg
        .stop_signal()
        .as_deref()
        .and_then(parse_signal)
        .unwrap_or(libc::SIGTERM);
    Ok(ContainerConfiguration {
        hostname: id.chars().take(12).collect(),
        id,
        image: image_ref.to_string(),
        image_digest: image_digest.to_string(),
        platform: opts.platform.clone(),
        process: ProcessConfig {
            args,
            env,
            cwd,
            user,
            terminal: opts.terminal,
            interactive: opts.interactive,
        },
        cpus: opts.cpus.unwrap_or(1).max(1),
        memory_in_bytes: opts.memory_in_bytes.unwrap_or(DEFAULT_MEMORY),
        labels,
        stop_signal,
        auto_remove: opts.auto_remove,
        kernel: opts.kernel.clone(),
        init_image: opts.init_image.clone(),
        read_only: opts.read_only,
        security: opts.security.clone(),
        mounts: Vec::new(),
        shm_size_in_bytes: opts.shm_size_in_bytes,
        ..Default::default()
    })
}

/// Maps a code to an error (used for the helper's start-error file).
pub(crate) fn error_from_file(text: &str) -> ContainerizationError {
    match text.split_once('\t') {
        Some((code, msg)) => ContainerizationError::new(Code::from_raw(code), msg.trim()),
        None => ContainerizationError::internal(text.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).unwrap()
    }

    const IMG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/ep"],"Cmd":["a","b"],"Env":["PATH=/bin","A=1"],"WorkingDir":"/w","User":"7","StopSignal":"SIGQUIT","Labels":{"x":"1"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;

    #[test]
    fn docker_merge_rules() {
        let img = image(IMG);
        let base = CreateOptions::default();
        let c = merge(&base, &img, "r", "d").unwrap();
        assert_eq!(c.process.args, ["/ep", "a", "b"]);
        assert_eq!(c.process.cwd, "/w");
        assert_eq!(c.process.user, "7");
        assert_eq!(c.stop_signal, libc::SIGQUIT);
        assert_eq!(c.labels["x"], "1");

        let o = CreateOptions {
            args: vec!["c".into()],
            env: vec!["A=2".into()],
            ..Default::default()
        };
        let c = merge(&o, &img, "r", "d").unwrap();
        assert_eq!(c.process.args, ["/ep", "c"], "args replace Cmd only");
        assert!(c.process.env.contains(&"A=2".to_string()));
        assert!(!c.process.env.contains(&"A=1".to_string()));

        let o = CreateOptions {
            entrypoint: Some("/bin/sh".into()),
            ..Default::default()
        };
        let c = merge(&o, &img, "r", "d").unwrap();
        assert_eq!(c.process.args, ["/bin/sh"], "--entrypoint drops Cmd");

        let o = CreateOptions {
            name: Some("Bad Name".into()),
            ..Default::default()
        };
        assert!(
            merge(&o, &img, "r", "d")
                .unwrap_err()
                .is_code(Code::InvalidArgument)
        );
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(new_id().len(), 36);
    }
}
