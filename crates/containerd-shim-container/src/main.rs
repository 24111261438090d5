//! `containerd-shim-container-v2`: the containerd shim v2 of runtime type
//! `io.containerd.container.v2`; every task runs in its own QEMU microVM.

use containerd_shim_container::service::{ContainerShim, RUNTIME_ID, config};

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(containerd_shim::asynchronous::run::<ContainerShim>(
        RUNTIME_ID,
        Some(config()),
    ));
    // Exit at once: a blocking read of a stdio FIFO may still hold a thread.
    std::process::exit(0)
}
