//! `container-apiserver`: the daemon behind the `container` CLI.

fn main() {
    std::process::exit(container_apiserver::main_with_args(std::env::args_os()));
}
