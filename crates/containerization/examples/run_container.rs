//! Seed section 12.1: create a container from an image and wait for it.
//!
//! `cargo run -p containerization --example run_container -- IMAGE [CMD...]`
//! (IMAGE must be in the image store at $CONTAINER_ROOT, or pullable).

use containerization::{ContainerManager, Kernel, Mount, Stdio, default_initfs};

#[tokio::main]
async fn main() -> containerization::Result<()> {
    let mut args = std::env::args().skip(1);
    let reference = args.next().unwrap_or_else(|| "busybox:latest".into());
    let cmd: Vec<String> = args.collect();

    let kernel = Kernel::default_kernel()?;
    let initfs = Mount::block("cpio", default_initfs()?, "/", vec![]);
    let manager = ContainerManager::with_root(kernel, initfs, None, None)?;

    let container = manager
        .create("my-container", &reference, None, |config| {
            config.cpus = 1;
            config.memory_in_bytes = 256 << 20;
            if !cmd.is_empty() {
                config.process.args = cmd;
            }
            config.process.stdout = Stdio::Inherit;
            config.process.stderr = Stdio::Inherit;
            Ok(())
        })
        .await?;
    container.create().await?;
    container.start().await?;
    let status = container.wait(None).await?;
    println!("Container exited with code: {}", status.exit_code);
    container.stop().await?;
    manager.delete("my-container").await?;
    Ok(())
}
