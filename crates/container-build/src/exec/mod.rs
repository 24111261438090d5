//! The executor: builds the stages a target needs into an OCI image in the
//! local store. Layers of COPY/ADD/WORKDIR are written on the host; RUN
//! runs in a VM ([`run`]) and its layer is the diff of the ext4 root
//! filesystem before and after ([`diff`]). Every step is cached by a key
//! chained from its parent ([`cache`]).

mod batch;
pub mod cache;
pub mod config;
pub mod copy;
pub mod diff;
pub mod export;
pub mod image;
pub mod layer;
pub mod progress;
pub mod rootfs;
pub mod run;
mod stage;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_oci::{ImageStore, Platform};

use crate::ast::Dockerfile;
use crate::dockerignore::DockerIgnore;
use cache::BuildCache;
pub use image::BuiltImage;
use progress::Reporter;
use run::RunExecutor;
pub use stage::StageResult;
use tree::HostTree;

/// A `--secret` value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The secret's bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.data.len())
    }
}

/// Everything a build needs besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: HashMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `-t` references.
    pub tags: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: fetch base images even when present.
    pub pull: bool,
    /// Platform to build for (the host's).
    pub platform: Platform,
    /// `--label` pairs added to the image.
    pub labels: Vec<(String, String)>,
    /// `--secret` values by id.
    pub secrets: HashMap<String, Secret>,
    /// CPUs of each build VM.
    pub cpus: u32,
    /// Memory of each build container in bytes.
    pub memory: u64,
}

impl BuildOptions {
    /// Defaults for building `context`.
    pub fn new(context: &Path) -> BuildOptions {
        BuildOptions {
            context: context.to_path_buf(),
            build_args: HashMap::new(),
            target: None,
            tags: Vec::new(),
            no_cache: false,
            pull: false,
            platform: Platform::host(),
            labels: Vec::new(),
            secrets: HashMap::new(),
            cpus: 2,
            memory: 1 << 30,
        }
    }
}

/// Builds Dockerfiles against one state root.
pub struct Builder {
    store: ImageStore,
    cache: BuildCache,
    runner: Arc<dyn RunExecutor>,
    reporter: Arc<dyn Reporter>,
    work: tempfile::TempDir,
    /// Unpacked filesystems by layer chain, reused within one build.
    unpacked: Mutex<HashMap<String, PathBuf>>,
    next_id: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Builder({})", self.store.root().display())
    }
}

impl Builder {
    /// A builder writing into the stores of `state_root`, running RUN with
    /// `runner` and reporting to `reporter`.
    pub fn new(
        state_root: &Path,
        runner: Arc<dyn RunExecutor>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Builder> {
        let store = ImageStore::open(state_root)?;
        let cache = BuildCache::open(state_root)?;
        let tmp = state_root.join("build-tmp");
        std::fs::create_dir_all(&tmp)
            .context(Code::InternalError, format!("creating {}", tmp.display()))?;
        remove_stale(&tmp);
        let work = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&tmp)
            .context(Code::InternalError, "creating the build directory")?;
        Ok(Builder {
            store,
            cache,
            runner,
            reporter,
            work,
            unpacked: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The image store the build writes to.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Builds `dockerfile` (already parsed with `opts.build_args`); returns
    /// the image of the target stage, tagged with `opts.tags`.
    pub async fn build(&self, dockerfile: &Dockerfile, opts: &BuildOptions) -> Result<BuiltImage> {
        if !opts.platform.matches(&Platform::host()) {
            return Err(ContainerizationError::unsupported(format!(
                "cannot build for {}: only the host platform ({}) can be built (no binfmt emulation in the build VM)",
                opts.platform,
                Platform::host()
            )));
        }
        let ignore_path = opts.context.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&ignore_path) {
            Ok(t) => DockerIgnore::parse(&t)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(e) => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "cannot read {}",
                    ignore_path.display()
                ))
                .with_cause(e));
            }
        };
        if !opts.context.is_dir() {
            return Err(ContainerizationError::not_found(format!(
                "build context {} is not a directory",
                opts.context.display()
            )));
        }
        let context = HostTree::new(&opts.context, ignore);
        let needed = dockerfile.target_stages(opts.target.as_deref())?;
        let target = *needed.last().expect("target_stages is never empty");
        let edges = dockerfile.dependency_edges();
        let mut built: Vec<Option<StageResult>> = vec![None; dockerfile.stages.len()];
        // Waves of stages whose dependencies are built run concurrently.
        loop {
            let ready: Vec<usize> = needed
                .iter()
                .copied()
                .filter(|&i| built[i].is_none() && edges[i].iter().all(|d| built[*d].is_some()))
                .collect();
            if ready.is_empty() {
                break;
            }
            let results = futures::future::try_join_all(
                ready
                    .iter()
                    .map(|&i| self.build_stage(dockerfile, i, &built, &context, opts)),
            )
            .await?;
            for (i, r) in ready.into_iter().zip(results) {
                built[i] = Some(r);
            }
        }
        let result = built[target]
            .take()
            .ok_or_else(|| ContainerizationError::internal("the target stage was not built"))?;
        let mut config = result.config.clone();
        config.add_labels(&opts.labels);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // An unchanged rebuild keeps its first `created`, hence its digest.
        let created = if opts.no_cache {
            now
        } else {
            let labels: Vec<String> = opts
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let key = cache::chain(&result.key, &[&labels.join("\n")]);
            self.cache.created(&key, &now)?
        };
        let image = image::write_image(
            self.store.content(),
            &result.layers,
            &config,
            &result.history,
            &created,
        )?;
        image::tag_image(&self.store, &image, &opts.tags)?;
        Ok(image)
    }

    /// Writes the filesystem of `image` into the directory `dest`.
    pub fn export_local(&self, image: &BuiltImage, dest: &Path) -> Result<()> {
        let fs = tree::Ext4Tree::open(&self.unpacked(&image.layers)?)?;
        export::export_tree(&fs, "", dest)
    }

    /// The filesystem of `layers` unpacked into an ext4 image (shared
    /// within this build; callers must not write to it).
    fn unpacked(&self, layers: &[layer::LayerRef]) -> Result<PathBuf> {
        let key = cache::chain(
            "fs",
            &layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>(),
        );
        if let Some(p) = self.unpacked.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let path = self.work.path().join(format!("fs-{}.ext4", &key[..16]));
        if !path.exists() {
            rootfs::materialize(self.store.content(), layers, &path)?;
        }
        if let Ok(mut m) = self.unpacked.lock() {
            m.insert(key, path.clone());
        }
        Ok(path)
    }

    /// A fresh private path in the build directory.
    fn scratch_path(&self, what: &str) -> PathBuf {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.work.path().join(format!("{what}-{n}"))
    }
}

/// Removes build directories a killed build left behind (older than a day,
/// so a build running right now is never touched).
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
