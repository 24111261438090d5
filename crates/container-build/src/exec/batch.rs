//! Consecutive RUNs of a stage in one VM: after each command the guest is
//! flushed and paused, the live image is diffed against a frozen copy of
//! the state before the command, and a new frozen copy is taken for the
//! next one. Saves a VM boot per RUN; used only when every RUN of the run
//! is uncached, has no `--mount`, and the image has `/bin/sh` (the idle
//! init of the session).

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use containerization_ext4::Ext4;

use super::BuildOptions;
use super::Builder;
use super::cache::CacheEntry;
use super::diff::{Ignore, diff};
use super::layer::LayerWriter;
use super::rootfs::{materialize, resolve_user};
use super::run::{RunRequest, RunSession, Tail};
use super::stage::{State, at_line, describe, run_argv, run_failed};
use crate::ast::{Instruction, InstructionKind, Stage};

/// A sparse copy of a (mostly empty) image file.
fn sparse_copy(from: &Path, to: &Path) -> Result<()> {
    let st = Process::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .status()
        .context(
            Code::InternalError,
            "running cp to snapshot the build rootfs",
        )?;
    if !st.success() {
        return Err(ContainerizationError::internal(format!(
            "cp --sparse=always {} {} failed",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

impl Builder {
    /// Runs the RUNs starting at `i` in one VM when that pays off; returns
    /// how many instructions it handled (0: the caller steps one by one).
    pub(super) async fn run_batch(
        &self,
        st: &mut State,
        stage: &Stage,
        instructions: &[Instruction],
        i: usize,
        opts: &BuildOptions,
    ) -> Result<usize> {
        let mut keys = Vec::new();
        let mut parent = st.key.clone();
        for (j, ins) in instructions.iter().enumerate().skip(i) {
            let InstructionKind::Run(run) = &ins.kind else {
                break;
            };
            if !run.mounts.is_empty() {
                break;
            }
            let key = st.run_key(&parent, stage, j, &ins.kind);
            if self.cached(&key, opts).is_some() {
                break;
            }
            parent = key.clone();
            keys.push(key);
        }
        if keys.len() < 2 {
            return Ok(0);
        }
        let first_before = self.unpacked(&st.layers)?;
        let before = Ext4::open(&first_before)?;
        if before.stat("/bin/sh").is_err() {
            return Ok(0);
        }
        let (uid, gid) = resolve_user(Some(&before), &st.config.user(), false)
            .map_err(|e| at_line(instructions[i].line, e))?;
        drop(before);
        let live = self.scratch_path("session").with_extension("ext4");
        materialize(self.store.content(), &st.layers, &live)?;
        let base = RunRequest {
            id: format!(
                "build-{}-{}",
                std::process::id(),
                live.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            rootfs: live.clone(),
            args: Vec::new(),
            env: st
                .run_env(stage, i)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cwd: st.config.workdir(),
            uid,
            gid,
            mounts: Vec::new(),
            cpus: opts.cpus,
            memory: opts.memory,
            output: std::sync::Arc::new(|_: &[u8]| {}),
        };
        let Some(mut session) = self.runner.session(base.clone()).await? else {
            let _ = std::fs::remove_file(&live);
            return Ok(0);
        };
        let mut frozen: Vec<PathBuf> = Vec::new();
        let result = self
            .batch_steps(
                st,
                stage,
                instructions,
                i,
                &keys,
                &base,
                &live,
                &first_before,
                &mut frozen,
                session.as_mut(),
            )
            .await;
        let finished = session.finish().await;
        let _ = std::fs::remove_file(&live);
        for f in frozen {
            let _ = std::fs::remove_file(f);
        }
        result?;
        finished?;
        Ok(keys.len())
    }

    #[allow(clippy::too_many_arguments)]
    async fn batch_steps(
        &self,
        st: &mut State,
        stage: &Stage,
        instructions: &[Instruction],
        i: usize,
        keys: &[String],
        base: &RunRequest,
        live: &Path,
        first_before: &Path,
        frozen: &mut Vec<PathBuf>,
        session: &mut dyn RunSession,
    ) -> Result<()> {
        let mut before_path = first_before.to_path_buf();
        for (m, key) in keys.iter().enumerate() {
            let j = i + m;
            let ins = &instructions[j];
            let InstructionKind::Run(run) = &ins.kind else {
                unreachable!("a batch holds RUNs only");
            };
            let text = describe(&ins.kind);
            let n = self
                .reporter
                .step(&format!("[{} {}/{}] {text}", st.label, j + 2, st.total));
            let t = Instant::now();
            let tail = Tail::new(16 << 10);
            let (reporter, tail2) = (self.reporter.clone(), tail.clone());
            let mut req = base.clone();
            req.args = run_argv(&st.config, run);
            req.env = st
                .run_env(stage, j)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.output = std::sync::Arc::new(move |d: &[u8]| {
                tail2.push(d);
                reporter.output(n, d);
            });
            let code = session.exec(req).await.map_err(|e| at_line(ins.line, e))?;
            if code != 0 {
                return Err(at_line(ins.line, run_failed(run, code, &tail)));
            }
            let layer = {
                let before = Ext4::open(&before_path)?;
                let after = Ext4::open(live)?;
                let ignore: Ignore = ["proc", "sys", "dev", "lost+found"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let mut w = LayerWriter::new()?;
                if diff(&before, &after, &ignore, &mut w).map_err(|e| at_line(ins.line, e))? == 0 {
                    None
                } else {
                    Some(w.finish(self.store.content())?)
                }
            };
            if m + 1 < keys.len() {
                let next = self.scratch_path("frozen").with_extension("ext4");
                sparse_copy(live, &next)?;
                frozen.push(next.clone());
                before_path = next;
                session.resume().await?;
            }
            let entry = CacheEntry { layer };
            self.cache.put(key, &entry)?;
            self.add(st, key.clone(), entry.layer, &text);
            self.reporter.done(n, t);
        }
        Ok(())
    }
}
