//! `ContainerManager`: containers from images (seed section 1.4). Pulls the
//! image if missing, unpacks it once into the snapshot cache, and gives each
//! container a copy-on-write overlay of that ext4 in
//! `<root>/containers/<id>/`, beside the container's configuration
//! (`config.json`), so `get` finds the container again from the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerization_error::{Code, ContainerizationError, Result};
use containerization_ext4::SnapshotStore;
use containerization_oci::{Image, ImageStore, Platform, PullOptions};
use tokio::sync::{Mutex, MutexGuard};

use crate::container::{Configuration, LinuxContainer, SavedConfiguration, User};
use crate::emulator::Emulator;
use crate::interface::Network;
use crate::kernel::Kernel;
use crate::mount::Mount;
use crate::rootfs::{DEFAULT_ROOTFS_SIZE, create_overlay};
use crate::vmm::{QemuVirtualMachineManager, VirtualMachineManager};

/// A container's saved configuration, in its directory.
const CONFIG_FILE: &str = "config.json";

/// Size of the sparse ext4 snapshot an image is unpacked into.
const SNAPSHOT_SIZE: u64 = containerization_ext4::DEFAULT_SNAPSHOT_SIZE;

/// Creates and deletes containers from OCI images.
#[derive(Debug)]
pub struct ContainerManager {
    image_store: Mutex<ImageStore>,
    /// Network that gives each container an interface, if any.
    pub network: Option<Arc<dyn Network>>,
    vmm: Arc<dyn VirtualMachineManager>,
    root: PathBuf,
    snapshots: SnapshotStore,
    /// Options used when an image has to be pulled.
    pub pull_options: PullOptions,
    /// Platform containers are created for. `None`: the host's from a
    /// multi-platform image, a single-platform image's own. Another
    /// architecture than the host's runs through an [`Emulator`]
    /// (qemu-user-static, whose disk image is cached in `<root>/emulators`).
    pub platform: Option<Platform>,
}

/// The state root: `$CONTAINER_ROOT`, else `/var/lib/container` for root,
/// else `$XDG_DATA_HOME/container` (docs/ARCHITECTURE.md).
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("CONTAINER_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/container");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    data.join("container")
}

impl ContainerManager {
    /// A manager booting `kernel` with `initfs` (its `source` is the
    /// initramfs), with images from `image_store`, whose state root is also
    /// where containers live.
    pub fn new(
        kernel: Kernel,
        initfs: Mount,
        image_store: ImageStore,
        network: Option<Arc<dyn Network>>,
    ) -> Result<Self> {
        let root = image_store.root().to_path_buf();
        let vmm = Arc::new(QemuVirtualMachineManager::new(kernel, initfs.source));
        Self::assemble(vmm, image_store, root, network)
    }

    /// A manager with its state under `root` (default: [`default_root`]).
    pub fn with_root(
        kernel: Kernel,
        initfs: Mount,
        root: Option<PathBuf>,
        network: Option<Arc<dyn Network>>,
    ) -> Result<Self> {
        let root = root.unwrap_or_else(default_root);
        let store = ImageStore::open(&root)?;
        let vmm = Arc::new(QemuVirtualMachineManager::new(kernel, initfs.source));
        Self::assemble(vmm, store, root, network)
    }

    /// A manager using `vmm` for VMs and the state under `root`.
    pub fn with_vmm(
        vmm: Arc<dyn VirtualMachineManager>,
        root: Option<PathBuf>,
        network: Option<Arc<dyn Network>>,
    ) -> Result<Self> {
        let root = root.unwrap_or_else(default_root);
        let store = ImageStore::open(&root)?;
        Self::assemble(vmm, store, root, network)
    }

    fn assemble(
        vmm: Arc<dyn VirtualMachineManager>,
        image_store: ImageStore,
        root: PathBuf,
        network: Option<Arc<dyn Network>>,
    ) -> Result<Self> {
        let snapshots = SnapshotStore::open(root.join("snapshots"))?;
        std::fs::create_dir_all(root.join("containers")).map_err(|e| {
            ContainerizationError::internal(format!("cannot create {}/containers", root.display()))
                .with_cause(e)
        })?;
        Ok(ContainerManager {
            image_store: Mutex::new(image_store),
            network,
            vmm,
            root,
            snapshots,
            pull_options: PullOptions::default(),
            platform: None,
        })
    }

    /// The image store.
    pub async fn image_store(&self) -> MutexGuard<'_, ImageStore> {
        self.image_store.lock().await
    }

    /// The VMM every container's VM comes from.
    pub fn vmm(&self) -> Arc<dyn VirtualMachineManager> {
        self.vmm.clone()
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Creates container `id` from the image `reference` (pulled when not
    /// present), with a root filesystem of `rootfs_size` bytes (default 8 GiB).
    pub async fn create(
        &self,
        id: &str,
        reference: &str,
        rootfs_size: Option<u64>,
        configure: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<LinuxContainer> {
        if let Some(p) = &self.platform {
            // An unknown architecture or a missing emulator fails before
            // anything is pulled.
            Emulator::interpreter_for(p)?;
        }
        let image = {
            let store = self.image_store.lock().await;
            let mut pull = self.pull_options.clone();
            if pull.platform.is_none() {
                pull.platform = self.platform.clone();
            }
            match store.get(reference) {
                Ok(i) => {
                    // Present, but perhaps without this platform's manifest.
                    let platform = i.run_platform(store.content(), self.platform.as_ref())?;
                    let listed_not_here = i.resolve_manifest(store.content(), &platform).is_err()
                        && i.index(store.content())?
                            .is_some_and(|index| platform.select(&index).is_ok());
                    if listed_not_here {
                        pull.platform = Some(platform);
                        store.pull(reference, &pull).await?
                    } else {
                        i
                    }
                }
                Err(e) if e.is_code(Code::NotFound) => store.pull(reference, &pull).await?,
                Err(e) => return Err(e),
            }
        };
        self.create_from_image(id, &image, rootfs_size, configure)
            .await
    }

    /// The platform a container of `image` runs as (see [`Self::platform`]).
    async fn platform_of(&self, image: &Image) -> Result<Platform> {
        let store = self.image_store.lock().await;
        image.run_platform(store.content(), self.platform.as_ref())
    }

    /// Creates container `id` from `image`.
    pub async fn create_from_image(
        &self,
        id: &str,
        image: &Image,
        rootfs_size: Option<u64>,
        configure: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<LinuxContainer> {
        let dir = self.container_dir(id);
        if dir.exists() {
            return Err(ContainerizationError::exists(format!(
                "container {id} already exists"
            )));
        }
        let snapshot = self.snapshot(image).await?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            ContainerizationError::internal(format!("cannot create {}", dir.display()))
                .with_cause(e)
        })?;
        let overlay = dir.join("rootfs.qcow2");
        let result = async {
            create_overlay(
                &snapshot,
                &overlay,
                rootfs_size.unwrap_or(DEFAULT_ROOTFS_SIZE),
            )
            .await?;
            let rootfs = Mount::block("ext4", &overlay, "/", Vec::new());
            let c = self.container(id, image, rootfs, &dir, configure).await?;
            c.with_config(SavedConfiguration::of)?
                .save(&dir.join(CONFIG_FILE))?;
            Ok(c)
        }
        .await;
        if result.is_err() {
            // Bad input changes nothing.
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// Creates container `id` from `image` on an explicit `rootfs` mount.
    pub async fn create_with_rootfs(
        &self,
        id: &str,
        image: &Image,
        rootfs: Mount,
        configure: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<LinuxContainer> {
        let dir = self.container_dir(id);
        if dir.exists() {
            return Err(ContainerizationError::exists(format!(
                "container {id} already exists"
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            ContainerizationError::internal(format!("cannot create {}", dir.display()))
                .with_cause(e)
        })?;
        let result = async {
            let c = self.container(id, image, rootfs, &dir, configure).await?;
            c.with_config(SavedConfiguration::of)?
                .save(&dir.join(CONFIG_FILE))?;
            Ok(c)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// The container `id` this manager (or another on the same root) created
    /// from `image`, configured as it was created, on the same root
    /// filesystem (what it wrote is there), `Initialized`: `start` it, or
    /// `delete` it. Its init process has no stdio until
    /// [`LinuxContainer::reconfigure`] gives it some.
    pub async fn get(&self, id: &str, image: &Image) -> Result<LinuxContainer> {
        let dir = self.container_dir(id);
        let overlay = dir.join("rootfs.qcow2");
        if !overlay.exists() {
            return Err(ContainerizationError::not_found(format!(
                "container {id} not found"
            )));
        }
        let saved = SavedConfiguration::load(&dir.join(CONFIG_FILE))?;
        let rootfs = Mount::block("ext4", &overlay, "/", Vec::new());
        self.container(id, image, rootfs, &dir, move |c| {
            if let Some(saved) = saved {
                saved.apply(c);
            }
            Ok(())
        })
        .await
    }

    /// Deletes container `id`: its rootfs overlay and files, and its network
    /// interface. The container must be stopped.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Err(ContainerizationError::not_found(format!(
                "container {id} not found"
            )));
        }
        if let Some(net) = &self.network {
            net.release(id).await?;
        }
        std::fs::remove_dir_all(&dir).map_err(|e| {
            ContainerizationError::internal(format!("cannot remove {}", dir.display()))
                .with_cause(e)
        })
    }

    /// The image's ext4 snapshot, unpacked on first use.
    async fn snapshot(&self, image: &Image) -> Result<PathBuf> {
        let platform = self.platform_of(image).await?;
        let (key, layers) = {
            let store = self.image_store.lock().await;
            let content = store.content();
            let (desc, manifest) = image.resolve_manifest(content, &platform)?;
            let layers: Vec<PathBuf> = manifest
                .layers()
                .iter()
                .map(|l| content.blob_path(l.digest().as_ref()))
                .collect();
            (desc.digest().to_string(), layers)
        };
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.get_or_create(&key, &layers, SNAPSHOT_SIZE))
            .await
            .map_err(|e| {
                ContainerizationError::internal("image unpack task failed").with_cause(e)
            })?
    }

    async fn container(
        &self,
        id: &str,
        image: &Image,
        rootfs: Mount,
        dir: &Path,
        configure: impl FnOnce(&mut Configuration) -> Result<()>,
    ) -> Result<LinuxContainer> {
        let platform = self.platform_of(image).await?;
        let image_config = {
            let store = self.image_store.lock().await;
            image.config(store.content(), &platform)?
        };
        let emulator_cache = self.root.join("emulators");
        let emulator =
            tokio::task::spawn_blocking(move || Emulator::prepare(&platform, &emulator_cache))
                .await
                .map_err(|e| {
                    ContainerizationError::internal("emulator image task failed").with_cause(e)
                })??;
        let interface = match &self.network {
            Some(net) => Some(net.create(id).await?),
            None => None,
        };
        let bootlog = dir.join("bootlog");
        LinuxContainer::new(id, rootfs, self.vmm.clone(), move |c| {
            if let Some(cfg) = image_config.config() {
                let mut args: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
                args.extend(cfg.cmd().clone().unwrap_or_default());
                c.process.args = args;
                if let Some(env) = cfg.env() {
                    c.process.env = env.clone();
                }
                if let Some(wd) = cfg.working_dir().as_ref().filter(|w| !w.is_empty()) {
                    c.process.cwd = wd.clone();
                }
                if let Some(user) = cfg.user().as_ref().filter(|u| !u.is_empty()) {
                    c.process.user = User::parse(user)?;
                }
            }
            c.bootlog = Some(bootlog);
            c.emulator = emulator;
            if let Some(i) = interface {
                c.interfaces.push(Arc::from(i));
            }
            configure(c)
        })
    }
}
