//! `container-build`: the Dockerfile and `.dockerignore` parser used by
//! `container build`.
//!
//! [`parse`] turns Dockerfile text into [`Dockerfile`]: parser directives,
//! global ARGs and stages of typed [`Instruction`]s, with variables expanded
//! as Docker does (ADD, ARG, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL,
//! USER, VOLUME, WORKDIR; never RUN, CMD, ENTRYPOINT or ONBUILD triggers).
//! [`Dockerfile::target_stages`] and [`Dockerfile::dependency_edges`] give
//! the executor its build plan. Every error is `InvalidArgument` with a
//! message that starts `Dockerfile:<line>:`.
//!
//! [`exec`] runs the plan: each needed stage becomes an OCI image in the
//! local store, RUN steps in VMs, every step cached.

mod ast;
mod copy;
mod dockerignore;
mod error;
pub mod exec;
mod flags;
mod glob;
mod graph;
mod healthcheck;
mod instructions;
mod lines;
mod mount;
mod parse;
pub mod shell;
mod stage;

pub use ast::*;
pub use dockerignore::{DockerIgnore, Pattern};
pub use healthcheck::parse_duration;
pub use parse::{ImageEnv, ParseOptions, parse, parse_with};

/// Entry point for a cargo-fuzz target: parsing arbitrary bytes must never
/// panic (errors are fine).
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut args = std::collections::HashMap::new();
    args.insert("FUZZ".to_string(), "x y".to_string());
    if let Ok(df) = parse(text, &args) {
        let _ = df.target_stages(None);
        let _ = df.dependency_edges();
        for s in &df.stages {
            let _ = df.target_stages(s.name.as_deref());
        }
    }
    if let Ok(ignore) = DockerIgnore::parse(text) {
        let _ = ignore.is_excluded("a/b/c.txt");
    }
}
