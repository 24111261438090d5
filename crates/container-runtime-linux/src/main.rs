//! `container-runtime-linux`: the helper process of one container.

fn main() {
    std::process::exit(container_runtime_linux::main_with_args(std::env::args_os()));
}
