//! Stage dependencies: which stages a target needs, and what can run in parallel.

use crate::ast::{Dockerfile, InstructionKind};
use crate::parse::resolve_stage_ref;
use containerization_error::{ContainerizationError, Result};

impl Dockerfile {
    /// Index of the stage named `name` (case-insensitive) or with index `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        resolve_stage_ref(&self.stages, name)
    }

    /// The earlier stages stage `idx` reads from: its `FROM <stage>`, every
    /// `COPY --from=<stage>` and `RUN --mount=from=<stage>`. Sorted, unique.
    /// A `--from` naming no earlier stage is an image and is not listed.
    pub fn stage_dependencies(&self, idx: usize) -> Vec<usize> {
        let Some(stage) = self.stages.get(idx) else {
            return Vec::new();
        };
        let earlier = &self.stages[..idx];
        let mut deps: Vec<usize> = stage.base_stage.into_iter().collect();
        for ins in &stage.instructions {
            let refs: Vec<&str> = match &ins.kind {
                InstructionKind::Copy(c) => c.from.as_deref().into_iter().collect(),
                InstructionKind::Run(r) => r.mounts.iter().filter_map(|m| m.from()).collect(),
                _ => Vec::new(),
            };
            deps.extend(
                refs.into_iter()
                    .filter_map(|r| resolve_stage_ref(earlier, r)),
            );
        }
        deps.sort_unstable();
        deps.dedup();
        deps
    }

    /// Dependency edges of every stage: `edges[i]` lists the stages `i` needs.
    /// Stages whose dependencies are all built can build in parallel.
    pub fn dependency_edges(&self) -> Vec<Vec<usize>> {
        (0..self.stages.len())
            .map(|i| self.stage_dependencies(i))
            .collect()
    }

    /// The stages needed to build `target` (the last stage when `None`), in
    /// ascending order, which is a valid build order.
    pub fn target_stages(&self, target: Option<&str>) -> Result<Vec<usize>> {
        let last =
            self.stages.len().checked_sub(1).ok_or_else(|| {
                ContainerizationError::invalid_argument("Dockerfile has no stages")
            })?;
        let target_idx = match target {
            None => last,
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| {
                    let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                    ContainerizationError::invalid_argument(format!(
                        "--target {t}: no stage with that name in the Dockerfile (named stages: {known})"
                    ))
                })?,
        };
        let mut needed = vec![false; self.stages.len()];
        let mut todo = vec![target_idx];
        while let Some(i) = todo.pop() {
            if needed[i] {
                continue;
            }
            needed[i] = true;
            todo.extend(self.stage_dependencies(i));
        }
        Ok((0..self.stages.len()).filter(|i| needed[*i]).collect())
    }
}
