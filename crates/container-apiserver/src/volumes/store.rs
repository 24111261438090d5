//! `VolumeStore`: one directory per volume under `<root>/volumes/`, holding
//! `volume.img` (ext4 with a journal, made by our formatter; sparse) and
//! `volume.json`. A volume appears by renaming a complete temp directory
//! into place, so a crash never leaves a half-made volume visible.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use container_api::StateRoot;
use container_api::volume::{
    ANONYMOUS_LABEL, Volume, invalid_name, size_from_options, valid_volume_name,
};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_ext4::{FormatOptions, Formatter, JournalMode, JournalOptions};

/// File name of a volume's ext4 image.
pub(crate) const IMAGE: &str = "volume.img";
const META: &str = "volume.json";

/// The image files to copy into a new volume: (image ext4, directory in it).
pub(crate) type Seed<'a> = Option<(&'a Path, &'a str)>;

/// Volumes under one state root.
#[derive(Debug, Clone)]
pub(crate) struct VolumeStore {
    dir: PathBuf,
}

fn journal(options: &BTreeMap<String, String>) -> Result<JournalOptions> {
    let Some(spec) = options.get("journal") else {
        return Ok(JournalOptions::default());
    };
    let (mode, size) = match spec.split_once(':') {
        Some((m, s)) => (m, Some(container_api::volume::parse_size(s)?)),
        None => (spec.as_str(), None),
    };
    let mode = match mode {
        "ordered" => JournalMode::Ordered,
        "writeback" => JournalMode::Writeback,
        "journal" => JournalMode::Journal,
        _ => {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid journal option '{spec}': use ordered, writeback or journal, with an optional :size"
            )));
        }
    };
    Ok(JournalOptions {
        size_bytes: size,
        mode,
    })
}

/// Checks the options a volume may be created with.
fn check_options(options: &BTreeMap<String, String>) -> Result<()> {
    for k in options.keys() {
        if k != "size" && k != "journal" {
            return Err(ContainerizationError::invalid_argument(format!(
                "unknown volume option '{k}': supported are size and journal"
            )));
        }
    }
    Ok(())
}

/// A random name for an anonymous volume (64 hex digits, as Docker's).
pub(crate) fn anonymous_name() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl VolumeStore {
    /// The store under `root` (the directory is made on first create).
    pub(crate) fn new(root: &StateRoot) -> Self {
        VolumeStore {
            dir: root.volumes_dir(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Host path of a volume's image.
    pub(crate) fn image_path(&self, name: &str) -> PathBuf {
        self.path(name).join(IMAGE)
    }

    /// Creates volume `name`; `seed` files are copied in. Errors with
    /// `Exists` if it already exists.
    pub(crate) fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
        seed: Seed<'_>,
    ) -> Result<Volume> {
        if !valid_volume_name(name) {
            return Err(invalid_name(name));
        }
        check_options(&options)?;
        let size = size_from_options(&options)?;
        let journal = journal(&options)?;
        let dir = self.path(name);
        if dir.exists() {
            return Err(ContainerizationError::exists(format!(
                "volume '{name}' already exists"
            )));
        }
        std::fs::create_dir_all(&self.dir).context(
            Code::InternalError,
            format!("creating {}", self.dir.display()),
        )?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&self.dir)
            .context(Code::InternalError, "creating a volume directory")?;
        let mut labels = labels;
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), "true".into());
        }
        let mut volume = Volume {
            name: name.to_string(),
            driver: "local".into(),
            format: "ext4".into(),
            source: dir.join(IMAGE).to_string_lossy().into_owned(),
            labels,
            options,
            size_in_bytes: size,
            created_at: chrono::Utc::now().to_rfc3339(),
            anonymous,
            initialized: seed.is_some(),
        };
        volume.size_in_bytes = format_image(&tmp.path().join(IMAGE), size, journal, seed)?;
        write_meta(tmp.path(), &volume)?;
        let tmp = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(if dir.exists() {
                ContainerizationError::exists(format!("volume '{name}' already exists"))
            } else {
                ContainerizationError::internal(format!("cannot create volume '{name}'"))
                    .with_cause(e)
            });
        }
        containerization::sync_dir(&self.dir)?;
        tracing::info!(volume = %name, size, anonymous, "volume created");
        Ok(volume)
    }

    /// Formats a never-mounted volume again with `seed` copied in, and marks
    /// it initialized (Docker fills an empty volume on its first mount).
    pub(crate) fn initialize(&self, name: &str, seed: Seed<'_>) -> Result<Volume> {
        let mut v = self.get(name)?;
        if v.initialized {
            return Ok(v);
        }
        if seed.is_some() {
            let tmp = self.path(name).join("volume.img.tmp");
            let size = format_image(&tmp, v.size_in_bytes, journal(&v.options)?, seed)?;
            std::fs::rename(&tmp, self.image_path(name))
                .context(Code::InternalError, format!("initializing volume '{name}'"))?;
            v.size_in_bytes = size;
        }
        v.initialized = true;
        write_meta(&self.path(name), &v)?;
        Ok(v)
    }

    /// Removes volumes a killed apiserver left half-made (`.new-*`
    /// directories, `volume.img.tmp`); only the apiserver makes volumes, so
    /// at its start-up none is in progress. Returns how many went.
    pub(crate) fn remove_partial(&self) -> usize {
        let mut removed = 0;
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = e.path();
            let gone = if e.file_name().to_string_lossy().starts_with(".new-") {
                std::fs::remove_dir_all(&path).is_ok()
            } else {
                std::fs::remove_file(path.join("volume.img.tmp")).is_ok()
            };
            removed += usize::from(gone);
        }
        removed
    }

    /// Volume `name`, or `NotFound`.
    pub(crate) fn get(&self, name: &str) -> Result<Volume> {
        if !valid_volume_name(name) {
            return Err(invalid_name(name));
        }
        let meta = self.path(name).join(META);
        let text = match std::fs::read(&meta) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContainerizationError::not_found(format!(
                    "volume '{name}' not found"
                )));
            }
            Err(e) => {
                return Err(
                    ContainerizationError::internal(format!("reading {}", meta.display()))
                        .with_cause(e),
                );
            }
        };
        serde_json::from_slice(&text).context(
            Code::InternalError,
            format!("{} is not valid volume metadata", meta.display()),
        )
    }

    /// Every volume, sorted by name.
    pub(crate) fn list(&self) -> Result<Vec<Volume>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(ContainerizationError::internal(format!(
                    "reading {}",
                    self.dir.display()
                ))
                .with_cause(e));
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(e) => tracing::warn!(volume = %name, "skipping unreadable volume: {e}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Host disk space a volume's image takes.
    pub(crate) fn disk_usage(&self, name: &str) -> u64 {
        std::fs::metadata(self.image_path(name))
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }

    /// Removes volume `name` (the caller checked it is unused); returns the
    /// bytes reclaimed.
    pub(crate) fn remove(&self, name: &str) -> Result<u64> {
        self.get(name)?;
        let used = self.disk_usage(name);
        // Rename first so the volume disappears at once, even if removing
        // its files is interrupted.
        let trash = self.dir.join(format!(".del-{name}"));
        let _ = std::fs::remove_dir_all(&trash);
        std::fs::rename(self.path(name), &trash)
            .context(Code::InternalError, format!("removing volume '{name}'"))?;
        containerization::sync_dir(&self.dir)?;
        std::fs::remove_dir_all(&trash)
            .context(Code::InternalError, format!("removing {}", trash.display()))?;
        tracing::info!(volume = %name, "volume deleted");
        Ok(used)
    }
}

fn write_meta(dir: &Path, v: &Volume) -> Result<()> {
    let json = serde_json::to_vec_pretty(v).context(Code::InternalError, "encoding a volume")?;
    containerization::write_atomic(&dir.join(META), &json)
}

/// Writes an ext4 image with a journal at `path`; returns its capacity.
fn format_image(path: &Path, size: u64, journal: JournalOptions, seed: Seed<'_>) -> Result<u64> {
    let opts = FormatOptions {
        journal: Some(journal),
        ..Default::default()
    };
    let mut f = Formatter::create(path, size, opts)?;
    if let Some((image, dir)) = seed {
        super::seed::copy_image_dir(image, dir, &mut f)?;
    }
    let capacity = f.size_bytes();
    f.close()?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .context(Code::InternalError, format!("syncing {}", path.display()))?;
    Ok(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_get_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(&StateRoot::new(dir.path()));
        let mut opts = BTreeMap::new();
        opts.insert("size".to_string(), "64M".to_string());
        let v = store
            .create("data", BTreeMap::new(), opts.clone(), false, None)
            .unwrap();
        assert_eq!(v.size_in_bytes, 64 << 20);
        assert!(!v.initialized);
        let err = store
            .create("data", BTreeMap::new(), opts.clone(), false, None)
            .unwrap_err();
        assert!(err.is_code(Code::Exists), "{err}");
        assert!(
            store
                .create("bad/name", BTreeMap::new(), opts.clone(), false, None)
                .unwrap_err()
                .is_code(Code::InvalidArgument)
        );
        let mut bad = opts.clone();
        bad.insert("colour".into(), "red".into());
        assert!(
            store
                .create("x", BTreeMap::new(), bad, false, None)
                .is_err()
        );
        assert!(!store.path("x").exists(), "bad input changes nothing");
        containerization_ext4::e2fsck_check(&store.image_path("data"))
            .unwrap_or_else(|e| panic!("{e}"));
        let anon = anonymous_name();
        store
            .create(&anon, BTreeMap::new(), opts, true, None)
            .unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 2);
        assert!(store.get(&anon).unwrap().anonymous);
        assert!(store.initialize("data", None).unwrap().initialized);
        store.remove("data").unwrap();
        assert!(store.get("data").unwrap_err().is_code(Code::NotFound));
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
