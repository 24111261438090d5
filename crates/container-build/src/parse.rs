//! The parse driver: stages, ARG/ENV scoping and expansion.

use crate::ast::{ArgDecl, Dockerfile, Instruction, InstructionKind, Stage};
use crate::error::line_error;
use crate::flags::{check_allowed, split_flags, string_value};
use crate::instructions::{Ctx, KEYWORDS, parse_instruction};
use crate::lines::{LogicalLine, directives, logical_lines};
use crate::shell::Vars;
use containerization_error::{ContainerizationError, Result};
use std::collections::HashMap;

/// Platform ARGs BuildKit declares in the global scope automatically; when
/// the caller passes them as build args they are usable in `FROM`.
const AUTOMATIC_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// Looks up the `Env` of a base image config by its (expanded) reference.
pub type ImageEnv = dyn Fn(&str) -> Vec<(String, String)>;

/// Inputs of [`parse_with`].
pub struct ParseOptions<'a> {
    /// `--build-arg` values; they override ARG defaults of declared ARGs.
    pub build_args: &'a HashMap<String, String>,
    /// The environment of a base image, so `$PATH`/`$HOME` style references
    /// expand as Docker does; called with the expanded image reference.
    pub image_env: Option<&'a ImageEnv>,
}

/// Variables in scope: ENV wins over ARG.
#[derive(Default, Clone)]
struct Scope {
    env: Vec<(String, String)>,
    args: HashMap<String, Option<String>>,
}

impl Vars for Scope {
    fn get(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args.get(name).cloned().flatten()
    }
}

impl Scope {
    fn set_env(&mut self, k: &str, v: &str) {
        match self.env.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.env.push((k.to_string(), v.to_string())),
        }
    }
}

/// Parses a Dockerfile, expanding variables with `build_args`.
pub fn parse(text: &str, build_args: &HashMap<String, String>) -> Result<Dockerfile> {
    parse_with(
        text,
        &ParseOptions {
            build_args,
            image_env: None,
        },
    )
}

/// [`parse`] with every option.
pub fn parse_with(text: &str, opts: &ParseOptions<'_>) -> Result<Dockerfile> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (directives, start) = directives(&lines)?;
    let escape = directives.escape;
    let logical = logical_lines(&lines, start, escape)?;

    let mut globals = Scope::default();
    for name in AUTOMATIC_ARGS {
        if let Some(v) = opts.build_args.get(*name) {
            globals.args.insert(name.to_string(), Some(v.clone()));
        }
    }
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut stage_env: Vec<Vec<(String, String)>> = Vec::new();
    let mut scope = Scope::default();

    for ll in &logical {
        if ll.keyword == "FROM" {
            let stage = parse_from(ll, escape, &globals, &stages)?;
            scope = Scope::default();
            scope.env = match stage.base_stage {
                Some(i) => stage_env.get(i).cloned().unwrap_or_default(),
                None if stage.is_scratch() => Vec::new(),
                None => opts.image_env.map(|f| f(&stage.base)).unwrap_or_default(),
            };
            stages.push(stage);
            // stage_env[i] is stage i's ENV so far; a later `FROM <stage>` inherits it.
            stage_env.push(scope.env.clone());
            continue;
        }
        if stages.is_empty() {
            if ll.keyword != "ARG" {
                return Err(if KEYWORDS.contains(&ll.keyword.as_str()) {
                    line_error(
                        ll.line,
                        format!(
                            "{} before the first FROM: only ARG may come first",
                            ll.keyword
                        ),
                    )
                } else {
                    line_error(ll.line, format!("unknown instruction: {}", ll.keyword))
                });
            }
            let ctx = Ctx {
                line: ll.line,
                escape,
                vars: Some(&globals),
            };
            let InstructionKind::Arg(decls) =
                parse_instruction(&ctx, "ARG", &ll.rest, &ll.heredocs)?
            else {
                unreachable!("ARG parses to Arg")
            };
            for mut d in decls {
                d.value = opts.build_args.get(&d.name).cloned().or(d.default.clone());
                globals.args.insert(d.name.clone(), d.value.clone());
                global_args.push(d);
            }
            continue;
        }
        let idx = stages.len() - 1;
        let ctx = Ctx {
            line: ll.line,
            escape,
            vars: Some(&scope),
        };
        let mut kind = parse_instruction(&ctx, &ll.keyword, &ll.rest, &ll.heredocs)?;
        match &mut kind {
            InstructionKind::Arg(decls) => {
                for d in decls.iter_mut() {
                    d.value = stage_arg_value(d, opts.build_args, &globals);
                    scope.args.insert(d.name.clone(), d.value.clone());
                }
            }
            InstructionKind::Env(pairs) => {
                for (k, v) in pairs.iter() {
                    scope.set_env(k, v);
                }
            }
            _ => {}
        }
        check_stage_refs(ll.line, &kind, idx, &stages)?;
        stages[idx].instructions.push(Instruction {
            line: ll.line,
            kind,
        });
        stage_env[idx] = scope.env.clone();
    }
    if stages.is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "Dockerfile: no FROM instruction: a Dockerfile must start a stage with FROM",
        ));
    }
    Ok(Dockerfile {
        directives,
        global_args,
        stages,
    })
}

/// An ARG inside a stage: `--build-arg`, else its default, else the global value.
fn stage_arg_value(
    d: &ArgDecl,
    build_args: &HashMap<String, String>,
    globals: &Scope,
) -> Option<String> {
    if let Some(v) = build_args.get(&d.name) {
        return Some(v.clone());
    }
    if d.default.is_some() {
        return d.default.clone();
    }
    globals.args.get(&d.name).cloned().flatten()
}

fn parse_from(ll: &LogicalLine, escape: char, globals: &Scope, stages: &[Stage]) -> Result<Stage> {
    let ctx = Ctx {
        line: ll.line,
        escape,
        vars: Some(globals),
    };
    let (flags, args) = split_flags(&ll.rest);
    check_allowed(ll.line, "FROM", &flags, &["platform"])?;
    let mut platform = None;
    for f in &flags {
        let p = ctx.word(string_value(ll.line, f)?)?;
        if p.is_empty() {
            return Err(line_error(
                ll.line,
                format!(
                    "FROM --platform={} expands to nothing: pass it as a build arg (BUILDPLATFORM/TARGETPLATFORM are not set)",
                    f.value.as_deref().unwrap_or_default()
                ),
            ));
        }
        platform = Some(p);
    }
    let words = ctx.words(args)?;
    let (base, name) = match words.as_slice() {
        [b] => (b.clone(), None),
        [b, as_kw, n] if as_kw.eq_ignore_ascii_case("AS") => (b.clone(), Some(n.clone())),
        [] if !args.trim().is_empty() => {
            return Err(line_error(
                ll.line,
                format!("base name ({args}) should not be blank"),
            ));
        }
        [] => {
            return Err(line_error(
                ll.line,
                "FROM requires an image, e.g. FROM alpine:3.20",
            ));
        }
        _ => {
            return Err(line_error(
                ll.line,
                "FROM takes an image and an optional 'AS name'",
            ));
        }
    };
    if base.is_empty() {
        return Err(line_error(
            ll.line,
            format!("base name ({args}) should not be blank"),
        ));
    }
    if let Some(n) = &name {
        if !valid_stage_name(n) {
            return Err(line_error(
                ll.line,
                format!(
                    "invalid stage name '{n}': use letters, digits, '-', '_' and '.', starting with a letter"
                ),
            ));
        }
        if stages
            .iter()
            .any(|s| s.name.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(n)))
        {
            return Err(line_error(ll.line, format!("duplicate stage name '{n}'")));
        }
    }
    let base_stage = stage_by_name(stages, &base);
    Ok(Stage {
        name,
        base,
        base_stage,
        platform,
        line: ll.line,
        instructions: Vec::new(),
    })
}

fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn stage_by_name(stages: &[Stage], name: &str) -> Option<usize> {
    stages.iter().position(|s| {
        s.name
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(name))
    })
}

/// Resolves a `--from` reference to an earlier stage: a name, or an index.
pub(crate) fn resolve_stage_ref(stages: &[Stage], reference: &str) -> Option<usize> {
    if !reference.is_empty() && reference.chars().all(|c| c.is_ascii_digit()) {
        return reference
            .parse::<usize>()
            .ok()
            .filter(|i| *i < stages.len());
    }
    stage_by_name(stages, reference)
}

/// A numeric `--from` must name an earlier stage; a stage may not read itself.
fn check_stage_refs(
    line: usize,
    kind: &InstructionKind,
    idx: usize,
    stages: &[Stage],
) -> Result<()> {
    let mut refs: Vec<&str> = Vec::new();
    match kind {
        InstructionKind::Copy(c) => refs.extend(c.from.as_deref()),
        InstructionKind::Run(r) => refs.extend(r.mounts.iter().filter_map(|m| m.from())),
        _ => {}
    }
    for r in refs {
        if r.chars().all(|c| c.is_ascii_digit()) && resolve_stage_ref(&stages[..idx], r).is_none() {
            return Err(line_error(
                line,
                format!("--from={r}: no earlier stage has index {r}"),
            ));
        }
        if stages[idx]
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(r))
        {
            return Err(line_error(
                line,
                format!("--from={r}: a stage can not copy from itself"),
            ));
        }
    }
    Ok(())
}
