//! Identity and privileges of a container process: user and groups,
//! rlimits, capabilities, no_new_privs. Runs in vmexec after the root is set up.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, Process};

use super::rootfs::StepResult;

/// A resolved identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory from /etc/passwd, for HOME.
    pub home: Option<String>,
}

/// Resolves the process's user: numeric ids, or `username` ("name",
/// "uid", "name:group", "uid:gid") looked up in the root's /etc/passwd and /etc/group.
pub fn resolve_user(process: &Process) -> StepResult<Identity> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_user_in(process, &passwd, &group)
}

/// [`resolve_user`] against the given /etc/passwd and /etc/group texts.
pub fn resolve_user_in(process: &Process, passwd: &str, group: &str) -> StepResult<Identity> {
    let user = process.user();
    let mut id = Identity {
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        home: None,
    };
    if let Some(name) = user.username().as_deref().filter(|n| !n.is_empty()) {
        let (u, g) = match name.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (name, None),
        };
        let entry = passwd_lookup(passwd, u);
        match (entry, u.parse::<u32>()) {
            (Some(e), _) => {
                id.uid = e.1;
                id.gid = e.2;
                id.home = Some(e.3);
            }
            (None, Ok(n)) => id.uid = n,
            (None, Err(_)) => return Err(format!("user {u:?} not found in /etc/passwd")),
        }
        if let Some(g) = g {
            id.gid = match (group_lookup(group, g), g.parse::<u32>()) {
                (Some(gid), _) => gid,
                (None, Ok(n)) => n,
                (None, Err(_)) => return Err(format!("group {g:?} not found in /etc/group")),
            };
        }
        let user_name = passwd_by_uid(passwd, id.uid);
        if let Some(user_name) = user_name {
            id.groups.extend(member_groups(group, &user_name));
        }
    } else if let Some((_, _, _, home)) =
        passwd_by_uid(passwd, id.uid).and_then(|n| passwd_lookup(passwd, &n))
    {
        id.home = Some(home);
    }
    id.groups.sort_unstable();
    id.groups.dedup();
    Ok(id)
}

/// (name, uid, gid, home) of a passwd entry by name.
fn passwd_lookup(passwd: &str, name: &str) -> Option<(String, u32, u32, String)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == name).then(|| {
            (
                f[0].to_string(),
                f[2].parse().unwrap_or(0),
                f[3].parse().unwrap_or(0),
                f[5].to_string(),
            )
        })
    })
}

fn passwd_by_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

fn group_lookup(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

/// Groups listing `user` as a member.
fn member_groups(group: &str, user: &str) -> Vec<u32> {
    group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[3].split(',').any(|m| m == user))
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .collect()
}

/// Applies the spec's rlimits.
pub fn set_rlimits(process: &Process) -> StepResult {
    for (name, resource, lim) in rlimits(process)? {
        // SAFETY: setrlimit reads a valid, initialised rlimit struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(format!(
                "cannot set {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The spec's rlimits as setrlimit arguments: name, resource, limits.
pub fn rlimits(
    process: &Process,
) -> StepResult<Vec<(String, libc::__rlimit_resource_t, libc::rlimit)>> {
    let mut out = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let resource = match name.as_str() {
            "RLIMIT_CPU" => libc::RLIMIT_CPU,
            "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
            "RLIMIT_DATA" => libc::RLIMIT_DATA,
            "RLIMIT_STACK" => libc::RLIMIT_STACK,
            "RLIMIT_CORE" => libc::RLIMIT_CORE,
            "RLIMIT_RSS" => libc::RLIMIT_RSS,
            "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
            "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
            "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "RLIMIT_AS" => libc::RLIMIT_AS,
            "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
            "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "RLIMIT_NICE" => libc::RLIMIT_NICE,
            "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
            "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
            other => return Err(format!("unknown rlimit {other:?}")),
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        out.push((name, resource, lim));
    }
    Ok(out)
}

/// Capability names to the set `caps` applies; unknown names are skipped.
pub fn to_caps(set: &Option<Capabilities>) -> StepResult<CapsHashSet> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match name.parse::<Capability>() {
            Ok(cap) => {
                out.insert(cap);
            }
            // Capabilities newer than this kernel/crate are skipped, as runc does.
            Err(_) => continue,
        }
    }
    Ok(out)
}

/// Drops bounding capabilities, switches to the identity keeping the
/// spec's capabilities, then sets effective/permitted/inheritable/ambient.
pub fn switch_user(id: &Identity, capabilities: Option<&LinuxCapabilities>) -> StepResult {
    let wanted = match capabilities {
        Some(c) => Some((
            to_caps(c.bounding())?,
            to_caps(c.effective())?,
            to_caps(c.permitted())?,
            to_caps(c.inheritable())?,
            to_caps(c.ambient())?,
        )),
        None => None,
    };
    if let Some((bounding, ..)) = &wanted {
        for cap in caps::all() {
            if !bounding.contains(&cap) {
                // Unknown to this kernel is fine.
                let _ = caps::drop(None, CapSet::Bounding, cap);
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    let gid = Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {}: {e}", id.gid))?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {}: {e}", id.uid))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some((_, effective, permitted, inheritable, ambient)) = wanted {
        // Order matters: capset needs effective within permitted at every step.
        caps::set(None, CapSet::Inheritable, &inheritable)
            .map_err(|e| format!("cannot set inheritable capabilities: {e}"))?;
        let kept: CapsHashSet = effective.intersection(&permitted).copied().collect();
        caps::set(None, CapSet::Effective, &kept)
            .map_err(|e| format!("cannot set effective capabilities: {e}"))?;
        caps::set(None, CapSet::Permitted, &permitted)
            .map_err(|e| format!("cannot set permitted capabilities: {e}"))?;
        for cap in ambient {
            // Ambient needs the cap in permitted and inheritable; skip others.
            let _ = caps::raise(None, CapSet::Ambient, cap);
        }
    }
    Ok(())
}

/// Sets no_new_privs when the spec asks.
pub fn no_new_privs(process: &Process) -> StepResult {
    if process.no_new_privileges().unwrap_or(false) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,root\napp:x:1000:\n";

    #[test]
    fn passwd_and_group_lookups() {
        assert_eq!(
            passwd_lookup(PASSWD, "app").map(|e| (e.1, e.2)),
            Some((1000, 1000))
        );
        assert_eq!(passwd_by_uid(PASSWD, 65534).as_deref(), Some("nobody"));
        assert_eq!(group_lookup(GROUP, "wheel"), Some(10));
        assert_eq!(member_groups(GROUP, "app"), vec![10]);
        assert_eq!(passwd_lookup(PASSWD, "ghost"), None);
    }
}
