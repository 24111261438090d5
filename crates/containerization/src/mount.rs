//! Filesystem mounts given to a container (seed section 5.1).

use std::path::Path;

/// How a mount reaches the VM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RuntimeOptions {
    /// A virtio-blk device, with extra device options.
    Virtioblk(Vec<String>),
    /// A virtio-fs share, with extra share options.
    Virtiofs(Vec<String>),
    /// Mounted inside the guest only (tmpfs, proc, bind of a guest path).
    Any,
}

/// A mount (seed `Mount`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// Filesystem type (`ext4`, `virtiofs`, `tmpfs`, ...).
    pub r#type: String,
    /// Host path (block, share) or guest source (any).
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Mount options (`ro`, ...).
    pub options: Vec<String>,
    /// How it is attached to the VM.
    pub runtime_options: RuntimeOptions,
}

impl Mount {
    /// A block-device mount: the file or device `source` formatted as `format`.
    pub fn block(
        format: &str,
        source: impl AsRef<Path>,
        destination: &str,
        options: Vec<String>,
    ) -> Mount {
        Mount {
            r#type: format.to_string(),
            source: source.as_ref().to_string_lossy().into_owned(),
            destination: destination.to_string(),
            options,
            runtime_options: RuntimeOptions::Virtioblk(Vec::new()),
        }
    }

    /// A host directory shared over virtio-fs.
    pub fn share(source: impl AsRef<Path>, destination: &str, options: Vec<String>) -> Mount {
        Mount {
            r#type: "virtiofs".to_string(),
            source: source.as_ref().to_string_lossy().into_owned(),
            destination: destination.to_string(),
            options,
            runtime_options: RuntimeOptions::Virtiofs(Vec::new()),
        }
    }

    /// A mount made inside the guest only (e.g. tmpfs).
    pub fn any(r#type: &str, source: &str, destination: &str, options: Vec<String>) -> Mount {
        Mount {
            r#type: r#type.to_string(),
            source: source.to_string(),
            destination: destination.to_string(),
            options,
            runtime_options: RuntimeOptions::Any,
        }
    }

    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        let b = Mount::block("ext4", "/tmp/x.ext4", "/data", vec![]);
        assert_eq!(b.runtime_options, RuntimeOptions::Virtioblk(vec![]));
        let s = Mount::share("/srv", "/mnt", vec!["ro".into()]);
        assert!(s.read_only());
        assert_eq!(s.r#type, "virtiofs");
        let t = Mount::any("tmpfs", "tmpfs", "/tmp", vec![]);
        assert_eq!(t.runtime_options, RuntimeOptions::Any);
    }
}
