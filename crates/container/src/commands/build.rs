//! `container build`: builds an image from a Dockerfile in this process,
//! writing the state root's stores directly (SQLite WAL and atomic blob
//! files, so a running apiserver sees the image at once) and running each
//! RUN in its own VM through the library.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use container_api::StateRoot;
use container_build::exec::progress::PlainReporter;
use container_build::exec::run::VmRunExecutor;
use container_build::exec::{BuildOptions, Builder, Secret};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_oci::Platform;

use super::container::args::parse_memory;

/// How build progress is shown.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BuildProgress {
    /// Plain lines (the same as `plain`; there is no live view yet).
    Auto,
    /// One line per step and per output line.
    Plain,
    /// Same as plain.
    Tty,
}

/// Flags of `container build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name (and optionally tag) of the image; repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Path to the Dockerfile (default: PATH/Dockerfile, else PATH/Containerfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Build-time variable KEY=VALUE (KEY alone takes the value from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cached steps.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images even when they are present locally.
    #[arg(long)]
    pub pull: bool,
    /// Print only the image reference (or digest) at the end.
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = BuildProgress::Auto)]
    pub progress: BuildProgress,
    /// Platform os/arch[/variant]; only the host's can be built.
    #[arg(long)]
    pub platform: Option<String>,
    /// Architecture; only the host's can be built.
    #[arg(short = 'a', long)]
    pub arch: Option<String>,
    /// Output: type=oci|tar|local[,dest=PATH] (default: the local image store).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label KEY=VALUE added to the image; repeatable.
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR.
    #[arg(long)]
    pub secret: Vec<String>,
    /// CPUs of each build VM.
    #[arg(short = 'c', long)]
    pub cpus: Option<u32>,
    /// Memory of each build VM (e.g. 1G).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Build context directory.
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

/// Where the result goes besides the image store.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    /// The store only.
    Store,
    /// An OCI archive at the path.
    Archive(PathBuf),
    /// The filesystem into the directory.
    Local(PathBuf),
}

fn parse_output(s: &str) -> Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "-o {s}: expected type=oci|tar|local[,dest=PATH]"
                )));
            }
        }
    }
    let need = |what: &str| {
        dest.clone().ok_or_else(|| {
            ContainerizationError::invalid_argument(format!("-o type={what} needs dest=PATH"))
        })
    };
    match kind.as_deref() {
        Some("oci") => Ok(dest.map(Output::Archive).unwrap_or(Output::Store)),
        Some("tar") => Ok(Output::Archive(need("tar")?)),
        Some("local") => Ok(Output::Local(need("local")?)),
        _ => Err(ContainerizationError::invalid_argument(format!(
            "-o {s}: type must be oci, tar or local"
        ))),
    }
}

fn key_values(items: &[String], what: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if what == "--build-arg" && !kv.is_empty() => {
                Ok((kv.clone(), std::env::var(kv).unwrap_or_default()))
            }
            _ => Err(ContainerizationError::invalid_argument(format!(
                "{what} {kv}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

fn parse_secret(s: &str) -> Result<(String, Secret)> {
    let (mut id, mut src, mut env) = (None, None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            _ => {
                return Err(ContainerizationError::invalid_argument(format!(
                    "--secret {s}: expected id=ID,src=FILE or id=ID,env=VAR"
                )));
            }
        }
    }
    let id = id.ok_or_else(|| {
        ContainerizationError::invalid_argument(format!("--secret {s}: id= is required"))
    })?;
    let data = match (src, env) {
        (Some(f), None) => {
            std::fs::read(&f).context(Code::NotFound, format!("--secret {id}: cannot read {f}"))?
        }
        (None, Some(v)) => std::env::var(&v)
            .map_err(|_| {
                ContainerizationError::not_found(format!(
                    "--secret {id}: environment variable {v} is not set"
                ))
            })?
            .into_bytes(),
        _ => {
            return Err(ContainerizationError::invalid_argument(format!(
                "--secret {s}: give exactly one of src=FILE or env=VAR"
            )));
        }
    };
    Ok((id, Secret { data }))
}

fn dockerfile_path(a: &BuildArgs) -> Result<PathBuf> {
    if let Some(f) = &a.file {
        return Ok(f.clone());
    }
    let docker = a.path.join("Dockerfile");
    let container = a.path.join("Containerfile");
    if !docker.exists() && container.exists() {
        return Ok(container);
    }
    Ok(docker)
}

fn platform(a: &BuildArgs) -> Result<Platform> {
    match (&a.platform, &a.arch) {
        (Some(p), _) => Platform::parse(p),
        (None, Some(arch)) => Ok(Platform::from_arch(arch)),
        (None, None) => Ok(Platform::host()),
    }
}

/// Runs `container build`.
pub async fn run(root: &StateRoot, a: BuildArgs) -> Result<i32> {
    let output = a
        .output
        .as_deref()
        .map(parse_output)
        .transpose()?
        .unwrap_or(Output::Store);
    let file = dockerfile_path(&a)?;
    let text = std::fs::read_to_string(&file).context(
        Code::NotFound,
        format!("cannot read the Dockerfile {}", file.display()),
    )?;
    let build_args: HashMap<String, String> = key_values(&a.build_args, "--build-arg")?
        .into_iter()
        .collect();
    let labels = key_values(&a.labels, "--label")?;
    let mut secrets = HashMap::new();
    for s in &a.secret {
        let (id, v) = parse_secret(s)?;
        secrets.insert(id, v);
    }
    let dockerfile = container_build::parse(&text, &build_args)?;
    let context = std::path::absolute(&a.path).context(
        Code::InvalidArgument,
        format!("invalid context path {}", a.path.display()),
    )?;
    let mut opts = BuildOptions::new(&context);
    opts.build_args = build_args;
    opts.target = a.target.clone();
    opts.tags = a.tags.clone();
    opts.no_cache = a.no_cache;
    opts.pull = a.pull;
    opts.platform = platform(&a)?;
    opts.labels = labels;
    opts.secrets = secrets;
    if let Some(c) = a.cpus {
        opts.cpus = c.max(1);
    }
    if let Some(m) = &a.memory {
        opts.memory = parse_memory(m)?;
    }
    std::fs::create_dir_all(root.path()).context(
        Code::InternalError,
        format!("creating {}", root.path().display()),
    )?;
    let reporter = Arc::new(PlainReporter::new(Box::new(std::io::stderr()), a.quiet));
    let runner = Arc::new(VmRunExecutor::new());
    let builder = Builder::new(root.path(), runner, reporter)?;
    let image = builder.build(&dockerfile, &opts).await?;
    let mut names = opts.tags.clone();
    if names.is_empty() {
        // An untagged build stays reachable by digest (and is dangling for
        // `image prune`).
        let name = format!("localhost/untagged@{}", image.digest);
        container_build::exec::image::tag_image(
            builder.store(),
            &image,
            std::slice::from_ref(&name),
        )?;
        names.push(name);
    }
    match output {
        Output::Store => {}
        Output::Archive(dest) => {
            builder
                .store()
                .save(&names, Some(&opts.platform), &absolute(&dest)?)?;
        }
        Output::Local(dest) => builder.export_local(&image, &absolute(&dest)?)?,
    }
    if !a.quiet {
        eprintln!("Successfully built {}", image.digest);
    }
    for n in &names {
        println!("{n}");
    }
    Ok(0)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).context(
        Code::InvalidArgument,
        format!("invalid path {}", p.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(parse_output("type=oci").unwrap(), Output::Store);
        assert_eq!(
            parse_output("type=tar,dest=/x.tar").unwrap(),
            Output::Archive("/x.tar".into())
        );
        assert!(parse_output("type=tar").is_err());
        assert!(parse_output("type=registry").is_err());
        assert_eq!(
            parse_output("type=local,dest=out").unwrap(),
            Output::Local("out".into())
        );
    }

    #[test]
    fn secrets() {
        assert!(parse_secret("id=a").is_err());
        assert!(parse_secret("src=/etc/hostname").is_err());
        let (id, s) = parse_secret("id=p,env=PATH").unwrap();
        assert_eq!(id, "p");
        assert!(!s.data.is_empty());
    }
}
