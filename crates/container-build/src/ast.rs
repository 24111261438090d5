//! The parsed form of a Dockerfile: stages and typed instructions.

use std::time::Duration;

/// A whole parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// `ARG` instructions before the first `FROM` (visible in `FROM` lines only
    /// unless redeclared inside a stage).
    pub global_args: Vec<ArgDecl>,
    /// Build stages in file order; stage `i` may only depend on stages `< i`.
    pub stages: Vec<Stage>,
}

/// Parser directives (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// The `# syntax=` frontend image reference, if any (recorded, not used).
    pub syntax: Option<String>,
    /// The `# check=` directive, if any (recorded, not used).
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// One `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The argument name.
    pub name: String,
    /// The default written in the Dockerfile, after variable expansion.
    pub default: Option<String>,
    /// The effective value: the `--build-arg` if given, else the default,
    /// else (inside a stage) the global value; `None` when unset.
    pub value: Option<String>,
}

/// One build stage: a `FROM` line and the instructions that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS name`, as written (compare case-insensitively).
    pub name: Option<String>,
    /// The base after ARG expansion: an image reference, `scratch`, or the
    /// name of an earlier stage (then `base_stage` is set).
    pub base: String,
    /// Index of the earlier stage this one builds on, when `base` names one.
    pub base_stage: Option<usize>,
    /// `--platform` after ARG expansion.
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The instructions after `FROM` (the `FROM` itself is not repeated here).
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// True when the stage starts from an empty filesystem.
    pub fn is_scratch(&self) -> bool {
        self.base_stage.is_none() && self.base.eq_ignore_ascii_case("scratch")
    }
}

/// One instruction with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// What the instruction does.
    pub kind: InstructionKind,
}

/// Every Dockerfile instruction except `FROM` (which opens a [`Stage`]).
///
/// Values of ADD, ARG, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME
/// and WORKDIR are already variable-expanded; RUN, CMD, ENTRYPOINT, SHELL,
/// HEALTHCHECK and ONBUILD keep their text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`.
    Run(Run),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `ENV`: pairs in order.
    Env(Vec<(String, String)>),
    /// `ARG`: one or more declarations.
    Arg(Vec<ArgDecl>),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER` (`user[:group]`).
    User(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `LABEL`: pairs in order.
    Label(Vec<(String, String)>),
    /// `EXPOSE`.
    Expose(Vec<PortSpec>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `SHELL` (JSON form only).
    Shell(Vec<String>),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD <instruction>`.
    Onbuild(Onbuild),
    /// `MAINTAINER` (deprecated; becomes a label).
    Maintainer(String),
}

/// A command in shell form (run through `SHELL`) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Shell form: the text after the instruction, continuations joined.
    Shell(String),
    /// Exec form: the JSON array.
    Exec(Vec<String>),
}

/// A heredoc body (`<<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub delimiter: String,
    /// The body, each line ending with `\n` (tabs stripped for `<<-`).
    pub content: String,
    /// False when the delimiter was quoted: the body must not be expanded.
    pub expand: bool,
    /// True for `<<-`.
    pub strip_tabs: bool,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command (not expanded by the builder; the shell does it).
    pub command: Command,
    /// Heredocs named in the command, in order. When the command is just
    /// `<<EOF` the first heredoc is the script itself.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` options.
    pub mounts: Vec<Mount>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security` (`sandbox` or `insecure`).
    pub security: Option<String>,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --mount=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `type=bind` (the default type).
    Bind(BindMount),
    /// `type=cache`.
    Cache(CacheMount),
    /// `type=secret`.
    Secret(SecretMount),
    /// `type=tmpfs`.
    Tmpfs(TmpfsMount),
    /// `type=ssh`.
    Ssh(SecretMount),
}

impl Mount {
    /// The stage or image a bind or cache mount reads from (`from=`).
    pub fn from(&self) -> Option<&str> {
        match self {
            Mount::Bind(b) => b.from.as_deref(),
            Mount::Cache(c) => c.from.as_deref(),
            _ => None,
        }
    }
}

/// `--mount=type=bind,...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindMount {
    /// Mount point in the container.
    pub target: String,
    /// Path inside `from` (default: its root).
    pub source: Option<String>,
    /// Stage or image to mount from (default: the build context).
    pub from: Option<String>,
    /// Writes are allowed (and discarded) when true.
    pub readwrite: bool,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    /// Many writers at once (default).
    #[default]
    Shared,
    /// A new empty cache when it is in use.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// `--mount=type=cache,...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheMount {
    /// Mount point in the container.
    pub target: String,
    /// Cache id (default: the target).
    pub id: Option<String>,
    /// Read-only when true.
    pub readonly: bool,
    /// Sharing mode.
    pub sharing: CacheSharing,
    /// Stage or image whose content seeds the cache.
    pub from: Option<String>,
    /// Subpath in `from`.
    pub source: Option<String>,
    /// Directory mode (octal).
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
}

/// `--mount=type=secret,...` (also used for `type=ssh`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretMount {
    /// Secret id (default: the target's file name).
    pub id: Option<String>,
    /// Where the secret appears (default `/run/secrets/<id>`).
    pub target: Option<String>,
    /// Environment variable to expose the secret in.
    pub env: Option<String>,
    /// Fail the build when the secret is not provided.
    pub required: bool,
    /// File mode (octal, default 0400).
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
}

/// `--mount=type=tmpfs,...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TmpfsMount {
    /// Mount point in the container.
    pub target: String,
    /// Size limit in bytes.
    pub size: Option<u64>,
}

/// A source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path (or glob, or for ADD a URL) in the context or `--from`.
    Path(String),
    /// An inline file from a heredoc.
    Heredoc(Heredoc),
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// `--from=` stage name, stage index or image.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=` (octal or symbolic, as written).
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// Sources (at least one).
    pub sources: Vec<CopySource>,
    /// Destination.
    pub dest: String,
}

/// `ADD`: a [`Copy`] plus ADD's own options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    /// The common COPY options (`from` is always `None`).
    pub copy: Copy,
    /// `--checksum=` for remote sources.
    pub checksum: Option<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--unpack=` (default: unpack local archives).
    pub unpack: Option<bool>,
}

/// Transport protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Lower-case name as used in image configs (`tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// `EXPOSE` entry: a port or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// First port.
    pub start: u16,
    /// Last port (equal to `start` for a single port).
    pub end: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Check {
        /// The test command.
        command: Command,
        /// `--interval`.
        interval: Option<Duration>,
        /// `--timeout`.
        timeout: Option<Duration>,
        /// `--start-period`.
        start_period: Option<Duration>,
        /// `--start-interval`.
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

/// `ONBUILD`: the trigger text (stored in the image config) and its parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger as written after `ONBUILD`, continuations joined.
    pub raw: String,
    /// The trigger parsed without variable expansion; `None` when it uses
    /// variables that must be expanded before it can be checked (such as
    /// `EXPOSE $PORT`): the child build parses `raw` then.
    pub instruction: Option<Box<InstructionKind>>,
}
