//! Seed section 12.4: share a host directory and attach a block device.
//!
//! `cargo run -p containerization --example mounts -- IMAGE HOST_DIR DISK.ext4`
//! (the share needs `virtiofsd`: cargo install virtiofsd --locked)

use containerization::{ContainerManager, Kernel, Mount, Stdio, default_initfs};

#[tokio::main]
async fn main() -> containerization::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, host_dir, disk] = args.as_slice() else {
        eprintln!("usage: mounts IMAGE HOST_DIR DISK.ext4");
        std::process::exit(2);
    };
    let shared_mount = Mount::share(host_dir, "/mnt/data", vec!["ro".into()]);
    let block_mount = Mount::block("ext4", disk, "/mnt/disk", vec![]);

    let kernel = Kernel::default_kernel()?;
    let initfs = Mount::block("cpio", default_initfs()?, "/", vec![]);
    let manager = ContainerManager::with_root(kernel, initfs, None, None)?;
    let container = manager
        .create("mounts-example", reference, None, |config| {
            config.mounts = vec![shared_mount, block_mount];
            config.process.args = vec!["ls".into(), "/mnt/data".into(), "/mnt/disk".into()];
            config.process.stdout = Stdio::Inherit;
            config.process.stderr = Stdio::Inherit;
            Ok(())
        })
        .await?;
    container.create().await?;
    container.start().await?;
    let status = container.wait(None).await?;
    container.stop().await?;
    manager.delete("mounts-example").await?;
    std::process::exit(status.exit_code);
}
