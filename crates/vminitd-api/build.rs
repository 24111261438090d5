//! Compiles `proto/sandbox.proto` with protox (pure Rust; no protoc needed)
//! and generates the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sandbox.proto");
    let fds = protox::compile(["proto/sandbox.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
