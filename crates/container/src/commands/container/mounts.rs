//! `-v/--volume`, `--mount` and `--tmpfs` as mount specs (Docker's and
//! Apple's syntax).

use std::path::Path;

use container_api::config::{MountKind, MountSpec};
use container_api::volume::valid_volume_name;
use containerization_error::{ContainerizationError, Result};

fn bad(flag: &str, value: &str, why: &str) -> ContainerizationError {
    ContainerizationError::invalid_argument(format!("invalid {flag} '{value}': {why}"))
}

fn destination(flag: &str, value: &str, d: &str) -> Result<String> {
    if !d.starts_with('/') {
        return Err(bad(flag, value, "the container path must be absolute"));
    }
    if Path::new(d)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(bad(flag, value, "the container path may not contain '..'"));
    }
    Ok(d.to_string())
}

/// An existing host path, made absolute against the current directory.
fn host_path(flag: &str, value: &str, p: &str) -> Result<String> {
    let abs = std::path::absolute(p).map_err(|_| bad(flag, value, "invalid host path"))?;
    if std::fs::metadata(&abs).is_err() {
        return Err(ContainerizationError::not_found(format!(
            "invalid {flag} '{value}': host path {} does not exist",
            abs.display()
        )));
    }
    Ok(abs.to_string_lossy().into_owned())
}

fn is_host_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s == "." || s == ".."
}

/// `-v /path`, `-v NAME:/path[:ro]`, `-v /host:/path[:ro]`.
pub fn parse_volume(value: &str) -> Result<MountSpec> {
    const FLAG: &str = "-v";
    let parts: Vec<&str> = value.split(':').collect();
    let (source, dest, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(bad(FLAG, value, "use [SOURCE:]PATH[:ro]")),
    };
    let mut read_only = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => read_only = true,
            "rw" => read_only = false,
            other => {
                return Err(bad(
                    FLAG,
                    value,
                    &format!("unknown option '{other}' (use ro or rw)"),
                ));
            }
        }
    }
    let destination = destination(FLAG, value, dest)?;
    let (kind, source) = if source.is_empty() {
        (MountKind::Volume, String::new())
    } else if is_host_path(source) {
        (MountKind::Bind, host_path(FLAG, value, source)?)
    } else if valid_volume_name(source) {
        (MountKind::Volume, source.to_string())
    } else {
        return Err(bad(
            FLAG,
            value,
            "the source must be a volume name or a host path starting with / or ./",
        ));
    };
    Ok(MountSpec {
        kind,
        source,
        destination,
        read_only,
        options: Vec::new(),
    })
}

fn truthy(flag: &str, value: &str, v: &str) -> Result<bool> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(flag, value, &format!("'{v}' is not true or false"))),
    }
}

/// `--mount type=volume|bind|virtiofs|tmpfs,source=..,target=..[,readonly]`.
pub fn parse_mount(value: &str) -> Result<MountSpec> {
    const FLAG: &str = "--mount";
    let mut kind = None;
    let mut source = String::new();
    let mut target = None;
    let mut read_only = false;
    let mut options = Vec::new();
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => {
                kind = Some(match v {
                    "volume" => MountKind::Volume,
                    "bind" | "virtiofs" => MountKind::Bind,
                    "tmpfs" => MountKind::Tmpfs,
                    _ => {
                        return Err(bad(
                            FLAG,
                            value,
                            "type must be volume, bind, virtiofs or tmpfs",
                        ));
                    }
                })
            }
            "source" | "src" => source = v.to_string(),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => read_only = truthy(FLAG, value, v)?,
            "tmpfs-size" => options.push(format!("size={v}")),
            "tmpfs-mode" => options.push(format!("mode={v}")),
            _ => return Err(bad(FLAG, value, &format!("unknown field '{k}'"))),
        }
    }
    let kind = kind.ok_or_else(|| bad(FLAG, value, "type= is required"))?;
    let target = target.ok_or_else(|| bad(FLAG, value, "target= is required"))?;
    let destination = destination(FLAG, value, &target)?;
    if kind != MountKind::Tmpfs && !options.is_empty() {
        return Err(bad(
            FLAG,
            value,
            "tmpfs-size and tmpfs-mode need type=tmpfs",
        ));
    }
    let source = match kind {
        MountKind::Bind if source.is_empty() => {
            return Err(bad(FLAG, value, "a bind mount needs source="));
        }
        MountKind::Bind => host_path(FLAG, value, &source)?,
        MountKind::Volume if !source.is_empty() && !valid_volume_name(&source) => {
            return Err(bad(FLAG, value, "the source is not a valid volume name"));
        }
        MountKind::Tmpfs if !source.is_empty() => {
            return Err(bad(FLAG, value, "a tmpfs has no source"));
        }
        _ => source,
    };
    Ok(MountSpec {
        kind,
        source,
        destination,
        read_only,
        options,
    })
}

/// `--tmpfs /path[:opt,opt]`.
pub fn parse_tmpfs(value: &str) -> Result<MountSpec> {
    let (dest, opts) = value.split_once(':').unwrap_or((value, ""));
    let destination = destination("--tmpfs", value, dest)?;
    let mut read_only = false;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            o => options.push(o.to_string()),
        }
    }
    Ok(MountSpec {
        kind: MountKind::Tmpfs,
        source: String::new(),
        destination,
        read_only,
        options,
    })
}

/// Every mount flag of `run`/`create`, checked for duplicate targets.
pub fn parse_all(
    volumes: &[String],
    mounts: &[String],
    tmpfs: &[String],
) -> Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    for v in volumes {
        out.push(parse_volume(v)?);
    }
    for m in mounts {
        out.push(parse_mount(m)?);
    }
    for t in tmpfs {
        out.push(parse_tmpfs(t)?);
    }
    let norm = |d: &str| d.trim_end_matches('/').to_string();
    for (i, m) in out.iter().enumerate() {
        if out[..i]
            .iter()
            .any(|o| norm(&o.destination) == norm(&m.destination))
        {
            return Err(ContainerizationError::invalid_argument(format!(
                "duplicate mount point {}",
                m.destination
            )));
        }
    }
    // Parents before children (Docker's order): /etc before /etc/app.
    out.sort_by_key(|m| Path::new(&m.destination).components().count());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flag_forms() {
        let a = parse_volume("/data").unwrap();
        assert_eq!(
            (a.kind, a.source.as_str(), a.destination.as_str()),
            (MountKind::Volume, "", "/data")
        );
        let n = parse_volume("cache:/var/cache:ro").unwrap();
        assert_eq!(
            (n.kind, n.source.as_str(), n.read_only),
            (MountKind::Volume, "cache", true)
        );
        let b = parse_volume("/tmp:/host").unwrap();
        assert_eq!((b.kind, b.source.as_str()), (MountKind::Bind, "/tmp"));
        let r = parse_volume(".:/src").unwrap();
        assert!(r.source.starts_with('/'));
        assert!(parse_volume("/nonexistent-host-dir-x:/d").is_err());
        assert!(parse_volume("v:relative").is_err());
        assert!(parse_volume("v:/d:zz").is_err());
        assert!(parse_volume("a:b:c:d").is_err());
    }

    #[test]
    fn mount_and_tmpfs_flags() {
        let m = parse_mount("type=bind,source=/tmp,target=/t,readonly").unwrap();
        assert_eq!((m.kind, m.read_only), (MountKind::Bind, true));
        let v = parse_mount("type=volume,src=v1,dst=/v").unwrap();
        assert_eq!((v.kind, v.source.as_str()), (MountKind::Volume, "v1"));
        let t = parse_mount("type=tmpfs,target=/x,tmpfs-size=1m").unwrap();
        assert_eq!(t.options, ["size=1m"]);
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("source=v,target=/x").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        let t = parse_tmpfs("/run:size=64m,mode=1777").unwrap();
        assert_eq!(t.options, ["size=64m", "mode=1777"]);
        assert!(parse_all(&["/a".into()], &[], &["/a/".into()]).is_err());
    }
}
