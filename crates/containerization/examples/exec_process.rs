//! Seed section 12.2: execute a process in a running container.
//!
//! `cargo run -p containerization --example exec_process -- IMAGE`

use containerization::{ContainerManager, Kernel, Mount, Stdio, default_initfs};

#[tokio::main]
async fn main() -> containerization::Result<()> {
    let reference = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "busybox:latest".into());
    let kernel = Kernel::default_kernel()?;
    let initfs = Mount::block("cpio", default_initfs()?, "/", vec![]);
    let manager = ContainerManager::with_root(kernel, initfs, None, None)?;
    let container = manager
        .create("exec-example", &reference, None, |config| {
            config.process.args = vec!["sleep".into(), "3600".into()];
            Ok(())
        })
        .await?;
    container.create().await?;
    container.start().await?;

    let process = container
        .exec("shell", |config| {
            config.args = vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo hello from $(hostname); pwd".into(),
            ];
            config.env = vec!["PATH=/usr/bin:/bin".into()];
            config.cwd = "/root".into();
            config.stdout = Stdio::Inherit;
            Ok(())
        })
        .await?;
    process.start().await?;
    let status = process.wait(None).await?;
    println!("exec exited with code: {}", status.exit_code);

    container.stop().await?;
    manager.delete("exec-example").await?;
    Ok(())
}
