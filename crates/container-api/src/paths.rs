//! Where the state lives: the state root and the well-known files under it.

use std::path::{Path, PathBuf};

/// The state root (`--root`, else `$CONTAINER_ROOT`, else the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRoot(PathBuf);

impl StateRoot {
    /// Resolves the root: an explicit path, else `$CONTAINER_ROOT`, else
    /// `/var/lib/container` as root, else `$XDG_DATA_HOME/container`.
    pub fn resolve(explicit: Option<&Path>) -> StateRoot {
        if let Some(p) = explicit {
            return StateRoot(absolute(p));
        }
        if let Some(p) = std::env::var_os("CONTAINER_ROOT").filter(|v| !v.is_empty()) {
            return StateRoot(absolute(Path::new(&p)));
        }
        StateRoot(default_root())
    }

    /// Wraps an already resolved path.
    pub fn new(path: impl Into<PathBuf>) -> StateRoot {
        StateRoot(absolute(&path.into()))
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The apiserver's gRPC socket.
    pub fn apiserver_socket(&self) -> PathBuf {
        self.0.join("apiserver.sock")
    }

    /// The apiserver's pid file.
    pub fn apiserver_pid(&self) -> PathBuf {
        self.0.join("apiserver.pid")
    }

    /// The directory of daemon logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.0.join("logs")
    }

    /// The apiserver's log file.
    pub fn apiserver_log(&self) -> PathBuf {
        self.logs_dir().join("apiserver.log")
    }

    /// The directory of one container's bundle.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.0.join("containers").join(id)
    }

    /// The directory of all named volumes.
    pub fn volumes_dir(&self) -> PathBuf {
        self.0.join("volumes")
    }

    /// The directory of one volume (`volume.img`, `volume.json`).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// The SQLite database of container records.
    pub fn containers_db(&self) -> PathBuf {
        self.0.join("containers.db")
    }
}

fn default_root() -> PathBuf {
    if nix_is_root() {
        return PathBuf::from("/var/lib/container");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("container")
}

fn nix_is_root() -> bool {
    // /proc/self is owned by the effective uid; avoids a libc dependency here.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_root_wins_and_is_absolute() {
        let r = StateRoot::resolve(Some(Path::new("rel/dir")));
        assert!(r.path().is_absolute());
        assert!(r.apiserver_socket().ends_with("rel/dir/apiserver.sock"));
    }
}
