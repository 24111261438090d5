//! One stage: its base, then each instruction in order, every step keyed
//! for the cache by its parent's key and its own inputs.

use std::collections::BTreeSet;
use std::time::Instant;

use containerization::Mount as VmMount;
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_ext4::{Ext4, FormatOptions, Formatter, Metadata};
use containerization_oci::PullOptions;
use serde_json::{Value, json};

use super::cache::{CacheEntry, chain};
use super::config::{DEFAULT_PATH, ImageConfig, resolve_workdir};
use super::copy::{CopyJob, copy_layer, parse_chmod};
use super::diff::{Ignore, diff};
use super::layer::{LayerRef, LayerWriter, header};
use super::rootfs::{is_numeric_user, materialize, resolve_user};
use super::run::{RunRequest, Tail};
use super::tree::{Ext4Tree, HostTree, SourceTree};
use super::{BuildOptions, Builder};
use crate::ast::{Command, Dockerfile, Instruction, InstructionKind, Mount, Run, Stage};

/// What a built stage hands to later stages and to the image writer.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// Layers, lowest first.
    pub layers: Vec<LayerRef>,
    /// The image config.
    pub config: ImageConfig,
    /// `history` entries.
    pub history: Vec<Value>,
    /// Cache key of the last step.
    pub key: String,
}

/// Prefixes a failure with the Dockerfile line, as parse errors are.
pub(super) fn at_line(line: usize, e: ContainerizationError) -> ContainerizationError {
    if e.message.starts_with("Dockerfile:") {
        return e;
    }
    let msg = format!("Dockerfile:{line}: {}", e.message);
    ContainerizationError::new(e.code, msg)
}

/// The instruction as a short line for progress output and history.
pub fn describe(kind: &InstructionKind) -> String {
    let cmd = |c: &Command| match c {
        Command::Shell(s) => s.clone(),
        Command::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
    };
    let paths = |c: &crate::ast::Copy| {
        let mut v: Vec<String> = c
            .sources
            .iter()
            .map(|s| match s {
                crate::ast::CopySource::Path(p) => p.clone(),
                crate::ast::CopySource::Heredoc(h) => format!("<<{}", h.delimiter),
            })
            .collect();
        v.push(c.dest.clone());
        v.join(" ")
    };
    match kind {
        InstructionKind::Run(r) => format!("RUN {}", cmd(&r.command)),
        InstructionKind::Copy(c) => {
            let from = c
                .from
                .as_ref()
                .map(|f| format!("--from={f} "))
                .unwrap_or_default();
            format!("COPY {from}{}", paths(c))
        }
        InstructionKind::Add(a) => format!("ADD {}", paths(&a.copy)),
        InstructionKind::Workdir(w) => format!("WORKDIR {w}"),
        InstructionKind::Cmd(c) => format!("CMD {}", cmd(c)),
        InstructionKind::Entrypoint(c) => format!("ENTRYPOINT {}", cmd(c)),
        InstructionKind::User(u) => format!("USER {u}"),
        InstructionKind::Env(p) => format!(
            "ENV {}",
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => {
            let d = format!("{other:?}");
            let name = d.split('(').next().unwrap_or("").to_ascii_uppercase();
            name.to_string()
        }
    }
}

pub(super) fn history(created_by: &str, empty: bool) -> Value {
    let mut h = json!({"created_by": created_by, "comment": "container build"});
    if empty {
        h["empty_layer"] = json!(true);
    }
    h
}

/// A secret file to place: name, data, mode, uid, gid.
type SecretFile = (String, Vec<u8>, u32, u32, u32);

/// The state of a stage while it builds.
pub(super) struct State {
    pub(super) layers: Vec<LayerRef>,
    pub(super) config: ImageConfig,
    pub(super) history: Vec<Value>,
    pub(super) key: String,
    pub(super) label: String,
    pub(super) total: usize,
    /// ONBUILD triggers run before the stage's own instructions.
    pub(super) triggers: usize,
}

impl State {
    /// The ARGs in scope before instruction `i` (triggers see none).
    pub(super) fn args_before(&self, stage: &Stage, i: usize) -> Vec<(String, String)> {
        i.checked_sub(self.triggers)
            .map(|j| stage.args_before(j))
            .unwrap_or_default()
    }

    /// The environment of a RUN at `i`: ARGs, then the image's `Env`
    /// (which wins), and a default `PATH`.
    pub(super) fn run_env(&self, stage: &Stage, i: usize) -> Vec<(String, String)> {
        let mut env = self.args_before(stage, i);
        for (k, v) in self.config.env() {
            env.retain(|(key, _)| key != &k);
            env.push((k, v));
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        env
    }

    /// The cache key of a RUN at `i` after the current step.
    pub(super) fn run_key(
        &self,
        parent: &str,
        stage: &Stage,
        i: usize,
        kind: &InstructionKind,
    ) -> String {
        let args: Vec<String> = self
            .args_before(stage, i)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        chain(parent, &[&format!("{kind:?}"), &args.join("\n")])
    }
}

impl Builder {
    /// Layers, config and key of `FROM <image>`; pulls it when missing or
    /// when `pull` is set.
    async fn base_image(&self, reference: &str, opts: &BuildOptions, pull: bool) -> Result<State> {
        let present = self.store.get(reference).is_ok();
        if pull || !present {
            let popts = PullOptions {
                platform: Some(opts.platform.clone()),
                ..Default::default()
            };
            if let Err(e) = self.store.pull(reference, &popts).await {
                if !present {
                    return Err(ContainerizationError::new(
                        e.code,
                        format!(
                            "base image {reference} is not in the local store and pulling it failed: {}",
                            e.message
                        ),
                    ));
                }
                self.reporter.note(&format!(
                    "warning: pulling {reference} failed, using the local copy: {}",
                    e.message
                ));
            }
        }
        let image = self.store.get(reference)?;
        let content = self.store.content();
        let (desc, manifest) = image.resolve_manifest(content, &opts.platform)?;
        let config: Value =
            serde_json::from_slice(&content.read(manifest.config().digest().as_ref())?).context(
                Code::InvalidArgument,
                format!("image {reference} has an invalid config"),
            )?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ContainerizationError::invalid_argument(format!(
                "image {reference}: config lists {} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            )));
        }
        let layers = manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| LayerRef {
                digest: l.digest().to_string(),
                size: l.size(),
                diff_id,
                media_type: l.media_type().to_string(),
            })
            .collect();
        let history = config["history"].as_array().cloned().unwrap_or_default();
        Ok(State {
            layers,
            config: ImageConfig::from_base(config),
            history,
            key: chain("", &["image", desc.digest().as_ref()]),
            label: String::new(),
            total: 0,
            triggers: 0,
        })
    }

    /// Builds stage `idx` of `df`; the stages it depends on are in `built`.
    pub(super) async fn build_stage(
        &self,
        df: &Dockerfile,
        idx: usize,
        built: &[Option<StageResult>],
        context: &HostTree,
        opts: &BuildOptions,
    ) -> Result<StageResult> {
        let stage = &df.stages[idx];
        let name = stage.name.clone().unwrap_or_else(|| format!("stage-{idx}"));
        if let Some(p) = stage.platform.as_deref().filter(|p| !p.is_empty()) {
            let wanted =
                containerization_oci::Platform::parse(p).map_err(|e| at_line(stage.line, e))?;
            if !wanted.matches(&opts.platform) {
                return Err(at_line(
                    stage.line,
                    ContainerizationError::unsupported(format!(
                        "FROM --platform={p}: only the host platform ({}) can be built",
                        opts.platform
                    )),
                ));
            }
        }
        let mut st = if stage.is_scratch() {
            State {
                layers: Vec::new(),
                config: ImageConfig::scratch(&opts.platform.architecture),
                history: Vec::new(),
                key: chain("", &["scratch", &opts.platform.architecture]),
                label: String::new(),
                total: 0,
                triggers: 0,
            }
        } else if let Some(b) = stage.base_stage {
            let r = built[b].clone().ok_or_else(|| {
                ContainerizationError::internal(format!(
                    "stage {b} was not built before stage {idx}"
                ))
            })?;
            State {
                layers: r.layers,
                config: r.config,
                history: r.history,
                key: r.key,
                label: String::new(),
                total: 0,
                triggers: 0,
            }
        } else {
            let t = Instant::now();
            let n = self.reporter.step(&format!(
                "[{name} 1/{}] FROM {}",
                stage.instructions.len() + 1,
                stage.base
            ));
            let s = self
                .base_image(&stage.base, opts, opts.pull)
                .await
                .map_err(|e| at_line(stage.line, e))?;
            self.reporter.done(n, t);
            s
        };
        let mut instructions: Vec<Instruction> = Vec::new();
        for trigger in st.config.onbuild() {
            instructions.push(parse_trigger(stage.line, &trigger)?);
        }
        st.config.clear_onbuild();
        st.triggers = instructions.len();
        instructions.extend(stage.instructions.iter().cloned());
        st.total = instructions.len() + 1;
        st.label = name;
        let mut i = 0;
        while i < instructions.len() {
            let done = self
                .run_batch(&mut st, stage, &instructions, i, opts)
                .await?;
            if done > 0 {
                i += done;
                continue;
            }
            let ins = &instructions[i];
            self.step(&mut st, stage, i, ins, df, built, context, opts)
                .await
                .map_err(|e| at_line(ins.line, e))?;
            i += 1;
        }
        Ok(StageResult {
            layers: st.layers,
            config: st.config,
            history: st.history,
            key: st.key,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        st: &mut State,
        stage: &Stage,
        i: usize,
        ins: &Instruction,
        df: &Dockerfile,
        built: &[Option<StageResult>],
        context: &HostTree,
        opts: &BuildOptions,
    ) -> Result<()> {
        let text = describe(&ins.kind);
        let label = format!("[{} {}/{}] {text}", st.label, i + 2, st.total);
        let debug = format!("{:?}", ins.kind);
        match &ins.kind {
            InstructionKind::Run(run) => {
                let key = st.run_key(&st.key, stage, i, &ins.kind);
                let n = self.reporter.step(&label);
                let t = Instant::now();
                let entry = match self.cached(&key, opts) {
                    Some(e) => {
                        self.reporter.cached(n);
                        e
                    }
                    None => {
                        let layer = self.run(st, stage, i, run, n, opts).await?;
                        let e = CacheEntry { layer };
                        self.cache.put(&key, &e)?;
                        self.reporter.done(n, t);
                        e
                    }
                };
                self.add(st, key, entry.layer, &text);
            }
            InstructionKind::Copy(_) | InstructionKind::Add(_) => {
                let n = self.reporter.step(&label);
                let t = Instant::now();
                let layer = self.copy(st, &ins.kind, df, built, context, opts).await?;
                let key = chain(&st.key, &[&debug, &layer.diff_id]);
                if self.cached(&key, opts).is_some() {
                    self.reporter.cached(n);
                } else {
                    self.cache.put(
                        &key,
                        &CacheEntry {
                            layer: Some(layer.clone()),
                        },
                    )?;
                    self.reporter.done(n, t);
                }
                self.add(st, key, Some(layer), &text);
            }
            InstructionKind::Workdir(_) => {
                st.config.apply(&ins.kind);
                let dir = st.config.workdir();
                let key = chain(&st.key, &[&debug]);
                let fs = Ext4::open(self.unpacked(&st.layers)?)?;
                let layer = if fs.stat(&dir).is_ok() {
                    None
                } else {
                    let n = self.reporter.step(&label);
                    let t = Instant::now();
                    let tree = Ext4Tree::open(&self.unpacked(&st.layers)?)?;
                    let mut w = LayerWriter::new()?;
                    let mut cur = String::new();
                    for c in dir.split('/').filter(|c| !c.is_empty()) {
                        cur = super::tree::join(&cur, c);
                        if tree.stat(&cur)?.is_none() {
                            let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, 0);
                            w.append(&mut h, &format!("{cur}/"), std::io::empty())?;
                        }
                    }
                    let l = w.finish(self.store.content())?;
                    self.reporter.done(n, t);
                    Some(l)
                };
                self.add(st, key, layer, &text);
            }
            kind => {
                st.config.apply(kind);
                st.key = chain(&st.key, &[&debug]);
                st.history.push(history(&text, true));
            }
        }
        Ok(())
    }

    pub(super) fn cached(&self, key: &str, opts: &BuildOptions) -> Option<CacheEntry> {
        if opts.no_cache {
            return None;
        }
        self.cache.get(key, self.store.content())
    }

    pub(super) fn add(&self, st: &mut State, key: String, layer: Option<LayerRef>, text: &str) {
        st.history.push(history(text, layer.is_none()));
        if let Some(l) = layer {
            st.layers.push(l);
        }
        st.key = key;
    }

    /// The layer of a COPY or ADD.
    async fn copy(
        &self,
        st: &State,
        kind: &InstructionKind,
        df: &Dockerfile,
        built: &[Option<StageResult>],
        context: &HostTree,
        opts: &BuildOptions,
    ) -> Result<LayerRef> {
        let (copy, is_add, unpack) = match kind {
            InstructionKind::Copy(c) => (c, false, false),
            InstructionKind::Add(a) => (&a.copy, true, a.unpack.unwrap_or(true)),
            _ => unreachable!("copy() is only called for COPY and ADD"),
        };
        if copy.parents {
            return Err(ContainerizationError::unsupported(
                "COPY --parents is not supported",
            ));
        }
        if !copy.exclude.is_empty() {
            return Err(ContainerizationError::unsupported(
                "COPY --exclude is not supported",
            ));
        }
        let image_fs = Ext4Tree::open(&self.unpacked(&st.layers)?)?;
        let owner = match &copy.chown {
            None => None,
            Some(spec) if is_numeric_user(spec) => Some(resolve_user(None, spec, true)?),
            Some(spec) => Some(resolve_user(Some(image_fs.ext4()), spec, true)?),
        };
        let chmod = copy.chmod.as_deref().map(parse_chmod).transpose()?;
        let from_tree: Option<Ext4Tree> = match &copy.from {
            None => None,
            Some(f) => {
                let layers = match df
                    .stage_index(f)
                    .filter(|i| built.get(*i).is_some_and(Option::is_some))
                {
                    Some(i) => built[i]
                        .as_ref()
                        .map(|r| r.layers.clone())
                        .unwrap_or_default(),
                    None => self.base_image(f, opts, false).await?.layers,
                };
                Some(Ext4Tree::open(&self.unpacked(&layers)?)?)
            }
        };
        let job = CopyJob {
            keyword: if is_add { "ADD" } else { "COPY" },
            sources: &copy.sources,
            dest: &copy.dest,
            workdir: &st.config.workdir(),
            owner,
            chmod,
            keep_owner: from_tree.is_some(),
            unpack_archives: is_add && unpack,
        };
        let mut w = LayerWriter::new()?;
        match &from_tree {
            Some(t) => copy_layer(&job, t, &image_fs, &mut w)?,
            None => copy_layer(&job, context, &image_fs, &mut w)?,
        }
        w.finish(self.store.content())
    }

    /// Runs a RUN in a VM; returns its layer (`None`: nothing changed).
    async fn run(
        &self,
        st: &State,
        stage: &Stage,
        i: usize,
        run: &Run,
        n: usize,
        opts: &BuildOptions,
    ) -> Result<Option<LayerRef>> {
        let before_path = self.unpacked(&st.layers)?;
        let before = Ext4::open(&before_path)?;
        let user = st.config.user();
        let (uid, gid) = resolve_user(Some(&before), &user, false)?;
        let mut env = st.run_env(stage, i);
        // lost+found belongs to the ext4 image, not to the container's files.
        let mut ignore: Ignore = ["proc", "sys", "dev", "lost+found"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut mounts = Vec::new();
        self.run_mounts(run, opts, &before, &mut env, &mut mounts, &mut ignore)?;
        let args = run_argv(&st.config, run);
        let rootfs = self.scratch_path("run").with_extension("ext4");
        materialize(self.store.content(), &st.layers, &rootfs)?;
        let tail = Tail::new(16 << 10);
        let (reporter, tail2) = (self.reporter.clone(), tail.clone());
        let id = format!(
            "build-{}-{}",
            std::process::id(),
            rootfs
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let req = RunRequest {
            id,
            rootfs: rootfs.clone(),
            args: args.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: st.config.workdir(),
            uid,
            gid,
            mounts,
            cpus: opts.cpus,
            memory: opts.memory,
            output: std::sync::Arc::new(move |d: &[u8]| {
                tail2.push(d);
                reporter.output(n, d);
            }),
        };
        let result = self.runner.run(req).await;
        let cleanup = || {
            let _ = std::fs::remove_file(&rootfs);
        };
        let code = match result {
            Ok(c) => c,
            Err(e) => {
                cleanup();
                return Err(e);
            }
        };
        if code != 0 {
            cleanup();
            return Err(run_failed(run, code, &tail));
        }
        let after = Ext4::open(&rootfs)?;
        let mut w = LayerWriter::new()?;
        let changes = diff(&before, &after, &ignore, &mut w)?;
        let layer = if changes == 0 {
            None
        } else {
            Some(w.finish(self.store.content())?)
        };
        cleanup();
        Ok(layer)
    }

    /// `RUN --mount`: secrets as a read-only ext4 image (or an env
    /// variable), caches as a persistent ext4 image per id; others refused.
    fn run_mounts(
        &self,
        run: &Run,
        opts: &BuildOptions,
        before: &Ext4,
        env: &mut Vec<(String, String)>,
        mounts: &mut Vec<VmMount>,
        ignore: &mut Ignore,
    ) -> Result<()> {
        let mut secret_dirs: std::collections::BTreeMap<String, Vec<SecretFile>> =
            Default::default();
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for m in &run.mounts {
            match m {
                Mount::Secret(s) => {
                    let id =
                        s.id.clone()
                            .or_else(|| {
                                s.target
                                    .as_ref()
                                    .and_then(|t| t.rsplit('/').next().map(String::from))
                            })
                            .unwrap_or_default();
                    let Some(secret) = opts.secrets.get(&id) else {
                        if s.required {
                            return Err(ContainerizationError::not_found(format!(
                                "secret {id} is required but was not given (use --secret id={id},src=FILE)"
                            )));
                        }
                        continue;
                    };
                    if let Some(var) = &s.env {
                        env.push((
                            var.clone(),
                            String::from_utf8_lossy(&secret.data).into_owned(),
                        ));
                        if s.target.is_none() {
                            continue;
                        }
                    }
                    let target = s
                        .target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{id}"));
                    let target = resolve_workdir("/", &target);
                    let (dir, file) = target.rsplit_once('/').unwrap_or(("", &target));
                    let dir = if dir.is_empty() {
                        "/".to_string()
                    } else {
                        dir.to_string()
                    };
                    secret_dirs.entry(dir).or_default().push((
                        file.to_string(),
                        secret.data.clone(),
                        s.mode.unwrap_or(0o400),
                        s.uid.unwrap_or(0),
                        s.gid.unwrap_or(0),
                    ));
                }
                Mount::Cache(c) => {
                    if c.from.is_some() {
                        return Err(ContainerizationError::unsupported(
                            "RUN --mount=type=cache,from=... is not supported",
                        ));
                    }
                    let id = c.id.clone().unwrap_or_else(|| c.target.clone());
                    let path = self
                        .cache
                        .dir()
                        .join("mounts")
                        .join(format!("{}.ext4", chain("cache", &[&id])));
                    if !path.exists() {
                        std::fs::create_dir_all(path.parent().expect("has a parent"))
                            .context(Code::InternalError, "creating the cache mount directory")?;
                        let tmp = path.with_extension("tmp");
                        let f = Formatter::create(&tmp, 4 << 30, FormatOptions::default())?;
                        f.close()?;
                        std::fs::rename(&tmp, &path)
                            .context(Code::InternalError, "storing the cache mount")?;
                    }
                    let target = resolve_workdir("/", &c.target);
                    let mut options = Vec::new();
                    if c.readonly {
                        options.push("ro".to_string());
                    }
                    mounts.push(VmMount::block("ext4", &path, &target, options));
                    targets.insert(target);
                }
                Mount::Tmpfs(t) => {
                    let target = resolve_workdir("/", &t.target);
                    let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                    if let Some(s) = t.size {
                        options.push(format!("size={s}"));
                    }
                    mounts.push(VmMount::any("tmpfs", "tmpfs", &target, options));
                    targets.insert(target);
                }
                Mount::Bind(_) => {
                    return Err(ContainerizationError::unsupported(
                        "RUN --mount=type=bind is not supported; COPY the files instead",
                    ));
                }
                Mount::Ssh(_) => {
                    return Err(ContainerizationError::unsupported(
                        "RUN --mount=type=ssh is not supported (the build VM has no network)",
                    ));
                }
            }
        }
        for (dir, files) in secret_dirs {
            let path = self.scratch_path("secrets").with_extension("ext4");
            let mut f = Formatter::create(&path, 64 << 20, FormatOptions::default())?;
            for (name, data, mode, uid, gid) in files {
                let mut meta = Metadata::with_mode(mode as u16);
                meta.uid = uid;
                meta.gid = gid;
                f.create_file(format!("/{name}"), meta, &mut data.as_slice())?;
            }
            f.close()?;
            mounts.push(VmMount::block("ext4", &path, &dir, vec!["ro".into()]));
            targets.insert(dir);
        }
        // Mount points the runtime had to create are not part of the layer.
        for t in targets {
            let mut cur = String::new();
            for c in t.split('/').filter(|c| !c.is_empty()) {
                cur = super::tree::join(&cur, c);
                if before.stat(format!("/{cur}")).is_err() {
                    ignore.insert(cur.clone());
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The error of a RUN that exited with `code`: command, output, code.
pub(super) fn run_failed(run: &Run, code: i32, tail: &Tail) -> ContainerizationError {
    let shown = match &run.command {
        Command::Shell(s) => s.clone(),
        Command::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
    };
    let out = tail.text();
    let out = out.trim_end();
    let msg = if out.is_empty() {
        format!("RUN {shown}: the command failed with exit code {code} (no output)")
    } else {
        format!("RUN {shown}: the command failed with exit code {code}; its output:\n{out}")
    };
    ContainerizationError::new(Code::Unknown, msg)
}

/// argv of a RUN: exec form as is; shell form through `SHELL`, with its
/// heredocs appended so the shell reads them (a lone `<<EOF` runs the body
/// as the script).
pub(super) fn run_argv(config: &ImageConfig, run: &Run) -> Vec<String> {
    match &run.command {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut argv = config.shell();
            let trimmed = s.trim();
            if run.heredocs.len() == 1
                && trimmed.starts_with("<<")
                && !trimmed.contains(char::is_whitespace)
            {
                argv.push(run.heredocs[0].content.clone());
                return argv;
            }
            let mut script = s.clone();
            for h in &run.heredocs {
                script.push('\n');
                script.push_str(&h.content);
                script.push_str(&h.delimiter);
            }
            argv.push(script);
            argv
        }
    }
}

/// Parses an ONBUILD trigger of the base image as an instruction.
fn parse_trigger(line: usize, trigger: &str) -> Result<Instruction> {
    let text = format!("FROM scratch\n{trigger}\n");
    let df = crate::parse(&text, &Default::default()).map_err(|e| {
        ContainerizationError::invalid_argument(format!(
            "Dockerfile:{line}: ONBUILD trigger of the base image '{trigger}' is invalid: {}",
            e.message
        ))
    })?;
    let mut ins = df
        .stages
        .into_iter()
        .next()
        .and_then(|s| s.instructions.into_iter().next())
        .ok_or_else(|| {
            ContainerizationError::invalid_argument(format!(
                "Dockerfile:{line}: ONBUILD trigger '{trigger}' is empty"
            ))
        })?;
    ins.line = line;
    Ok(ins)
}
