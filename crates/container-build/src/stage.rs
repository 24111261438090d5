//! Helpers the executor uses while walking a stage's instructions.

use crate::ast::{InstructionKind, Stage};

impl Stage {
    /// The ARG values in effect before instruction `index`, in declaration
    /// order: what a `RUN` at `index` sees as environment variables besides
    /// the image's `Env` (which wins over them, as in Docker). Declared but
    /// unset ARGs are left out.
    pub fn args_before(&self, index: usize) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for ins in self.instructions.iter().take(index) {
            let InstructionKind::Arg(decls) = &ins.kind else {
                continue;
            };
            for d in decls {
                out.retain(|(k, _)| k != &d.name);
                if let Some(v) = &d.value {
                    out.push((d.name.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// The ENV pairs set by this stage's own instructions before `index`
    /// (not those of the base image), last value per key.
    pub fn env_before(&self, index: usize) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for ins in self.instructions.iter().take(index) {
            let InstructionKind::Env(pairs) = &ins.kind else {
                continue;
            };
            for (k, v) in pairs {
                match out.iter_mut().find(|(key, _)| key == k) {
                    Some(e) => e.1 = v.clone(),
                    None => out.push((k.clone(), v.clone())),
                }
            }
        }
        out
    }
}
