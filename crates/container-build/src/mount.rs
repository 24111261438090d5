//! `RUN --mount=type=...,key=value,...` options.

use crate::ast::{BindMount, CacheMount, CacheSharing, Mount, SecretMount, TmpfsMount};
use crate::error::line_error;
use containerization_error::Result;

/// Parses an already-expanded `--mount` value.
pub fn parse_mount(line: usize, value: &str) -> Result<Mount> {
    let mut kind = "bind".to_string();
    let mut fields: Vec<(String, Option<String>)> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_string())),
            None => (part.to_ascii_lowercase(), None),
        };
        if k == "type" {
            kind = v.unwrap_or_default().to_ascii_lowercase();
        } else {
            fields.push((k, v));
        }
    }
    let bad = |msg: String| line_error(line, format!("invalid --mount: {msg}"));
    let need = |k: &str, v: &Option<String>| -> Result<String> {
        v.clone().ok_or_else(|| bad(format!("'{k}' needs a value")))
    };
    let flag = |k: &str, v: &Option<String>| -> Result<bool> {
        match v.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(x) => Err(bad(format!("'{k}={x}' is not true or false"))),
        }
    };
    let num = |k: &str, v: &Option<String>| -> Result<u32> {
        let s = need(k, v)?;
        s.parse()
            .map_err(|_| bad(format!("'{k}={s}' is not a number")))
    };
    let octal = |k: &str, v: &Option<String>| -> Result<u32> {
        let s = need(k, v)?;
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| bad(format!("'{k}={s}' is not an octal mode")))
    };
    match kind.as_str() {
        "bind" => {
            let mut m = BindMount::default();
            for (k, v) in &fields {
                match k.as_str() {
                    "target" | "dst" | "destination" => m.target = need(k, v)?,
                    "source" | "src" => m.source = Some(need(k, v)?),
                    "from" => m.from = Some(need(k, v)?),
                    "rw" | "readwrite" => m.readwrite = flag(k, v)?,
                    "ro" | "readonly" => m.readwrite = !flag(k, v)?,
                    _ => return Err(bad(format!("unknown option '{k}' for type=bind"))),
                }
            }
            if m.target.is_empty() {
                return Err(bad("type=bind needs target=".into()));
            }
            Ok(Mount::Bind(m))
        }
        "cache" => {
            let mut m = CacheMount::default();
            for (k, v) in &fields {
                match k.as_str() {
                    "target" | "dst" | "destination" => m.target = need(k, v)?,
                    "id" => m.id = Some(need(k, v)?),
                    "ro" | "readonly" => m.readonly = flag(k, v)?,
                    "rw" | "readwrite" => m.readonly = !flag(k, v)?,
                    "sharing" => {
                        m.sharing = match need(k, v)?.as_str() {
                            "shared" => CacheSharing::Shared,
                            "private" => CacheSharing::Private,
                            "locked" => CacheSharing::Locked,
                            s => {
                                return Err(bad(format!(
                                    "sharing={s}: expected shared, private or locked"
                                )));
                            }
                        }
                    }
                    "from" => m.from = Some(need(k, v)?),
                    "source" | "src" => m.source = Some(need(k, v)?),
                    "mode" => m.mode = Some(octal(k, v)?),
                    "uid" => m.uid = Some(num(k, v)?),
                    "gid" => m.gid = Some(num(k, v)?),
                    _ => return Err(bad(format!("unknown option '{k}' for type=cache"))),
                }
            }
            if m.target.is_empty() {
                return Err(bad("type=cache needs target=".into()));
            }
            Ok(Mount::Cache(m))
        }
        "secret" | "ssh" => {
            let mut m = SecretMount::default();
            for (k, v) in &fields {
                match k.as_str() {
                    "id" => m.id = Some(need(k, v)?),
                    "target" | "dst" | "destination" => m.target = Some(need(k, v)?),
                    "env" if kind == "secret" => m.env = Some(need(k, v)?),
                    "required" => m.required = flag(k, v)?,
                    "mode" => m.mode = Some(octal(k, v)?),
                    "uid" => m.uid = Some(num(k, v)?),
                    "gid" => m.gid = Some(num(k, v)?),
                    _ => return Err(bad(format!("unknown option '{k}' for type={kind}"))),
                }
            }
            if kind == "secret" && m.id.is_none() && m.target.is_none() {
                return Err(bad("type=secret needs id= or target=".into()));
            }
            Ok(if kind == "secret" {
                Mount::Secret(m)
            } else {
                Mount::Ssh(m)
            })
        }
        "tmpfs" => {
            let mut m = TmpfsMount::default();
            for (k, v) in &fields {
                match k.as_str() {
                    "target" | "dst" | "destination" => m.target = need(k, v)?,
                    "size" => {
                        let s = need(k, v)?;
                        m.size = Some(
                            s.parse()
                                .map_err(|_| bad(format!("size={s} is not a number of bytes")))?,
                        );
                    }
                    _ => return Err(bad(format!("unknown option '{k}' for type=tmpfs"))),
                }
            }
            if m.target.is_empty() {
                return Err(bad("type=tmpfs needs target=".into()));
            }
            Ok(Mount::Tmpfs(m))
        }
        other => Err(bad(format!(
            "unknown type '{other}' (expected bind, cache, secret, tmpfs or ssh)"
        ))),
    }
}
